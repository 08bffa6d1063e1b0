package proxy

import (
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/valyala/fasthttp"
)

const gtagBody = `/* gtag.js */ (function(){var u="https://g-abc123.fps.goog/metrics/g/collect";})();`

func scriptUpstream(g *gateway, fetches *atomic.Int32, status *atomic.Int32) {
	g.up.setRespond(func(ctx *fasthttp.RequestCtx) {
		fetches.Add(1)
		if s := status.Load(); s != 0 && s != 200 {
			ctx.SetStatusCode(int(s))
			return
		}
		ctx.SetContentType("application/javascript; charset=UTF-8")
		ctx.Response.Header.Set("Cache-Control", "private, max-age=900")
		ctx.SetBodyString(gtagBody + strings.Repeat(" ", 2000))
	})
}

func TestScriptCacheHitAndHeaders(t *testing.T) {
	t.Parallel()
	g := newGateway(t, "")
	var fetches, status atomic.Int32
	scriptUpstream(g, &fetches, &status)
	first := g.do(fromProxy, "GET", "/gtag/js?id=G-ABC123&cb=1", map[string]string{"CF-IPCountry": "DE", "Cookie": "_ga=1"}, "")
	second := g.do(fromProxy, "GET", "/gtag/js?id=G-ABC123&cb=2", map[string]string{"CF-IPCountry": "DE", "Accept-Encoding": "gzip"}, "")
	if first.Status != 200 || !strings.HasPrefix(first.Body, "/* gtag.js */") || second.Status != 200 {
		t.Fatalf("answers %d %d", first.Status, second.Status)
	}
	if n := fetches.Load(); n != 1 {
		t.Errorf("%d upstream fetches, want 1 (cache busters are not part of the key)", n)
	}
	if second.get("Content-Encoding") != "gzip" || first.get("Cache-Control") != "public, max-age=300" || first.get("Etag") == "" {
		t.Errorf("headers %v / %v", first.Header, second.Header)
	}
	r := g.up.requests()[0]
	if r.Host != "www.googletagmanager.com" || r.URI != "/gtag/js?id=G-ABC123" {
		t.Errorf("fetch %s %s", r.Host, r.URI)
	}
	if _, ok := r.Header["Cookie"]; ok {
		t.Errorf("script fetch carried a cookie")
	}
	notModified := g.do(fromProxy, "GET", "/gtag/js?id=G-ABC123", map[string]string{"CF-IPCountry": "DE", "If-None-Match": first.get("Etag")}, "")
	if notModified.Status != fasthttp.StatusNotModified {
		t.Errorf("If-None-Match: %d", notModified.Status)
	}
}

// TestScriptColdStampede: 100 concurrent requests for an uncached script
// cause exactly one upstream fetch. The upstream holds that fetch until
// all 100 requests have joined it (the one that started it and the 99
// others), then answers.
func TestScriptColdStampede(t *testing.T) {
	t.Parallel()
	const n = 100
	g := newGateway(t, "")
	fetching, release := make(chan struct{}, n), make(chan struct{})
	var fetches atomic.Int32
	g.up.setRespond(func(ctx *fasthttp.RequestCtx) {
		fetches.Add(1)
		fetching <- struct{}{}
		<-release
		ctx.SetContentType("application/javascript; charset=UTF-8")
		ctx.Response.Header.Set("Cache-Control", "max-age=900")
		ctx.SetBodyString(gtagBody)
	})
	joined := make(chan struct{}, n)
	g.h.scripts.waiting = func() { joined <- struct{}{} }
	released := false
	defer func() {
		if !released {
			close(release) // a failed test must not leave the upstream holding connections
		}
	}()

	var wg sync.WaitGroup
	errs := make(chan error, n)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			resp, err := g.tryRaw(fromProxy, fmt.Sprintf("GET /gtag/js?id=G-ABC123&r=%d HTTP/1.1\r\nHost: m.example\r\nCF-IPCountry: DE\r\nConnection: close\r\n\r\n", i))
			if err == nil && (resp.Status != 200 || resp.Body != gtagBody) {
				err = fmt.Errorf("status %d body %q", resp.Status, resp.Body)
			}
			if err != nil {
				errs <- err
			}
		}()
	}
	timeout := time.After(10 * time.Second)
	fetched, waiting := 0, 0
	for fetched != 1 || waiting != n {
		select {
		case <-fetching:
			fetched++
			if fetched > 1 {
				t.Fatalf("a second upstream fetch started while %d requests waited for the first", waiting)
			}
		case <-joined:
			waiting++
		case <-timeout:
			t.Fatalf("%d upstream fetches and %d waiting requests, want 1 and %d", fetched, waiting, n)
		}
	}
	close(release)
	released = true
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if n := fetches.Load(); n != 1 {
		t.Errorf("%d upstream fetches for 100 concurrent cold requests, want 1", n)
	}
	if got := g.m.cache[cacheMiss].Get(); got != 1 {
		t.Errorf("script cache misses %d, want 1", got)
	}
	if got := g.m.cache[cacheCoalesced].Get(); got != n-1 {
		t.Errorf("coalesced requests %d, want %d", got, n-1)
	}
}

