package proxy

import (
	"encoding/json"
	"fmt"
	"net"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/valyala/fasthttp"
)

const deniedHit = "/g/collect?v=2&tid=G-ABC123&gtm=45je&_p=1749196701069&gcs=G111&gcd=13q3q3q2q5l1&cid=1174285007.1749196701" +
	"&sid=1749196701&sct=3&uid=u42&up.plan=gold&ecid=99&en=page_view&dl=https%3A%2F%2Fshop.example%2F%3F_gl%3D1*x*y%26q%3Djo%2540x.com"

func query(t *testing.T, uri string) url.Values {
	t.Helper()
	u, err := url.Parse(uri)
	if err != nil {
		t.Fatal(err)
	}
	return u.Query()
}

func onlyRequest(t *testing.T, up *fakeUpstream) recorded {
	t.Helper()
	got := up.requests()
	if len(got) != 1 {
		t.Fatalf("upstream received %d requests, want 1: %+v", len(got), got)
	}
	return got[0]
}

func TestDeniedHitLeavesCookieless(t *testing.T) {
	t.Parallel()
	g := newGateway(t, "")
	g.up.setRespond(func(ctx *fasthttp.RequestCtx) {
		ctx.Response.Header.Set("Set-Cookie", "_ga=GA1.1.9.9; Path=/")
		ctx.SetStatusCode(fasthttp.StatusNoContent)
	})
	resp := g.do(fromProxy, "GET", deniedHit, map[string]string{
		"X-Forwarded-CountryRegion": "DE",
		"X-Forwarded-For":           "198.51.100.23",
		"Cookie":                    "_ga=GA1.1.1174285007.1749196701; _gcl_au=1.1.1; session=s3cr3t",
		"User-Agent":                "Mozilla/5.0 test",
	}, "")
	if resp.Status != fasthttp.StatusNoContent {
		t.Fatalf("status %d, want 204", resp.Status)
	}
	if sc := resp.Header["Set-Cookie"]; len(sc) > 0 {
		t.Errorf("browser got Set-Cookie %q on a cookieless hit", sc)
	}
	r := onlyRequest(t, g.up)
	if r.Host != "region1.google-analytics.com" {
		t.Errorf("upstream Host %q", r.Host)
	}
	q := query(t, r.URI)
	for _, k := range []string{"uid", "up.plan", "sct", "ecid"} {
		if q.Has(k) {
			t.Errorf("upstream got %s: %s", k, r.URI)
		}
	}
	if q.Get("cid") == "1174285007.1749196701" || q.Get("sid") == "1749196701" || q.Get("cid") == "" {
		t.Errorf("cid/sid not replaced: %s", r.URI)
	}
	if q.Get("gcs") != "G100" || q.Get("gcd") != "13q3q3q2q5l1" || q.Get("npa") != "1" {
		t.Errorf("consent not written back: %s", r.URI)
	}
	if q.Get("_uip") != "198.51.100.0" {
		t.Errorf("_uip = %q, want the truncated client IP", q.Get("_uip"))
	}
	if strings.Contains(q.Get("dl"), "_gl") || strings.Contains(q.Get("dl"), "x.com") {
		t.Errorf("dl not scrubbed: %s", q.Get("dl"))
	}
	if _, ok := r.Header["Cookie"]; ok {
		t.Errorf("cookieless hit sent Cookie %q", r.Header["Cookie"])
	}
	for _, h := range []string{"X-Forwarded-For", "X-Forwarded-Countryregion"} {
		if v, ok := r.Header[h]; ok {
			t.Errorf("upstream got %s: %s (subdomain style passes the IP as _uip)", h, v)
		}
	}
	if r.Header["User-Agent"] != "Mozilla/5.0 test" {
		t.Errorf("User-Agent not passed: %q", r.Header["User-Agent"])
	}
}

