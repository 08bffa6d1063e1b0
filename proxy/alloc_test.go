//go:build !race

package proxy

import (
	goruntime "runtime"
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

// TestQueueAllocs pins the allocations of one queued hit (decision,
// rewrite, spool append, memory queue, and the worker's delivery).
func TestQueueAllocs(t *testing.T) {
	for name, uri := range benchHits {
		g := newBenchQueueGateway(t)
		req := benchRequest(uri)
		var ctx fasthttp.RequestCtx
		for range 50 {
			g.serve(&ctx, req, fromProxy)
		}
		if ctx.Response.StatusCode() != fasthttp.StatusNoContent {
			t.Fatalf("%s: status %d", name, ctx.Response.StatusCode())
		}
		// AllocsPerRun runs on one P: let the workers take each hit, as
		// they do while a real server waits on the network. Otherwise the
		// queue only grows and every hit needs a new pooled buffer.
		serve := func() {
			g.serve(&ctx, req, fromProxy)
			for !g.h.delivery.Idle() {
				goruntime.Gosched()
			}
		}
		// Warm every worker's request and response buffers: idle workers
		// take hits in turn.
		for range 4 * g.h.Config().Delivery.Workers {
			serve()
		}
		// AllocsPerRun counts every goroutine's allocations, also those of
		// other tests' leftovers (timers, connection cleaners): noise only
		// adds, so the least of three runs is the queued hit's own count.
		n := testing.AllocsPerRun(500, serve)
		for range 2 {
			n = min(n, testing.AllocsPerRun(500, serve))
		}
		if n > maxProxyAllocs {
			t.Errorf("%s: %v allocations per queued hit, pinned at %d", name, n, maxProxyAllocs)
		}
	}
}

// TestQueueAllocsVendorsOn: with the other vendors on, a GA4 hit whose
// event maps to none of them (page_view by default) costs no allocation
// more: the vendor plan is made, finds nothing, and nothing is offered.
func TestQueueAllocsVendorsOn(t *testing.T) {
	t.Setenv("CONSENTGATE_VENDORS_MICROSOFT_ENABLED", "true")
	t.Setenv("CONSENTGATE_VENDORS_MICROSOFT_ID", "187000001")
	t.Setenv("CONSENTGATE_VENDORS_MICROSOFT_TOKEN", "ms-token-0123")
	t.Setenv("CONSENTGATE_VENDORS_META_ENABLED", "true")
	t.Setenv("CONSENTGATE_VENDORS_META_ID", "1234")
	t.Setenv("CONSENTGATE_VENDORS_META_TOKEN", "meta-token-0123")
	g := newBenchQueueGateway(t)
	if g.h.vendors == nil {
		t.Fatal("vendors are off")
	}
	req := benchRequest(benchHits["GA4Granted"])
	var ctx fasthttp.RequestCtx
	serve := func() {
		g.serve(&ctx, req, fromProxy)
		for !g.h.delivery.Idle() {
			goruntime.Gosched()
		}
	}
	for range 4 * g.h.Config().Delivery.Workers {
		serve()
	}
	n := testing.AllocsPerRun(500, serve)
	for range 2 {
		n = min(n, testing.AllocsPerRun(500, serve))
	}
	if n > maxProxyAllocs {
		t.Errorf("%v allocations per queued hit with vendors on, pinned at %d", n, maxProxyAllocs)
	}
}