func TestScriptStaleAndExpiry(t *testing.T) {
	t.Parallel()
	g := newGateway(t, "")
	var fetches, status atomic.Int32
	scriptUpstream(g, &fetches, &status)
	get := func() *response {
		return g.do(fromProxy, "GET", "/gtm.js?id=GTM-P9TXQF82", map[string]string{"CF-IPCountry": "DE"}, "")
	}
	get()
	g.h.scripts.c.Wait()
	get()
	if n := fetches.Load(); n != 1 {
		t.Fatalf("%d fetches before expiry", n)
	}
	g.advance(16 * time.Minute) // past max-age=900
	get()
	g.h.scripts.wg.Wait() // the background refresh
	if n := fetches.Load(); n != 2 {
		t.Errorf("%d fetches after expiry, want 2", n)
	}
	g.h.scripts.c.Wait()
	g.advance(16 * time.Minute)
	status.Store(503)
	if resp := get(); resp.Status != 200 || !strings.HasPrefix(resp.Body, "/* gtag.js */") {
		t.Errorf("upstream failing: %d, want the stale copy", resp.Status)
	}
	g.h.scripts.wg.Wait()
	if fetches.Load() != 3 {
		t.Errorf("no refresh attempt while serving stale")
	}
	// With nothing cached, a failing upstream is a 502 and nothing is stored.
	if resp := g.do(fromProxy, "GET", "/gtm.js?id=GTM-OTHER", nil, ""); resp.Status != fasthttp.StatusBadGateway {
		t.Errorf("cold and failing: %d", resp.Status)
	}
}

func TestScriptPerRegionKeys(t *testing.T) {
	t.Parallel()
	g := newGateway(t, `upstream: "http://g-abc123.fps.goog"
path_prefix: /metrics`)
	var fetches, status atomic.Int32
	scriptUpstream(g, &fetches, &status)
	de := g.do(fromProxy, "GET", "/metrics/gtag/js?id=G-ABC123", map[string]string{"X-Forwarded-CountryRegion": "DE"}, "")
	g.h.scripts.c.Wait()
	g.do(fromProxy, "GET", "/metrics/gtag/js?id=G-ABC123", map[string]string{"X-Forwarded-CountryRegion": "US"}, "")
	g.h.scripts.c.Wait()
	g.do(fromProxy, "GET", "/metrics/gtag/js?id=G-ABC123", map[string]string{"X-Forwarded-CountryRegion": "DE"}, "")
	if n := fetches.Load(); n != 2 {
		t.Errorf("%d fetches for DE, US, DE; want 2", n)
	}
	reqs := g.up.requests()
	if reqs[0].Header["X-Forwarded-Countryregion"] != "DE" || reqs[1].Header["X-Forwarded-Countryregion"] != "US" || reqs[0].URI != "/metrics/gtag/js?id=G-ABC123" {
		t.Errorf("fetches %+v", reqs)
	}
	if !strings.Contains(de.Body, `var u="/metrics/g/collect"`) {
		t.Errorf("upstream reference not rewritten to the first-party path: %s", de.Body[:80])
	}
}

func TestScriptTagAllowlist(t *testing.T) {
	t.Parallel()
	g := newGateway(t, `tags: ["G-ABC123"]`)
	var fetches, status atomic.Int32
	scriptUpstream(g, &fetches, &status)
	for _, uri := range []string{"/gtag/js?id=G-OTHER", "/gtag/js", "/gtm.js?id=GTM-X"} {
		if resp := g.do(fromProxy, "GET", uri, nil, ""); resp.Status != fasthttp.StatusForbidden {
			t.Errorf("%s: %d, want 403", uri, resp.Status)
		}
	}
	if resp := g.do(fromProxy, "POST", "/gtag/js?id=G-ABC123", nil, "x"); resp.Status != fasthttp.StatusMethodNotAllowed {
		t.Errorf("POST script: %d", resp.Status)
	}
	if n := fetches.Load(); n != 0 {
		t.Errorf("refused script requests reached the upstream: %d", n)
	}
}