func TestGrantedHitForwardedWithHygiene(t *testing.T) {
	t.Parallel()
	g := newGateway(t, "")
	g.up.setRespond(func(ctx *fasthttp.RequestCtx) {
		ctx.Response.Header.Add("Set-Cookie", "_ga=GA1.1.9.9; Path=/")
		ctx.Response.Header.Add("Set-Cookie", "IDE=tracker; Path=/")
		ctx.Response.Header.Set("Access-Control-Allow-Origin", "*")
		ctx.SetStatusCode(fasthttp.StatusNoContent)
	})
	hit := "/g/collect?v=2&tid=G-ABC123&_p=1&gcs=G111&gcd=13r3r3r2r5l1&cid=1174285007.1749196701&uid=u42&en=page_view"
	resp := g.do(fromProxy, "GET", hit, map[string]string{
		"Cookie":              "_ga=GA1.1.1174285007.1749196701; _gcl_au=1.1.1; session=s3cr3t; theme=dark",
		"Referer":             "https://shop.example/checkout?order=42#x",
		"Authorization":       "Bearer secret",
		"Proxy-Authorization": "Basic x",
		"X-Api-Key":           "k",
		"Connection":          "X-Private",
		"X-Private":           "p",
		"Keep-Alive":          "timeout=5",
		"X-Forwarded-For":     "6.6.6.6",
		"X-Forwarded-Host":    "evil.example",
		"Forwarded":           "for=6.6.6.6",
		"CF-IPCountry":        "US",
		"X-Real-IP":           "6.6.6.6",
		"True-Client-IP":      "6.6.6.6",
		"CF-Connecting-IP":    "6.6.6.6",
		"X-Client-IP":         "6.6.6.6",
		"Fastly-Client-IP":    "6.6.6.6",
		"Sec-GPC":             "0",
	}, "")
	if resp.Status != fasthttp.StatusNoContent {
		t.Fatalf("status %d", resp.Status)
	}
	if got := resp.Header["Set-Cookie"]; len(got) != 1 || !strings.HasPrefix(got[0], "_ga=") {
		t.Errorf("browser Set-Cookie = %q, want only _ga", got)
	}
	if resp.get("Access-Control-Allow-Origin") != "" {
		t.Errorf("upstream CORS header relayed")
	}
	r := onlyRequest(t, g.up)
	if want := hit + "&_uip=6.6.6.6"; r.URI != want {
		t.Errorf("granted hit changed:\n got %s\nwant %s", r.URI, want)
	}
	if r.Header["Cookie"] != "_ga=GA1.1.1174285007.1749196701; _gcl_au=1.1.1" {
		t.Errorf("Cookie = %q, want only Google cookies", r.Header["Cookie"])
	}
	if r.Header["Referer"] != "https://shop.example/" {
		t.Errorf("Referer = %q, want the origin", r.Header["Referer"])
	}
	// Written apart from consentmode.RequestHeaders on purpose (TestHeaderTable
	// checks the proxy against the table): a row turned to forward must fail here.
	for _, h := range []string{"Authorization", "Proxy-Authorization", "X-Api-Key", "X-Private", "Keep-Alive", "X-Forwarded-For", "X-Forwarded-Host", "Forwarded", "Cf-Ipcountry", "Connection",
		"X-Real-Ip", "True-Client-Ip", "Cf-Connecting-Ip", "X-Client-Ip", "Fastly-Client-Ip"} {
		if v, ok := r.Header[h]; ok {
			t.Errorf("upstream got %s: %q", h, v)
		}
	}
	if r.Header["Sec-Gpc"] != "0" {
		t.Errorf("Sec-GPC not passed")
	}
}

// TestNoSignalByRegion: a hit without consent signals is denied when its
// region is DE (from a trusted geo header) or unknown, and forwarded
// unchanged when it is US.
func TestNoSignalByRegion(t *testing.T) {
	t.Parallel()
	hit := "/g/collect?v=2&tid=G-ABC123&_p=7&gcd=13l3l3l3l1&cid=414801335.1715625262&en=page_view"
	tests := []struct {
		name    string
		from    *net.TCPAddr
		headers map[string]string
		denied  bool
	}{
		{"DE from a trusted proxy", fromProxy, map[string]string{"CF-IPCountry": "DE"}, true},
		{"US from a trusted proxy", fromProxy, map[string]string{"CF-IPCountry": "US"}, false},
		{"US-CA subdivision", fromProxy, map[string]string{"CloudFront-Viewer-Country": "US", "CloudFront-Viewer-Country-Region": "CA"}, false},
		{"unknown region", fromProxy, map[string]string{}, true},
		{"Cloudflare XX", fromProxy, map[string]string{"CF-IPCountry": "XX"}, true},
		{"US claimed by an untrusted client", fromVisitor, map[string]string{"CF-IPCountry": "US"}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			g := newGateway(t, "")
			g.do(tt.from, "GET", hit, tt.headers, "")
			r := onlyRequest(t, g.up)
			q := query(t, r.URI)
			if tt.denied {
				if q.Get("gcs") != "G100" || q.Get("gcd") != "13m3m3m2m5l1" || q.Get("cid") == "414801335.1715625262" {
					t.Errorf("not denied: %s", r.URI)
				}
				return
			}
			want := hit + "&_uip=10.1.2.3"
			if r.URI != want {
				t.Errorf("US hit changed:\n got %s\nwant %s", r.URI, want)
			}
		})
	}
}

