package proxy

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/valyala/fasthttp"
	"go.uber.org/zap"

	"github.com/consentgate/consentgate/config"
	"github.com/consentgate/consentgate/consentmode"
)

func scrape(t *testing.T, h *Handler, path, method, body string) (int, string) {
	t.Helper()
	var ctx fasthttp.RequestCtx
	ctx.Request.Header.SetMethod(method)
	ctx.Request.SetRequestURI(path)
	ctx.Request.SetBodyString(body)
	h.ServeAdmin(&ctx)
	return ctx.Response.StatusCode(), string(ctx.Response.Body())
}

func TestMetricsEndToEnd(t *testing.T) {
	g := newGateway(t, "")
	g.do(fromProxy, "GET", deniedHit, map[string]string{"CF-IPCountry": "DE"}, "")
	g.do(fromProxy, "GET", "/g/collect?v=2&tid=G-1&gcs=G1x1", nil, "")
	g.do(fromProxy, "GET", "/g/collect?v=2&tid=G-1&gcs=G111&gcd=13r3r3r2r5l1", map[string]string{"CF-IPCountry": "US", "Sec-GPC": "1"}, "")
	g.do(fromVisitor, "GET", "/nope", nil, "")
	status, body := scrape(t, g.h, "/metrics", "GET", "")
	if status != 200 {
		t.Fatalf("/metrics %d", status)
	}
	for _, want := range []string{
		`consentgate_hits_total{route="ga4_collect",family="ga4",action="cookieless"} 2`,
		`consentgate_consent_downgrades_total{type="ad_personalization",source="gpc"} 1`,
		`consentgate_malformed_signals_total{input="gcs"} 1`,
		`consentgate_region_unknown_total 1`,
		`consentgate_removed_fields_total{field="uid"} 1`,
		`consentgate_rejected_total{reason="unknown_path"} 1`,
		`consentgate_upstream_duration_seconds_count{family="ga4",route="ga4_collect"} 3`,
		`consentgate_responses_total{family="ga4",class="2xx"} 3`,
		`consentgate_responses_total{family="none",class="4xx"} 1`,
		`consentgate_decision_reasons_total{family="ga4",reason="consent_downgraded"} 1`,
		`consentgate_build_info{version="test"} 1`,
		`consentgate_in_flight_requests 0`,
		`go_goroutines`,
	} {
		if !strings.Contains(body, want) {
			t.Errorf("/metrics lacks %s", want)
		}
	}
}

func TestDebugExplain(t *testing.T) {
	g := newGateway(t, "")
	req := `{"method":"GET","url":"https://m.shop.example` + deniedHit + `","headers":{"Cookie":"_ga=1"},"region":"DE"}`
	status, body := scrape(t, g.h, "/debug/explain", "POST", req)
	var e Explanation
	if err := json.Unmarshal([]byte(body), &e); err != nil || status != 200 {
		t.Fatalf("/debug/explain %d %s", status, body)
	}
	if e.Action != "cookieless" || e.Forward == nil || strings.Contains(e.Forward.URL, "uid=") || e.Region != "DE" {
		t.Errorf("explanation %+v", e)
	}
	if n := len(g.up.requests()); n != 0 {
		t.Errorf("explain sent %d requests upstream", n)
	}
	if status, _ := scrape(t, g.h, "/debug/explain", "POST", "{"); status != 400 {
		t.Errorf("bad JSON: %d", status)
	}
}

func writeFile(t *testing.T, path, content string) {
	t.Helper()
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, path); err != nil { // as editors and ConfigMaps do
		t.Fatal(err)
	}
}

func TestReload(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "config.yaml")
	base := "cookieless: {secret: \"test-secret-0123456789\"}\ntrusted_proxies: [\"10.0.0.0/8\"]\n"
	writeFile(t, path, base)
	cfg, err := config.Load(path)
	if err != nil {
		t.Fatal(err)
	}
	g := newGateway(t, "")
	g.h.SetConfig(cfg)
	r := NewReloader(g.h, g.m, zap.NewNop(), path, func() (*config.Config, error) { return config.Load(path) })
	ctx, cancel := contextWithCancel()
	defer func() { cancel(); r.Wait() }()
	r.Start(ctx)

	// A valid change on disk is picked up by the file watch.
	writeFile(t, path, base+"consent: {mode: basic}\n")
	waitFor(t, func() bool { return g.h.Config().Policy.Mode == consentmode.ModeBasic })
	if resp := g.do(fromProxy, "GET", deniedHit, map[string]string{"CF-IPCountry": "DE"}, ""); resp.Status != 204 || len(g.up.requests()) != 0 {
		t.Errorf("basic mode after reload: %d, upstream got %d", resp.Status, len(g.up.requests()))
	}

	// An invalid change is rejected; the last good config keeps serving.
	good := g.h.Config()
	writeFile(t, path, base+"consent: {mode: basic, bogus: 1}\n")
	waitFor(t, func() bool { return g.m.reloads[reloadFailure].Get() >= 1 })
	if g.h.Config() != good {
		t.Errorf("invalid config was applied")
	}
	if err := r.Reload(); err == nil {
		t.Errorf("Reload of an invalid file succeeded")
	}
	if resp := g.do(fromProxy, "GET", deniedHit, map[string]string{"CF-IPCountry": "DE"}, ""); resp.Status != 204 {
		t.Errorf("traffic after a rejected reload: %d", resp.Status)
	}

	// Trigger (SIGHUP) reloads too.
	writeFile(t, path, base)
	r.Trigger()
	waitFor(t, func() bool { return g.h.Config().Policy.Mode == consentmode.ModeAdvanced })
}

// TestReloadUnderTraffic swaps configs while requests flow; run with
// -race. Every request sees one whole config: a hit is either blocked
// (basic) or forwarded cookieless (advanced), never anything else.
func TestReloadUnderTraffic(t *testing.T) {
	g := newGateway(t, "")
	advanced := loadConfig(t, "")
	basic := loadConfig(t, "consent: {mode: basic}")
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			if i%2 == 0 {
				g.h.SetConfig(basic)
			} else {
				g.h.SetConfig(advanced)
			}
		}
	}()
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range 25 {
				resp, err := g.tryRaw(fromProxy, "GET "+deniedHit+" HTTP/1.1\r\nHost: m\r\nCF-IPCountry: DE\r\nConnection: close\r\n\r\n")
				if err != nil || resp.Status != 204 {
					t.Errorf("request during reloads: %v %v", err, resp)
					return
				}
			}
		}()
	}
	time.Sleep(50 * time.Millisecond)
	close(stop)
	wg.Wait()
	for _, r := range g.up.requests() {
		if strings.Contains(r.URI, "uid=") || strings.Contains(r.URI, "cid=1174285007.1749196701") {
			t.Errorf("a request saw half a config: %s", r.URI)
		}
	}
}

func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not met within 5s")
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func contextWithCancel() (context.Context, context.CancelFunc) {
	return context.WithCancel(context.Background())
}

// TestDecisionLogAddAfterClose: a request that outlived the shutdown
// timeout must not panic on the closed log.
func TestDecisionLogAddAfterClose(t *testing.T) {
	l := newDecisionLog(&syncBuffer{}, func() error { return nil }, NewMetrics("t"))
	cfg := loadConfig(t, "")
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	l.add(logEntry{cfg: cfg, d: consentmode.Decision{Action: consentmode.ActionBlock}})
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
}
