//go:build !race

package proxy

import (
	"testing"

	"github.com/valyala/fasthttp"
)

// maxProxyAllocs pins the allocations of one proxied request (handler,
// decision, rewrite, upstream round trip, response hygiene) once pools are
// warm. Raise it only with a reason in the commit message.
const maxProxyAllocs = 0

func TestProxyAllocs(t *testing.T) {
	for name, uri := range benchHits {
		g := newBenchGateway(t)
		req := benchRequest(uri)
		var ctx fasthttp.RequestCtx
		for range 3 {
			g.serve(&ctx, req, fromProxy)
		}
		if ctx.Response.StatusCode() != fasthttp.StatusNoContent {
			t.Fatalf("%s: status %d", name, ctx.Response.StatusCode())
		}
		if string(ctx.Response.Header.Peek("Access-Control-Allow-Origin")) != "https://shop.example" {
			t.Fatalf("%s: the CORS default did not answer the origin", name)
		}
		if n := testing.AllocsPerRun(200, func() { g.serve(&ctx, req, fromProxy) }); n > maxProxyAllocs {
			t.Errorf("%s: %v allocations per proxied request, pinned at %d", name, n, maxProxyAllocs)
		}
	}
}
