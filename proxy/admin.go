package proxy

import (
	"bytes"
	"crypto/subtle"
	"net/http/pprof"

	"github.com/valyala/fasthttp"
	"github.com/valyala/fasthttp/fasthttpadaptor"
)

var pprofHandler = fasthttpadaptor.NewFastHTTPHandlerFunc(pprof.Index)

// ServeAdmin is the admin listener's handler: /metrics, /healthz,
// /readyz, /debug/explain and /debug/pprof/. With admin.token set, every
// path but the health endpoints requires it as a bearer token.
func (h *Handler) ServeAdmin(ctx *fasthttp.RequestCtx) {
	path := ctx.Path()
	if h.health(ctx, path) {
		return
	}
	if tok := h.Config().AdminToken; tok != "" && !bearer(ctx.Request.Header.Peek("Authorization"), tok) {
		h.writeError(ctx, errUnauthorized, -1)
		ctx.Response.Header.Set("WWW-Authenticate", `Bearer realm="consentgate-admin"`)
		return
	}
	switch p := string(path); {
	case p == "/metrics":
		ctx.SetContentType("text/plain; version=0.0.4; charset=utf-8")
		h.metrics.WritePrometheus(ctx)
	case p == "/debug/explain":
		h.serveExplain(ctx)
	case len(p) >= len("/debug/pprof/") && p[:len("/debug/pprof/")] == "/debug/pprof/":
		switch p {
		case "/debug/pprof/profile":
			fasthttpadaptor.NewFastHTTPHandlerFunc(pprof.Profile)(ctx)
		case "/debug/pprof/trace":
			fasthttpadaptor.NewFastHTTPHandlerFunc(pprof.Trace)(ctx)
		default:
			pprofHandler(ctx)
		}
	default:
		ctx.SetStatusCode(fasthttp.StatusNotFound)
		ctx.SetBodyString("not found\n")
	}
}

// bearer reports whether the Authorization header value carries token
// ("Bearer <token>"), compared in constant time.
func bearer(auth []byte, token string) bool {
	const scheme = "bearer "
	if len(auth) < len(scheme) || !bytes.EqualFold(auth[:len(scheme)], []byte(scheme)) {
		return false
	}
	got := trimSpace(auth[len(scheme):])
	return subtle.ConstantTimeCompare(got, []byte(token)) == 1
}