func TestMalformedConsentDenies(t *testing.T) {
	t.Parallel()
	g := newGateway(t, "")
	g.do(fromProxy, "GET", "/g/collect?v=2&tid=G-1&gcs=G1x1&gcd=13r3r3r2r5l1&cid=1.2&uid=9", map[string]string{"CF-IPCountry": "US"}, "")
	q := query(t, onlyRequest(t, g.up).URI)
	if q.Has("uid") || q.Get("cid") == "1.2" || q.Get("gcs") != "G100" {
		t.Errorf("malformed gcs did not deny storage: %v", q)
	}
}

func TestBatchedPost(t *testing.T) {
	t.Parallel()
	g := newGateway(t, "")
	body := "en=page_view&_et=1\r\nen=scroll&uid=u9&up.x=1\r\nen=user_engagement&ep.ga_temp_client_id=1.2\r\n"
	g.do(fromProxy, "POST", "/g/collect?v=2&tid=G-1&_p=5&gcs=G100&cid=1.2", map[string]string{"CF-IPCountry": "FR", "Content-Type": "text/plain;charset=UTF-8"}, body)
	r := onlyRequest(t, g.up)
	want := "en=page_view&_et=1\r\nen=scroll\r\nen=user_engagement\r\n"
	if r.Body != want || r.Method != "POST" {
		t.Errorf("upstream body %q (%s), want %q", r.Body, r.Method, want)
	}
	if r.Header["Content-Type"] != "text/plain;charset=UTF-8" {
		t.Errorf("Content-Type %q", r.Header["Content-Type"])
	}
}

func TestOversizeRejected(t *testing.T) {
	t.Parallel()
	g := newGateway(t, "limits: {max_body_bytes: 1024, max_url_bytes: 2048, max_header_bytes: 4096}")
	tests := []struct {
		name   string
		uri    string
		header map[string]string
		body   string
		want   int
	}{
		{"body", "/g/collect?v=2&tid=G-1", nil, strings.Repeat("a", 2000), fasthttp.StatusRequestEntityTooLarge},
		{"uri", "/g/collect?v=2&tid=G-1&x=" + strings.Repeat("a", 2100), nil, "", fasthttp.StatusRequestURITooLong},
		{"header", "/g/collect?v=2", map[string]string{"X-Big": strings.Repeat("b", 5000)}, "", fasthttp.StatusRequestHeaderFieldsTooLarge},
	}
	for _, tt := range tests {
		method := "GET"
		if tt.body != "" {
			method = "POST"
		}
		if resp := g.do(fromProxy, method, tt.uri, tt.header, tt.body); resp.Status != tt.want {
			t.Errorf("%s: status %d, want %d", tt.name, resp.Status, tt.want)
		}
	}
	if got := g.up.requests(); len(got) != 0 {
		t.Errorf("oversize requests reached the upstream: %d", len(got))
	}
}

