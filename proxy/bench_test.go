package proxy

import (
	"net"
	"os"
	"path/filepath"
	"testing"

	"github.com/valyala/fasthttp"
	"github.com/valyala/fasthttp/fasthttputil"
	"go.uber.org/zap"

	"github.com/consentgate/consentgate/config"
)

// benchGateway is a Handler in front of an in-memory upstream that
// answers 204, for benchmarks and allocation tests of one proxied request.
type benchGateway struct {
	h    *Handler
	up   *fasthttp.Server
	ln   *fasthttputil.InmemoryListener
	done chan struct{}
}

func newBenchGateway(tb testing.TB) *benchGateway {
	tb.Helper()
	g := &benchGateway{ln: fasthttputil.NewInmemoryListener(), done: make(chan struct{})}
	g.up = &fasthttp.Server{Handler: func(ctx *fasthttp.RequestCtx) { ctx.SetStatusCode(fasthttp.StatusNoContent) }}
	go func() {
		defer close(g.done)
		_ = g.up.Serve(g.ln)
	}()
	cfg := benchConfig(tb)
	var err error
	g.h, err = NewHandler(cfg, zap.NewNop(), NewMetrics("bench"), nil, Options{
		Dial:        func(string) (net.Conn, error) { return g.ln.Dial() },
		Now:         fixedNow,
		RouteScheme: "http",
	})
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() {
		_ = g.up.Shutdown()
		_ = g.ln.Close()
		<-g.done
		g.h.clients.closeIdle()
		g.h.Close()
	})
	return g
}

// serve runs one request through the handler the way fasthttp's server does.
func (g *benchGateway) serve(ctx *fasthttp.RequestCtx, req *fasthttp.Request, from net.Addr) {
	ctx.Request.Reset()
	req.CopyTo(&ctx.Request)
	ctx.Response.Reset()
	ctx.SetRemoteAddr(from)
	g.h.ServeHTTP(ctx)
}

var benchHits = map[string]string{
	"GA4Denied":  "/g/collect?v=2&tid=G-F9XM71K45T&gtm=45he5641&_p=1749196701069&gcs=G100&gcd=13p3p3p2p5l1&npa=1&dma=1&cid=1174285007.1749196701&ecid=1548980841&ul=de-de&sr=1920x1080&_s=1&sid=1749196701&sct=1&seg=0&dl=https%3A%2F%2Fshop.example%2F%3Fgclid%3DCj0%26_gl%3D1*x&dt=Home&en=page_view&_fv=1&_ss=1&tfd=1523",
	"GA4Granted": "/g/collect?v=2&tid=G-F9XM71K45T&gtm=45he5641&_p=1749196701069&gcs=G111&gcd=13r3r3r2r5l1&npa=0&dma=1&cid=1174285007.1749196701&ul=de-de&sr=1920x1080&_s=1&sid=1749196701&sct=3&seg=1&dl=https%3A%2F%2Fshop.example%2F&dt=Home&en=page_view&tfd=1523",
}

func benchRequest(uri string) *fasthttp.Request {
	req := &fasthttp.Request{}
	req.Header.SetMethod("GET")
	req.SetRequestURI(uri)
	req.Header.SetHost("metrics.shop.example")
	req.Header.Set("User-Agent", "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/136.0.0.0 Safari/537.36")
	req.Header.Set("Cookie", "_ga=GA1.1.1174285007.1749196701; _ga_F9XM71K45T=GS1.1.1749196701.1.0.1749196701.0.0.0")
	req.Header.Set("Referer", "https://shop.example/cart?x=1")
	req.Header.Set("CF-IPCountry", "DE")
	req.Header.Set("Accept-Language", "de-DE,de;q=0.9")
	// A browser's credentialed hit: the CORS default (same registrable
	// domain) answers it, and the allocation pin covers that path.
	req.Header.Set("Origin", "https://shop.example")
	return req
}

// BenchmarkProxy is one proxied request end to end in process: the
// handler decides, rewrites, sends to the in-memory upstream and relays
// its answer.
func BenchmarkProxy(b *testing.B) {
	for name, uri := range benchHits {
		b.Run(name, func(b *testing.B) {
			g := newBenchGateway(b)
			req := benchRequest(uri)
			var ctx fasthttp.RequestCtx
			from := fromProxy
			g.serve(&ctx, req, from)
			if ctx.Response.StatusCode() != fasthttp.StatusNoContent {
				b.Fatalf("status %d", ctx.Response.StatusCode())
			}
			b.ReportAllocs()
			b.ResetTimer()
			for b.Loop() {
				g.serve(&ctx, req, from)
			}
		})
	}
}

// BenchmarkQueue is one queued GA4 hit in process: the handler decides,
// rewrites, appends the hit to the spool and the memory queue and answers
// 204; the lane's workers deliver it to the in-memory upstream meanwhile
// (their work counts in the allocations, not in ns/op on many cores).
func BenchmarkQueue(b *testing.B) {
	for name, uri := range benchHits {
		b.Run(name, func(b *testing.B) {
			g := newBenchQueueGateway(b)
			req := benchRequest(uri)
			var ctx fasthttp.RequestCtx
			g.serve(&ctx, req, fromProxy)
			if ctx.Response.StatusCode() != fasthttp.StatusNoContent {
				b.Fatalf("status %d", ctx.Response.StatusCode())
			}
			b.ReportAllocs()
			b.ResetTimer()
			for b.Loop() {
				g.serve(&ctx, req, fromProxy)
			}
		})
	}
}

// newBenchQueueGateway is a bench gateway with delivery started and its
// spool in a temporary directory.
func newBenchQueueGateway(tb testing.TB) *benchGateway {
	tb.Helper()
	dir := tb.TempDir()
	tb.Setenv("CONSENTGATE_DELIVERY_SPOOL_DIR", dir)
	g := newBenchGateway(tb)
	if err := g.h.StartDelivery(); err != nil {
		tb.Fatal(err)
	}
	return g
}

func benchConfig(tb testing.TB) *config.Config {
	tb.Helper()
	path := filepath.Join(tb.TempDir(), "bench.yaml")
	if err := os.WriteFile(path, []byte(testConfig), 0o600); err != nil {
		tb.Fatal(err)
	}
	cfg, err := config.Load(path)
	if err != nil {
		tb.Fatal(err)
	}
	return cfg
}
