package proxy

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/valyala/fasthttp"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"

	"github.com/consentgate/consentgate/config"
	"github.com/consentgate/consentgate/consentmode"
	"github.com/consentgate/consentgate/declog"
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
	t.Parallel()
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
	t.Parallel()
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

// reloadLog is a logger for a Reloader whose entries a test can wait for.
type reloadLog struct {
	t       *testing.T
	entries chan observer.LoggedEntry
}

func newReloadLog(t *testing.T) (*reloadLog, *zap.Logger) {
	l := &reloadLog{t: t, entries: make(chan observer.LoggedEntry, 64)}
	return l, zap.New(reloadCore{zapcore.DebugLevel, nil, l.entries})
}

// reloadCore sends every entry, with its fields, to a channel.
type reloadCore struct {
	zapcore.LevelEnabler
	fields []zapcore.Field
	out    chan<- observer.LoggedEntry
}

func (c reloadCore) With(f []zapcore.Field) zapcore.Core {
	c.fields = append(append([]zapcore.Field(nil), c.fields...), f...)
	return c
}
func (c reloadCore) Check(e zapcore.Entry, ce *zapcore.CheckedEntry) *zapcore.CheckedEntry {
	return ce.AddCore(e, c)
}
func (c reloadCore) Write(e zapcore.Entry, f []zapcore.Field) error {
	c.out <- observer.LoggedEntry{Entry: e, Context: append(append([]zapcore.Field(nil), c.fields...), f...)}
	return nil
}
func (c reloadCore) Sync() error { return nil }

// wait returns the next entry with message msg, skipping others.
func (l *reloadLog) wait(msg string) zapcore.Entry { l.t.Helper(); return l.waitEntry(msg).Entry }

// waitEntry is wait with the entry's fields.
func (l *reloadLog) waitEntry(msg string) observer.LoggedEntry {
	l.t.Helper()
	timeout := time.After(10 * time.Second)
	for {
		select {
		case e := <-l.entries:
			if e.Message == msg {
				return e
			}
		case <-timeout:
			l.t.Fatalf("no %q log entry", msg)
		}
	}
}

// TestReload: the file watch applies a valid change and rejects an
// invalid one (the last good config keeps serving); Trigger (SIGHUP)
// reloads without a file change.
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
	logs, log := newReloadLog(t)
	r := NewReloader(g.h, g.m, log, path, func() (*config.Config, error) { return config.Load(path) })
	ctx, cancel := contextWithCancel()
	defer func() { cancel(); r.Wait() }()
	r.Start(ctx)

	// A valid change on disk is picked up by the file watch.
	writeFile(t, path, base+"consent: {mode: basic}\n")
	logs.wait("config reloaded")
	if mode := g.h.Config().Policy.Mode; mode != consentmode.ModeBasic {
		t.Fatalf("mode %v after the reload, want basic", mode)
	}
	if resp := g.do(fromProxy, "GET", deniedHit, map[string]string{"CF-IPCountry": "DE"}, ""); resp.Status != 204 || len(g.up.requests()) != 0 {
		t.Errorf("basic mode after reload: %d, upstream got %d", resp.Status, len(g.up.requests()))
	}

	// An invalid change is rejected; the last good config keeps serving.
	good := g.h.Config()
	writeFile(t, path, base+"consent: {mode: basic, bogus: 1}\n")
	logs.wait("config reload rejected; the last good config keeps serving")
	if g.h.Config() != good || g.m.reloads[reloadFailure].Get() != 1 {
		t.Errorf("invalid config: applied %v, failures counted %d", g.h.Config() != good, g.m.reloads[reloadFailure].Get())
	}
	if err := r.Reload(); err == nil {
		t.Errorf("Reload of an invalid file succeeded")
	}
	if resp := g.do(fromProxy, "GET", deniedHit, map[string]string{"CF-IPCountry": "DE"}, ""); resp.Status != 204 {
		t.Errorf("traffic after a rejected reload: %d", resp.Status)
	}

	// Trigger (SIGHUP) reloads: the environment changes, the file does not.
	writeFile(t, path, base+"consent: {mode: basic}\n")
	logs.wait("config reload: nothing changed")
	t.Setenv("CONSENTGATE_CONSENT_MODE", "advanced")
	r.Trigger()
	logs.wait("config reloaded")
	if mode := g.h.Config().Policy.Mode; mode != consentmode.ModeAdvanced {
		t.Errorf("mode %v after Trigger, want advanced", mode)
	}
}