func TestCORS(t *testing.T) {
	t.Parallel()
	g := newGateway(t, `cors: {allowed_origins: ["https://shop.example"]}`)
	pre := g.do(fromVisitor, "OPTIONS", "/g/collect?v=2", map[string]string{
		"Origin": "https://shop.example", "Access-Control-Request-Method": "POST", "Access-Control-Request-Headers": "content-type"}, "")
	if pre.Status != fasthttp.StatusNoContent || pre.get("Access-Control-Allow-Origin") != "https://shop.example" ||
		pre.get("Access-Control-Allow-Credentials") != "true" || pre.get("Vary") != "Origin" || pre.get("Access-Control-Allow-Headers") != "Content-Type" {
		t.Errorf("preflight answer %d %v", pre.Status, pre.Header)
	}
	bad := g.do(fromVisitor, "OPTIONS", "/g/collect?v=2", map[string]string{"Origin": "https://evil.example"}, "")
	if bad.Status != fasthttp.StatusForbidden || bad.get("Access-Control-Allow-Origin") != "" {
		t.Errorf("foreign preflight answer %d %v", bad.Status, bad.Header)
	}
	hit := g.do(fromVisitor, "POST", "/g/collect?v=2&tid=G-1&gcs=G100", map[string]string{"Origin": "https://shop.example"}, "")
	if hit.get("Access-Control-Allow-Origin") != "https://shop.example" || hit.get("Access-Control-Allow-Credentials") != "true" {
		t.Errorf("hit answer lacks CORS headers: %v", hit.Header)
	}
	foreign := g.do(fromVisitor, "POST", "/g/collect?v=2&tid=G-1&gcs=G100", map[string]string{"Origin": "https://evil.example"}, "")
	if foreign.Status != fasthttp.StatusForbidden {
		t.Errorf("hit from a foreign origin: %d", foreign.Status)
	}
	if n := len(g.up.requests()); n != 1 {
		t.Errorf("upstream received %d requests, want only the allowed hit", n)
	}
}

func TestUnknownPathsAndMethods(t *testing.T) {
	t.Parallel()
	g := newGateway(t, "")
	for _, tt := range []struct {
		method, uri string
		headers     map[string]string
		want        int
	}{
		{"GET", "/admin", nil, fasthttp.StatusNotFound},
		{"GET", "/g/collect/x", nil, fasthttp.StatusNotFound},
		{"GET", "/gtag.js?id=G-1", nil, fasthttp.StatusNotFound}, // tag-gateway-only path in subdomain style
		{"PUT", "/g/collect?v=2", nil, fasthttp.StatusMethodNotAllowed},
		{"DELETE", "/g/collect?v=2", nil, fasthttp.StatusMethodNotAllowed},
		{"GET", "/mp/collect", nil, fasthttp.StatusNotFound}, // mp.enabled is off
	} {
		resp := g.do(fromVisitor, tt.method, tt.uri, tt.headers, "")
		if resp.Status != tt.want {
			t.Errorf("%s %s: %d, want %d", tt.method, tt.uri, resp.Status, tt.want)
		}
		if tt.want == fasthttp.StatusMethodNotAllowed && !strings.Contains(resp.get("Allow"), "POST") {
			t.Errorf("405 without Allow: %v", resp.Header)
		}
	}
	if n := len(g.up.requests()); n != 0 {
		t.Errorf("upstream received %d requests", n)
	}
	// The upstream comes from the route table: neither an absolute-form
	// request URI nor the Host header can point it elsewhere.
	g.do(fromVisitor, "GET", "http://evil.example/g/collect?v=2&tid=G-1&gcs=G100", map[string]string{"Host": "evil.example"}, "")
	if r := onlyRequest(t, g.up); r.Host != "region1.google-analytics.com" {
		t.Errorf("upstream Host %q", r.Host)
	}
}

func TestBlockedHitsForwardNothing(t *testing.T) {
	t.Parallel()
	g := newGateway(t, `tags: ["G-GOOD"]`)
	for _, uri := range []string{
		"/j/collect?v=1&t=pageview&tid=UA-1-1&cid=1.2", // Universal Analytics: sunset
		"/g/collect?v=2&tid=G-EVIL&gcs=G111",           // tag not allowed
		"/g/collect?v=2&gcs=G111",                      // no tag id
	} {
		if resp := g.do(fromVisitor, "GET", uri, nil, ""); resp.Status != fasthttp.StatusNoContent {
			t.Errorf("%s: %d, want 204", uri, resp.Status)
		}
	}
	if n := len(g.up.requests()); n != 0 {
		t.Errorf("blocked hits reached the upstream: %d", n)
	}
}

func TestServerContainerAnswered204(t *testing.T) {
	t.Parallel()
	g := newGateway(t, "")
	g.up.setRespond(func(ctx *fasthttp.RequestCtx) {
		ctx.SetContentType("text/event-stream")
		ctx.SetBodyString("event: message\ndata: {}\n\n")
	})
	resp := g.do(fromVisitor, "POST", "/g/collect?v=2&tid=G-1&gcs=G100&sst.rnd=1&sst.gcd=G100&richsstsse", nil, "")
	if resp.Status != fasthttp.StatusNoContent || resp.Body != "" {
		t.Errorf("answer %d %q, want an empty 204", resp.Status, resp.Body)
	}
	if r := onlyRequest(t, g.up); strings.Contains(r.URI, "sst.") || strings.Contains(r.URI, "richsstsse") {
		t.Errorf("sst parameters forwarded: %s", r.URI)
	}
}

