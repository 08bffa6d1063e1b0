// Package delivery sends queued hits to their upstreams in the background:
// one lane per upstream (scheme and host) with its memory queue, workers,
// retry circuit and spool directory (package delivery/spool), the payload
// codec, replay at start and the drain at shutdown, and its own metrics
// (consentgate_delivery_*).
//
// The hit path calls a small interface: Start once, Delivery.Lane for an
// upstream, Lane.Accept for each outgoing hit (ErrQueueFull, ErrSpool or
// ErrClosed when it cannot take it), Delivery.Shutdown at the end. A hit
// arrives already decided and rewritten; its tag is opaque here.
//
// It knows nothing of consent, configuration or the decision log: it must
// never import proxy, config, consentmode or declog (TestImports). The
// caller fills Options from its configuration and maps the errors to its
// answers.
package delivery