// TestScriptStaleWhileRevalidate: with the upstream hanging, requests for
// an expired script get the cached copy at once (not after the upstream
// answers or times out) and exactly one background refresh runs; once it
// succeeds the fresh copy is served.
func TestScriptStaleWhileRevalidate(t *testing.T) {
	t.Parallel()
	g := newGateway(t, "timeouts: {upstream: 15s}")
	var fetches atomic.Int32
	release := make(chan struct{})
	var hang atomic.Bool
	g.up.setRespond(func(ctx *fasthttp.RequestCtx) {
		n := fetches.Add(1)
		if hang.Load() {
			<-release
		}
		ctx.Response.Header.Set("Cache-Control", "max-age=900")
		ctx.SetBodyString(fmt.Sprintf("/* gtag.js v%d */", n))
	})
	get := func() (*response, error) {
		return g.tryRaw(fromProxy, "GET /gtm.js?id=GTM-P9TXQF82 HTTP/1.1\r\nHost: m\r\nCF-IPCountry: DE\r\nConnection: close\r\n\r\n")
	}
	if r, err := get(); err != nil || r.Body != "/* gtag.js v1 */" {
		t.Fatalf("first fetch: %v %+v", err, r)
	}
	g.h.scripts.c.Wait()
	g.advance(16 * time.Minute)
	hang.Store(true)
	released := false
	defer func() {
		if !released {
			close(release) // a failed test must not leave the upstream hanging
		}
	}()
	var wg sync.WaitGroup
	for range 10 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r, err := get()
			if err != nil || r.Status != 200 || r.Body != "/* gtag.js v1 */" {
				t.Errorf("expired script with a hanging upstream: %v %+v", err, r)
			}
		}()
	}
	// The upstream hangs until release: the requests are answered only
	// if none waits for it.
	answered := make(chan struct{})
	go func() { wg.Wait(); close(answered) }()
	select {
	case <-answered:
	case <-time.After(10 * time.Second):
		t.Fatal("stale requests wait for the hanging upstream")
	}
	close(release)
	released = true
	g.h.scripts.wg.Wait()
	if n := fetches.Load(); n != 2 {
		t.Errorf("%d upstream fetches, want the first and one refresh", n)
	}
	g.h.scripts.c.Wait()
	if r, err := get(); err != nil || r.Body != "/* gtag.js v2 */" {
		t.Errorf("after the refresh: %v %+v", err, r)
	}
}

// TestScriptVariantsBounded: 200 script requests for one tag, each with a
// different client-chosen l, reach the upstream at most
// maxScriptVariants+1 times (the plain script and the bound); the rest are
// refused locally. Cached variants keep being served, other tags and
// regions have their own bound, and a slot frees after the window.
func TestScriptVariantsBounded(t *testing.T) {
	t.Parallel()
	g := newGateway(t, "")
	var fetches, status atomic.Int32
	scriptUpstream(g, &fetches, &status)
	de := map[string]string{"CF-IPCountry": "DE"}
	if r := g.do(fromProxy, "GET", "/gtag/js?id=G-AAA", de, ""); r.Status != 200 {
		t.Fatalf("plain script: %d", r.Status)
	}
	refused := 0
	for i := range 200 {
		r := g.do(fromProxy, "GET", fmt.Sprintf("/gtag/js?id=G-AAA&l=dl%d", i), de, "")
		switch r.Status {
		case 200:
		case fasthttp.StatusTooManyRequests:
			refused++
		default:
			t.Fatalf("l=dl%d: status %d", i, r.Status)
		}
	}
	if n := int(fetches.Load()); n != maxScriptVariants+1 || refused != 200-maxScriptVariants {
		t.Errorf("%d upstream fetches, %d refused; want %d and %d", n, refused, maxScriptVariants+1, 200-maxScriptVariants)
	}
	// Variants within the bound stay cached; cx and gtm_* count the same.
	if r := g.do(fromProxy, "GET", "/gtag/js?id=G-AAA&l=dl3", de, ""); r.Status != 200 {
		t.Errorf("a cached variant: %d", r.Status)
	}
	if r := g.do(fromProxy, "GET", "/gtm.js?id=GTM-AAA&gtm_auth=x&gtm_preview=env-1", de, ""); r.Status != 200 {
		t.Errorf("another tag's variant: %d", r.Status)
	}
	if r := g.do(fromProxy, "GET", "/gtag/js?id=G-AAA&cx=c&gtm=45x", de, ""); r.Status != fasthttp.StatusTooManyRequests {
		t.Errorf("cx/gtm variant over the bound: %d", r.Status)
	}
	before := fetches.Load()
	// After the window (max_ttl + stale_for) the slots are free again.
	cfg := g.h.Config()
	g.advance(cfg.Cache.MaxTTL + cfg.Cache.StaleFor + time.Minute)
	if r := g.do(fromProxy, "GET", "/gtag/js?id=G-AAA&l=other", de, ""); r.Status != 200 || fetches.Load() != before+1 {
		t.Errorf("after the window: %d, %d fetches", r.Status, fetches.Load()-before)
	}
}
