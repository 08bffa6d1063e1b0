package proxy

import (
	"bytes"
	"strings"
	"testing"
	"time"

	"github.com/VictoriaMetrics/metrics"
	"github.com/valyala/fasthttp"
)

// TestMetricsHelp: every series on /metrics has a # HELP line with text,
// and each of the gateway's own families has a text written for it.
func TestMetricsHelp(t *testing.T) {
	metrics.ExposeMetadata(true)
	defer metrics.ExposeMetadata(false)
	var buf bytes.Buffer
	NewMetrics("test").WritePrometheus(&buf)
	helps := 0
	for line := range strings.SplitSeq(buf.String(), "\n") {
		rest, ok := strings.CutPrefix(line, "# HELP ")
		if !ok {
			continue
		}
		helps++
		name, text, _ := strings.Cut(rest, " ")
		if strings.TrimSpace(text) == "" {
			t.Errorf("# HELP %s has no text", name)
		}
	}
	if helps < 20 {
		t.Fatalf("only %d # HELP lines: metadata not exposed?\n%s", helps, buf.String())
	}
	for _, n := range NewMetrics("test").Names() {
		if help[n] == "" {
			t.Errorf("metric %s has no text in help", n)
		}
	}
}

// TestUpstreamFailureMetrics: failed upstream calls are counted by family,
// route and kind, their latency is in the histogram, and the browser's
// 5xx shows in the responses by status class.
func TestUpstreamFailureMetrics(t *testing.T) {
	g := newGateway(t, "timeouts: {upstream: 200ms}")
	g.up.setRespond(func(ctx *fasthttp.RequestCtx) { time.Sleep(500 * time.Millisecond) })
	if resp := g.do(fromVisitor, "GET", "/g/collect?v=2&tid=G-1&gcs=G100", nil, ""); resp.Status != fasthttp.StatusGatewayTimeout {
		t.Fatalf("slow upstream: %d, want 504", resp.Status)
	}
	g.up.setRespond(func(ctx *fasthttp.RequestCtx) { ctx.SetStatusCode(fasthttp.StatusServiceUnavailable) })
	g.do(fromProxy, "GET", "/g/collect?v=2&tid=G-1&gcs=G111", map[string]string{"CF-IPCountry": "US"}, "")
	_, body := scrape(t, g.h, "/metrics", "GET", "")
	for _, want := range []string{
		`consentgate_upstream_errors_total{family="ga4",route="ga4_collect",kind="timeout"} 1`,
		`consentgate_upstream_errors_total{family="ga4",route="ga4_collect",kind="5xx"} 1`,
		`consentgate_upstream_duration_seconds_count{family="ga4",route="ga4_collect"} 2`,
		`consentgate_responses_total{family="ga4",class="5xx"} 2`,
		`consentgate_upstream_errors_total{family="ga4",route="ga4_collect",kind="refused"} 0`,
	} {
		if !strings.Contains(body, want) {
			t.Errorf("/metrics lacks %s", want)
		}
	}
}