func TestTagGatewayStyle(t *testing.T) {
	t.Parallel()
	g := newGateway(t, `upstream: "http://g-abc123.fps.goog"
path_prefix: /metrics`)
	g.do(fromProxy, "POST", "/metrics/g/collect?v=2&tid=G-ABC123&gcs=G100&cid=1.2", map[string]string{"X-Forwarded-CountryRegion": "de-by", "X-Forwarded-For": "198.51.100.23"}, "")
	r := onlyRequest(t, g.up)
	if r.Host != "g-abc123.fps.goog" || !strings.HasPrefix(r.URI, "/metrics/g/collect?") {
		t.Errorf("upstream got %s %s", r.Host, r.URI)
	}
	if r.Header["X-Forwarded-For"] != "198.51.100.0" || r.Header["X-Forwarded-Countryregion"] != "DE-BY" {
		t.Errorf("forwarded headers %v", r.Header)
	}
	if strings.Contains(r.URI, "_uip") {
		t.Errorf("tag gateway style got _uip: %s", r.URI)
	}
	if resp := g.do(fromProxy, "GET", "/g/collect?v=2", nil, ""); resp.Status != fasthttp.StatusNotFound {
		t.Errorf("path outside the prefix: %d", resp.Status)
	}
}

func TestDryRunForwardsOriginal(t *testing.T) {
	t.Parallel()
	g := newGateway(t, "consent: {enforce: false}")
	g.do(fromVisitor, "GET", deniedHit, map[string]string{"Cookie": "_ga=1"}, "")
	r := onlyRequest(t, g.up)
	if r.URI != deniedHit || r.Header["Cookie"] != "_ga=1" {
		t.Errorf("dry run changed the hit: %s cookie %q", r.URI, r.Header["Cookie"])
	}
	lines := g.waitLog(1)
	if len(lines) != 1 || !strings.Contains(lines[0], `"action":"cookieless"`) || !strings.Contains(lines[0], `"enforced":false`) {
		t.Errorf("decision log %q", lines)
	}
}

func TestUpstreamFailures(t *testing.T) {
	t.Parallel()
	g := newGateway(t, "timeouts: {upstream: 200ms}")
	hang := make(chan struct{})
	g.up.setRespond(func(ctx *fasthttp.RequestCtx) { <-hang }) // answers only after the gateway gave up
	if resp := g.do(fromVisitor, "GET", "/g/collect?v=2&tid=G-1&gcs=G100", nil, ""); resp.Status != fasthttp.StatusGatewayTimeout {
		t.Errorf("slow upstream: %d, want 504", resp.Status)
	}
	close(hang)
	g.up.setRespond(nil)
	_ = g.up.srv.Shutdown()
	if resp := g.do(fromVisitor, "GET", "/g/collect?v=2&tid=G-1&gcs=G100", nil, ""); resp.Status != fasthttp.StatusBadGateway {
		t.Errorf("closed upstream: %d, want 502", resp.Status)
	}
}

// TestExplainMatchesServe: the hit sent through serve reaches the
// upstream exactly as explain says.
func TestExplainMatchesServe(t *testing.T) {
	t.Parallel()
	g := newGateway(t, "")
	headers := map[string]string{"CF-IPCountry": "DE", "Cookie": "_ga=GA1.1.1; other=1", "Referer": "https://shop.example/a?b", "User-Agent": "UA"}
	g.do(fromProxy, "GET", deniedHit, headers, "")
	r := onlyRequest(t, g.up)

	e, err := g.h.Explain(Hit{Method: "GET", URL: "https://metrics.shop.example" + deniedHit, Headers: headers, ClientIP: "10.1.2.3"})
	if err != nil {
		t.Fatal(err)
	}
	if e.Action != "cookieless" || e.Forward == nil {
		t.Fatalf("explain: %+v", e)
	}
	if want := "http://" + r.Host + r.URI; e.Forward.URL != want {
		t.Errorf("explain URL\n %s\nserve sent\n %s", e.Forward.URL, want)
	}
	for k, v := range e.Forward.Headers {
		if r.Header[k] != v {
			t.Errorf("header %s: explain %q, upstream got %q", k, v, r.Header[k])
		}
	}
	for k := range r.Header {
		if _, ok := e.Forward.Headers[k]; !ok && k != "Content-Length" && k != "Connection" {
			t.Errorf("upstream got %s which explain does not show", k)
		}
	}
	b, _ := json.Marshal(e)
	for _, bad := range []string{"1174285007.1749196701", "u42", "up.plan=", "_gl%3D"} {
		if strings.Contains(string(b), bad) {
			t.Errorf("explain JSON shows %q", bad)
		}
	}
}

