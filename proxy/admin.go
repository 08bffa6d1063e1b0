package proxy

import (
	"net/http/pprof"

	"github.com/valyala/fasthttp"
	"github.com/valyala/fasthttp/fasthttpadaptor"
)

var pprofHandler = fasthttpadaptor.NewFastHTTPHandlerFunc(pprof.Index)

// ServeAdmin is the admin listener's handler: /metrics, /healthz,
// /readyz, /debug/explain and /debug/pprof/.
func (h *Handler) ServeAdmin(ctx *fasthttp.RequestCtx) {
	path := ctx.Path()
	if h.health(ctx, path) {
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
