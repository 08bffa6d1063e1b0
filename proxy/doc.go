// Package proxy is consentgate's I/O: the fasthttp servers (public and
// admin), the upstream clients, the script cache, header hygiene, CORS,
// metrics and the decision log. For every hit it asks consentmode.Decide
// what may leave and sends exactly that.
//
// It must not decide anything itself: consent, actions and rewrites come
// from consentmode, configuration from config (swapped whole on reload).
// Only the handler touches *fasthttp.RequestCtx, and no request bytes
// outlive the handler.
package proxy