// TestDecisionLogHoldsNoIdentifiers sends known identifiers and searches the log.
func TestDecisionLogHoldsNoIdentifiers(t *testing.T) {
	t.Parallel()
	g := newGateway(t, "")
	g.do(fromProxy, "GET", deniedHit, map[string]string{"CF-IPCountry": "DE", "Cookie": "_ga=GA1.1.SECRETGA"}, "")
	g.do(fromProxy, "GET", "/g/collect?v=2&tid=G-ABC123&gcs=G111&gcd=13r3r3r2r5l1&cid=777.888&uid=USERXYZ", map[string]string{"CF-IPCountry": "US"}, "")
	lines := g.waitLog(2)
	if len(lines) != 2 {
		t.Fatalf("decision log has %d lines", len(lines))
	}
	all := strings.Join(lines, "\n")
	for _, id := range []string{"1174285007", "1749196701", "u42", "gold", "SECRETGA", "777.888", "USERXYZ", "shop.example", "jo%", "198.51", "10.1.2.3"} {
		if strings.Contains(all, id) {
			t.Errorf("decision log holds %q:\n%s", id, all)
		}
	}
	var entry map[string]any
	if err := json.Unmarshal([]byte(lines[0]), &entry); err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"ts", "hit", "route", "family", "region", "consent", "sources", "action", "reasons", "removed", "status", "upstream_ms", "policy_version"} {
		if _, ok := entry[k]; !ok {
			t.Errorf("decision log line lacks %q: %s", k, lines[0])
		}
	}
}

func TestHealthEndpoints(t *testing.T) {
	t.Parallel()
	g := newGateway(t, "")
	if r := g.do(fromVisitor, "GET", "/healthz", nil, ""); r.Status != 200 {
		t.Errorf("/healthz %d", r.Status)
	}
	if r := g.do(fromVisitor, "GET", "/readyz", nil, ""); r.Status != 200 {
		t.Errorf("/readyz %d", r.Status)
	}
	g.h.MarkReady(false)
	if r := g.do(fromVisitor, "GET", "/readyz", nil, ""); r.Status != 503 {
		t.Errorf("/readyz when draining %d", r.Status)
	}
}

// TestConcurrentBodiesStayApart: each upstream request carries its own
// rewritten body, however many requests run at once (the rewrite buffers
// are pooled).
func TestConcurrentBodiesStayApart(t *testing.T) {
	t.Parallel()
	g := newGateway(t, "")
	g.up.setRespond(func(ctx *fasthttp.RequestCtx) {
		time.Sleep(2 * time.Millisecond) // pacing only: keeps many requests in flight at once; not needed for correctness
		ctx.SetStatusCode(fasthttp.StatusNoContent)
	})
	var wg sync.WaitGroup
	for i := range 60 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			body := fmt.Sprintf("en=e%03d&uid=u%03d\r\nen=f%03d&up.x=%03d\r\n", i, i, i, i)
			req := fmt.Sprintf("POST /g/collect?v=2&tid=G-1&_p=%d&gcs=G100&mark=m%03d HTTP/1.1\r\nHost: m\r\nCF-IPCountry: DE\r\nContent-Length: %d\r\nConnection: close\r\n\r\n%s", i, i, len(body), body)
			if _, err := g.tryRaw(fromProxy, req); err != nil {
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	got := g.up.requests()
	if len(got) != 60 {
		t.Fatalf("%d upstream requests", len(got))
	}
	for _, r := range got {
		mark := query(t, r.URI).Get("mark")[1:]
		if want := "en=e" + mark + "\r\nen=f" + mark + "\r\n"; r.Body != want {
			t.Errorf("request m%s carried body %q, want %q", mark, r.Body, want)
		}
	}
}

// TestGeoSpoofing: a header the browser adds cannot turn a denied region
// into a granted one.
func TestGeoSpoofing(t *testing.T) {
	t.Parallel()
	hit := "/g/collect?v=2&tid=G-1&gcd=13l3l3l3l1&cid=1.2&uid=u"
	for _, tt := range []struct {
		name    string
		headers map[string]string
	}{
		{"edge says DE, browser adds US", map[string]string{"CF-IPCountry": "DE", "X-Forwarded-CountryRegion": "US"}},
		{"edge says XX, browser adds US", map[string]string{"CF-IPCountry": "XX", "CloudFront-Viewer-Country": "US"}},
		{"first header invalid", map[string]string{"X-Forwarded-CountryRegion": "nowhere", "CF-IPCountry": "US"}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			g := newGateway(t, "")
			g.do(fromProxy, "GET", hit, tt.headers, "")
			if q := query(t, onlyRequest(t, g.up).URI); q.Has("uid") || q.Get("gcs") != "G100" {
				t.Errorf("spoofed region granted consent: %v", q)
			}
		})
	}
	g := newGateway(t, "")
	g.do(fromProxy, "GET", hit, map[string]string{"CF-IPCountry": "US", "CloudFront-Viewer-Country": "us"}, "")
	if q := query(t, onlyRequest(t, g.up).URI); !q.Has("uid") {
		t.Errorf("agreeing headers: %v", q)
	}
}

