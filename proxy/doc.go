// Package proxy is consentgate's I/O: the fasthttp servers (public and
// admin), the upstream clients, the script cache, header hygiene, CORS
// and metrics. For every hit it asks consentmode.Decide what may leave,
// sends exactly that and hands the decision to the decision log (declog).
//
// It must not decide anything itself: consent, actions and rewrites come
// from consentmode, configuration from config (swapped whole on reload).
// Only the handler touches *fasthttp.RequestCtx, and no request bytes
// outlive the handler.
//
// Queued hits leave through package delivery: the handler hands each one,
// decided and rewritten, to its route's *delivery.Lane and maps delivery's
// refusals to its answers; it never sees a queue, a retry or the spool.
// Only cmd/consentgate imports proxy; delivery and its spool never do
// (delivery's TestImports).
package proxy