// TestReloadUnderTraffic: hits in flight while a reload swaps the config
// are all answered, and each is decided by exactly one whole config, the
// one current when it arrived. The two configs differ in two things a
// cookieless hit carries upstream (the cookieless secret, which sets
// cid and sid, and the trusted proxies, which set _uip), so a hit that
// mixed them would match neither config's forward. The fake upstream
// holds every hit until all phases have run: the hits of each phase are
// in flight across the reloads that follow it. Run with -race.
func TestReloadUnderTraffic(t *testing.T) {
	g := newGateway(t, "")
	cfgA := loadConfig(t, "")
	t.Setenv("CONSENTGATE_COOKIELESS_SECRET", "reloaded-secret-9876543210")
	cfgB := loadConfig(t, `trusted_proxies: ["192.0.2.0/24"]`)
	hit := "GET " + deniedHit + " HTTP/1.1\r\nHost: m\r\nX-Forwarded-For: 198.51.100.23\r\nConnection: close\r\n\r\n"

	// What each config forwards for the hit, alone.
	forwardOf := func(cfg *config.Config) recorded {
		t.Helper()
		g.h.SetConfig(cfg)
		before := len(g.up.requests())
		if resp := g.raw(fromProxy, hit); resp.Status != fasthttp.StatusNoContent {
			t.Fatalf("hit: %d", resp.Status)
		}
		got := g.up.requests()
		if len(got) != before+1 {
			t.Fatalf("upstream got %d requests for one hit", len(got)-before)
		}
		return got[before]
	}
	wantA, wantB := forwardOf(cfgA), forwardOf(cfgB)
	qa, qb := query(t, wantA.URI), query(t, wantB.URI)
	if qa.Get("cid") == qb.Get("cid") || qa.Get("_uip") != "198.51.100.0" || qb.Get("_uip") != "10.1.2.0" || cfgA.PolicyVersion == cfgB.PolicyVersion {
		t.Fatalf("the configs do not tell their forwards apart:\nA %s\nB %s", wantA.URI, wantB.URI)
	}
	if again := forwardOf(cfgA); !cmp.Equal(again, wantA) {
		t.Fatalf("one config forwards the same hit differently (-first +second):\n%s", cmp.Diff(wantA, again))
	}
	seen := len(g.up.requests())

	arrived, release := make(chan struct{}), make(chan struct{})
	g.up.setRespond(func(ctx *fasthttp.RequestCtx) {
		arrived <- struct{}{} // recorded already
		<-release
		ctx.SetStatusCode(fasthttp.StatusNoContent)
	})
	next := cfgA
	r := NewReloader(g.h, g.m, zap.NewNop(), "", func() (*config.Config, error) { return next, nil })
	g.h.SetConfig(cfgA)

	// Phases A, B, A: each sends its hits, waits until the upstream holds
	// them all, then reloads into the next config.
	const perPhase = 6
	phases := []*config.Config{cfgA, cfgB, cfgA}
	var wg sync.WaitGroup
	errs := make(chan error, perPhase*len(phases))
	for i, cfg := range phases {
		if g.h.Config() != cfg {
			t.Fatalf("phase %d runs with the wrong config", i)
		}
		for range perPhase {
			wg.Add(1)
			go func() {
				defer wg.Done()
				resp, err := g.tryRaw(fromProxy, hit)
				if err == nil && resp.Status != fasthttp.StatusNoContent {
					err = fmt.Errorf("status %d", resp.Status)
				}
				if err != nil {
					errs <- err
				}
			}()
		}
		for n := range perPhase {
			select {
			case <-arrived:
			case <-time.After(10 * time.Second):
				t.Fatalf("phase %d: %d of %d hits reached the upstream", i, n, perPhase)
			}
		}
		if i+1 < len(phases) {
			next = phases[i+1]
			if err := r.Reload(); err != nil {
				t.Fatal(err)
			}
		}
	}
	close(release)
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Errorf("hit in flight across a reload: %v", err)
	}
	if n := g.m.reloads[reloadSuccess].Get(); n != 2 {
		t.Errorf("%d successful reloads, want 2", n)
	}

	// Each hit was logged, after the last reload, with the policy version
	// of the config that decided it: the three forwardOf hits (A, B, A)
	// and the phases'.
	if err := g.dlog.Close(); err != nil { // drains the log
		t.Fatal(err)
	}
	versions := map[string]int{}
	for _, line := range strings.Split(strings.TrimSpace(g.logs.String()), "\n") {
		var entry struct {
			PolicyVersion string `json:"policy_version"`
		}
		if err := json.Unmarshal([]byte(line), &entry); err != nil {
			t.Fatalf("decision log line %q: %v", line, err)
		}
		versions[entry.PolicyVersion]++
	}
	want := map[string]int{cfgA.PolicyVersion: 2 + 2*perPhase, cfgB.PolicyVersion: 1 + perPhase}
	if diff := cmp.Diff(want, versions); diff != "" {
		t.Errorf("decision log lines by policy_version (-want +got):\n%s", diff)
	}

	// The upstream recorded the hits in the order they arrived, phase by
	// phase: each is its phase's config's forward, whole.
	got := g.up.requests()[seen:]
	if len(got) != perPhase*len(phases) {
		t.Fatalf("upstream got %d hits, want %d", len(got), perPhase*len(phases))
	}
	for i, r := range got {
		want, name := wantA, "A"
		if phases[i/perPhase] == cfgB {
			want, name = wantB, "B"
		}
		if diff := cmp.Diff(want, r); diff != "" {
			t.Errorf("hit %d of phase %d is not config %s's forward (-want +got):\n%s", i%perPhase, i/perPhase, name, diff)
		}
	}
}

// waitFor polls cond, for state that changes without an event to wait on
// (counters, connection counts), and fails the test if it does not hold
// within 5 s.
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
	t.Parallel()
	l := declog.New(&syncBuffer{}, nil, NewMetrics("t").Set())
	cfg := loadConfig(t, "")
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	l.Add(declog.Entry{Config: cfg, Decision: consentmode.Decision{Action: consentmode.ActionBlock}}, nil)
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
}