func TestIPHeadersNeverTravel(t *testing.T) {
	t.Parallel()
	g := newGateway(t, "")
	g.do(fromProxy, "GET", "/g/collect?v=2&tid=G-1&gcs=G100", map[string]string{
		"X-Cluster-Client-Ip": "198.51.100.23", "CloudFront-Viewer-Address": "198.51.100.23:443", "X-Envoy-External-Address": "198.51.100.23",
		"CF-Connecting-IPv6": "2001:db8::1", "X-Appengine-User-Ip": "198.51.100.23", "X-Something": "x", "Sec-CH-UA-Platform": `"macOS"`,
	}, "")
	r := onlyRequest(t, g.up)
	for k, v := range r.Header {
		if strings.Contains(v, "198.51.100.23") || strings.Contains(v, "2001:db8") || k == "X-Something" {
			t.Errorf("upstream got %s: %s", k, v)
		}
	}
	if r.Header["Sec-Ch-Ua-Platform"] != `"macOS"` {
		t.Errorf("client hints dropped")
	}
}

func TestPathTricksRejected(t *testing.T) {
	t.Parallel()
	g := newGateway(t, "")
	for _, uri := range []string{
		"/pagead/1p-conversion/123/../1p-user-list/123/?gcd=13q3q3q2q5l1",
		"/pagead/conversion/123/%2e%2e/999/?x=1",
		"/pagead/conversion/123%2F..%2F999/?x=1",
		"//g/collect?v=2",
		"/g/collect/.?v=2",
		"/activity;src=1/../../pagead/1p-user-list/1/;x=1?",
	} {
		if resp := g.do(fromProxy, "GET", uri, map[string]string{"CF-IPCountry": "DE"}, ""); resp.Status != fasthttp.StatusBadRequest && resp.Status != fasthttp.StatusNotFound {
			t.Errorf("%s: %d, want 400", uri, resp.Status)
		}
	}
	if resp := g.do(fromProxy, "POST", "/g/collect?v=2&tid=G-1&gcs=G100", map[string]string{"Content-Encoding": "gzip"}, "\x1f\x8b"); resp.Status != fasthttp.StatusUnsupportedMediaType {
		t.Errorf("gzip body: %d, want 415", resp.Status)
	}
	if n := len(g.up.requests()); n != 0 {
		t.Errorf("%d tricky requests reached the upstream", n)
	}
}

func TestDryRunKeepsSiteCookiesHome(t *testing.T) {
	t.Parallel()
	g := newGateway(t, "consent: {enforce: false}")
	g.do(fromProxy, "GET", deniedHit, map[string]string{"Cookie": "PHPSESSID=s3cr3t; _ga=GA1.1.1"}, "")
	if c := onlyRequest(t, g.up).Header["Cookie"]; c != "_ga=GA1.1.1" {
		t.Errorf("dry run sent Cookie %q", c)
	}
}
