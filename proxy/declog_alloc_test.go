//go:build !race

package proxy

import (
	"testing"

	"github.com/valyala/fasthttp"
	"go.uber.org/zap/zapcore"

	"github.com/consentgate/consentgate/declog"
)

// blockedSink never finishes a write until released: the decision log's
// writer stalls on it, its queue fills, and every further Add takes the
// drop path, which copies the hit's inputs like the queued path does. So
// AllocsPerRun counts the request path's share of the log, not the
// writer's encoding.
type blockedSink chan struct{}

func (b blockedSink) Write(p []byte) (int, error) { <-b; return len(p), nil }

// TestProxyAllocsWithDecisionLog: recording a hit for the decision log
// (its consent inputs and cookie names included) adds no allocation to
// the request path.
func TestProxyAllocsWithDecisionLog(t *testing.T) {
	for name, uri := range benchHits {
		g := newBenchGateway(t)
		sink := make(blockedSink)
		g.h.dlog = declog.New(zapcore.AddSync(sink), nil, nil)
		req := benchRequest(uri)
		req.Header.Set("Cookie", "_ga=GA1.1.1.2; euconsent-v2=CPzHq4APzHq4AAHABBENC; x=y")
		var ctx fasthttp.RequestCtx
		for range 9000 { // more than the log's queue holds
			g.serve(&ctx, req, fromProxy)
		}
		if n := testing.AllocsPerRun(500, func() { g.serve(&ctx, req, fromProxy) }); n > maxProxyAllocs {
			t.Errorf("%s: %v allocations per request with the decision log, pinned at %d", name, n, maxProxyAllocs)
		}
		close(sink)
		if err := g.h.dlog.Close(); err != nil {
			t.Fatal(err)
		}
	}
}
