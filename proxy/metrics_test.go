package proxy

import (
	"bytes"
	"strings"
	"testing"

	"github.com/VictoriaMetrics/metrics"
	"github.com/valyala/fasthttp"

	"github.com/consentgate/consentgate/delivery"
)

// TestMetricsHelp: every series on /metrics has a # HELP line with text,
// and each of the gateway's own families has a text written for it.
func TestMetricsHelp(t *testing.T) {
	// Not parallel: ExposeMetadata is global, and a parallel test's
	// deferred reset would hide the metadata from this one.
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
	t.Parallel()
	g := newGateway(t, "timeouts: {upstream: 200ms}")
	release := make(chan struct{})
	g.up.setRespond(func(ctx *fasthttp.RequestCtx) { <-release }) // answers only after the timeout
	resp := g.do(fromVisitor, "GET", "/g/collect?v=2&tid=G-1&gcs=G100", nil, "")
	close(release)
	if resp.Status != fasthttp.StatusGatewayTimeout {
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

// labels lists the label values of a catalogue with n values.
func labels[K catalogue](n K) []string {
	var out []string
	for k := range n {
		out = append(out, k.String())
	}
	return out
}

// TestCatalogueLabelsInHelp: the help text of each family labelled by a
// closed catalogue names every value of it, so a new value cannot go
// undocumented on /metrics and in docs/operators.md.
func TestCatalogueLabelsInHelp(t *testing.T) {
	t.Parallel()
	var malformed []string
	for _, in := range malformedInputs {
		malformed = append(malformed, in.name)
	}
	tests := []struct {
		metric string
		labels []string
	}{
		{"consentgate_upstream_errors_total", labels(numUpstreamErrKinds)},
		{"consentgate_conflicting_headers_total", labels(numConflictHeaders)},
		{"consentgate_accept_errors_total", labels(numAcceptErrKinds)},
		{"consentgate_script_cache_total", labels(numCacheResults)},
		{"consentgate_config_reloads_total", labels(numReloadResults)},
		{"consentgate_malformed_signals_total", malformed},
		{"consentgate_delivery_dropped_total", delivery.DropCauses()},
		{"consentgate_delivery_retried_total", delivery.RetryCauses()},
	}
	for _, tt := range tests {
		text := help[tt.metric]
		for _, l := range tt.labels {
			if !strings.Contains(text, l) {
				t.Errorf("help of %s does not name %q: %s", tt.metric, l, text)
			}
		}
	}
}

// TestCatalogueNames: every value of each label catalogue has a name of
// its own (a value added without one would make an empty label).
func TestCatalogueNames(t *testing.T) {
	t.Parallel()
	for name, ls := range map[string][]string{
		"rejectReason":    labels(numRejectReasons + 1),
		"upstreamErrKind": labels(numUpstreamErrKinds),
		"conflictHeader":  labels(numConflictHeaders),
		"acceptErrKind":   labels(numAcceptErrKinds),
		"cacheResult":     labels(numCacheResults),
		"reloadResult":    labels(numReloadResults),
		"dropCause":       delivery.DropCauses(),
		"retryCause":      delivery.RetryCauses(),
	} {
		seen := map[string]bool{}
		for i, l := range ls {
			if l == "" || seen[l] {
				t.Errorf("%s %d: label %q is empty or repeated", name, i, l)
			}
			seen[l] = true
		}
	}
}
