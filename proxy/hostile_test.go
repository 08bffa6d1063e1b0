package proxy

import (
	"bytes"
	"compress/gzip"
	"net"
	"net/url"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/valyala/fasthttp"
	"go.uber.org/zap"

	"github.com/consentgate/consentgate/config"
	"github.com/consentgate/consentgate/consentmode"
)

// TestChunkedBodyOverLimit: a chunked body over limits.max_body_bytes is
// a 413 like a Content-Length one, whether it comes in one chunk or many.
func TestChunkedBodyOverLimit(t *testing.T) {
	t.Parallel()
	g := newGateway(t, "")
	for name, chunks := range map[string][]int{"one chunk": {160 << 10}, "many chunks": {16 << 10, 16 << 10, 16 << 10, 16 << 10, 16 << 10, 16 << 10, 16 << 10, 16 << 10, 16 << 10, 16 << 10}} {
		var b strings.Builder
		b.WriteString("POST /g/collect?v=2&tid=G-1 HTTP/1.1\r\nHost: m.shop.example\r\nTransfer-Encoding: chunked\r\nExpect: 100-continue\r\nConnection: close\r\n\r\n")
		for _, n := range chunks {
			b.WriteString(strconv.FormatInt(int64(n), 16) + "\r\n" + strings.Repeat("a", n) + "\r\n")
		}
		b.WriteString("0\r\n\r\n")
		resp := g.raw(fromProxy, b.String())
		if resp.Status != fasthttp.StatusRequestEntityTooLarge {
			t.Errorf("%s, 160 KiB chunked: %d %q, want 413", name, resp.Status, resp.Body)
		}
	}
	if n := len(g.up.requests()); n != 0 {
		t.Errorf("upstream got %d requests", n)
	}
}

// rawHit builds a request with headers in order (repeats allowed).
func rawHit(method, uri string, headers [][2]string, body string) string {
	var b strings.Builder
	b.WriteString(method + " " + uri + " HTTP/1.1\r\nHost: metrics.shop.example\r\n")
	for _, h := range headers {
		b.WriteString(h[0] + ": " + h[1] + "\r\n")
	}
	if body != "" || method == "POST" {
		b.WriteString("Content-Length: " + itoa(len(body)) + "\r\n")
	}
	b.WriteString("Connection: close\r\n\r\n" + body)
	return b.String()
}

// TestRepeatedGeoHeader: US then DE in two copies of the trusted geo
// header must not let the first (granted) copy decide: the region is
// unknown, the hit leaves cookieless (no cid, uid or full IP), counted.
func TestRepeatedGeoHeader(t *testing.T) {
	t.Parallel()
	g := newGateway(t, "")
	hit := "/g/collect?v=2&tid=G-ABC123&cid=1174285007.1749196701&uid=u42&en=page_view" // no consent signal: the region's default decides
	for name, hdrs := range map[string][][2]string{
		"US then DE":        {{"X-Forwarded-CountryRegion", "US"}, {"X-Forwarded-CountryRegion", "DE"}},
		"DE then US":        {{"X-Forwarded-CountryRegion", "DE"}, {"X-Forwarded-CountryRegion", "US"}},
		"two headers":       {{"X-Forwarded-CountryRegion", "US"}, {"CF-IPCountry", "DE"}},
		"subdivision twice": {{"CloudFront-Viewer-Country", "US"}, {"CloudFront-Viewer-Country-Region", "CA"}, {"CloudFront-Viewer-Country-Region", "TX"}},
	} {
		before := len(g.up.requests())
		resp := g.raw(fromProxy, rawHit("GET", hit, append(hdrs, [2]string{"X-Forwarded-For", "198.51.100.23"}), ""))
		if resp.Status != fasthttp.StatusNoContent {
			t.Fatalf("%s: status %d", name, resp.Status)
		}
		got := g.up.requests()
		if len(got) != before+1 {
			t.Fatalf("%s: upstream got %d requests", name, len(got)-before)
		}
		q := query(t, got[len(got)-1].URI)
		if q.Get("cid") == "1174285007.1749196701" || q.Has("uid") || q.Get("_uip") == "198.51.100.23" {
			t.Errorf("%s: identifiers left for a conflicting region: %s", name, got[len(got)-1].URI)
		}
	}
	// Two copies with the same value are one region: granted US stays granted.
	g.raw(fromProxy, rawHit("GET", hit, [][2]string{{"X-Forwarded-CountryRegion", "US"}, {"X-Forwarded-CountryRegion", "us"}}, ""))
	got := g.up.requests()
	if q := query(t, got[len(got)-1].URI); q.Get("uid") != "u42" {
		t.Errorf("agreeing copies: uid dropped: %s", got[len(got)-1].URI)
	}
	_, body := scrape(t, g.h, "/metrics", "GET", "")
	if !strings.Contains(body, `consentgate_conflicting_headers_total{header="geo"} 4`) {
		t.Errorf("conflicts not counted:\n%s", grepLines(body, "conflicting"))
	}
}

func grepLines(s, sub string) string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if strings.Contains(l, sub) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}

// TestRepeatedSecGPC: Sec-GPC 0 then 1 is an opt-out.
func TestRepeatedSecGPC(t *testing.T) {
	t.Parallel()
	g := newGateway(t, "")
	hit := "/g/collect?v=2&tid=G-ABC123&gcs=G111&gcd=13r3r3r2r5l1&npa=0&cid=1.2&en=page_view"
	g.raw(fromProxy, rawHit("GET", hit, [][2]string{{"CF-IPCountry", "US"}, {"Sec-GPC", "0"}, {"Sec-GPC", "1"}}, ""))
	r := onlyRequest(t, g.up)
	if q := query(t, r.URI); q.Get("npa") != "1" {
		t.Errorf("second Sec-GPC copy ignored: %s", r.URI)
	}
}

// TestBodyEncodings: any Content-Encoding but identity, in any copy, and
// a compressed-looking body without a header are 415; nothing leaves.
func TestBodyEncodings(t *testing.T) {
	t.Parallel()
	g := newGateway(t, "")
	var gz bytes.Buffer
	zw := gzip.NewWriter(&gz)
	_, _ = zw.Write([]byte("v=2&tid=G-ABC123&en=page_view&cid=1174285007.1749196701&uid=u42\n"))
	_ = zw.Close()
	uri := "/g/collect?v=2&tid=G-ABC123&gcs=G100"
	for _, tt := range []struct {
		name    string
		headers [][2]string
		body    string
		want    int
	}{
		{"identity then gzip", [][2]string{{"Content-Encoding", "identity"}, {"Content-Encoding", "gzip"}}, gz.String(), 415},
		{"gzip then identity", [][2]string{{"Content-Encoding", "gzip"}, {"Content-Encoding", "identity"}}, gz.String(), 415},
		{"list", [][2]string{{"Content-Encoding", "identity, gzip"}}, gz.String(), 415},
		{"br", [][2]string{{"Content-Encoding", "br"}}, "en=page_view", 415},
		{"gzip body, no header", nil, gz.String(), 415},
		{"zstd magic, no header", nil, "\x28\xb5\x2f\xfd\x00\x58en=page_view", 415},
		{"binary body, no header", nil, "en=page\x00view", 415},
		{"invalid utf-8 (brotli-like)", nil, "\x8b\x02\x80en=page_view\xff", 415},
		{"two content types", [][2]string{{"Content-Type", "text/plain"}, {"Content-Type", "application/json"}}, "en=page_view", 415},
		{"identity twice", [][2]string{{"Content-Encoding", "identity"}, {"Content-Encoding", "IDENTITY"}}, "en=page_view", 204},
		{"utf-8 text", [][2]string{{"Content-Type", "text/plain"}, {"Content-Type", "text/plain"}}, "en=page_view&ep.item=M%C3%BCsli&ep.raw=Müsli", 204},
	} {
		resp := g.raw(fromProxy, rawHit("POST", uri, append(tt.headers, [2]string{"CF-IPCountry", "DE"}), tt.body))
		if resp.Status != tt.want {
			t.Errorf("%s: status %d %q, want %d", tt.name, resp.Status, resp.Body, tt.want)
		}
	}
	for _, r := range g.up.requests() {
		if strings.Contains(r.Body, "\x1f\x8b") || strings.Contains(r.Body, "\x00") {
			t.Errorf("an encoded body reached the upstream: %q", r.Body)
		}
	}
	if n := len(g.up.requests()); n != 2 {
		t.Errorf("upstream got %d requests, want the 2 plain ones", n)
	}
}

// badSegments are path segments an upstream might resolve differently
// from the route table.
var badSegments = []string{"..;", ".;", "..", ".", "..;x=1", "%2e%2e", "%2E", ".%2e", "%c0%ae%c0%ae", "%C0%AE", "%c0%af", "%e0%80%ae",
	"%f0%80%80%ae", "%ed%a0%80", "%ff", "a;b=1", "%2f", "%5c", "%zz", "a%0a", "a\\b", ""}

// routeExample returns a path that matches route r.
func routeExample(r *consentmode.Route) string {
	switch r.Match {
	case consentmode.MatchPrefix:
		return r.Pattern + "1071635065/"
	case consentmode.MatchMatrix:
		return r.Pattern + ";src=1;type=a;cat=b;ord=1"
	case consentmode.MatchSegmentMatrix:
		return r.Pattern + "i/;src=1;type=a;cat=b;ord=1"
	}
	return r.Pattern
}

// TestBadPathsEveryRoute: for every route of the table, a dot-segment
// ("..;", "%2e", overlong UTF-8), ';' parameters or an empty segment
// inserted anywhere in its path is a 400 bad_path, and nothing leaves.
func TestBadPathsEveryRoute(t *testing.T) {
	t.Parallel()
	g := newGateway(t, "upstream: http://gw.example\nmp: {enabled: true}\nua: {forward: true}\n")
	g.up.setRespond(func(ctx *fasthttp.RequestCtx) { ctx.SetStatusCode(200); ctx.SetBodyString("x") })
	for i := range consentmode.Routes {
		r := &consentmode.Routes[i]
		good := routeExample(r)
		if ri, ok := consentmode.MatchRoute([]byte(good)); !ok || ri != i && consentmode.Routes[ri].Pattern != r.Pattern {
			t.Fatalf("%s: example %s matches route %d", r.Name, good, ri)
		}
		if !cleanPath([]byte(good)) {
			t.Errorf("%s: the clean example %s is refused", r.Name, good)
		}
		cut := max(strings.LastIndexByte(strings.TrimSuffix(good, "/"), '/'), 0)
		for _, bad := range badSegments {
			for _, p := range []string{"/" + bad + good, good[:cut+1] + bad + good[cut:], strings.TrimSuffix(good, "/") + "/" + bad + "/x"} {
				if cleanPath([]byte(p)) {
					t.Errorf("%s: cleanPath(%q) = true", r.Name, p)
				}
			}
		}
		// Through the server, one per route: the request of the probe shape.
		p := good[:cut+1] + "..;" + good[cut:]
		method := "GET"
		if r.Methods&consentmode.MethodGet == 0 {
			method = "POST"
		}
		if resp := g.do(fromProxy, method, p+"?tid=G-1&gcs=G111", nil, ""); resp.Status != fasthttp.StatusBadRequest || resp.Body != "bad_path\n" {
			t.Errorf("%s %s: %d %q, want 400 bad_path", method, p, resp.Status, resp.Body)
		}
	}
	for _, p := range []string{"/pagead/conversion/..;/1p-user-list/1/", "/pagead/conversion/1/%c0%ae%c0%ae/1p-user-list/1/", "/g/collect;jsessionid=1", "/gtag/js;x"} {
		if resp := g.do(fromProxy, "GET", p+"?tid=AW-1", nil, ""); resp.Status != fasthttp.StatusBadRequest {
			t.Errorf("%s: %d, want 400", p, resp.Status)
		}
	}
	if got := g.up.requests(); len(got) != 0 {
		t.Errorf("bad paths reached the upstream: %+v", got)
	}
}

func TestCleanPathAllowsReal(t *testing.T) {
	t.Parallel()
	for _, p := range []string{
		"/g/collect", "/", "/pagead/conversion/1071635065/", "/metrics/g/collect",
		"/activity;src=14804749;type=delif0;cat=allvi0;ord=1;u1=https%3A%2F%2Fwww.delife.de%2F%3Fa%3D%2e;~oref=https%3A%2F%2Fwww.delife.de%2F",
		"/ddm/fls/i/dc_pre=x;src=1;type=a;u1=M%C3%BCsli",
		"/ccm/form-data/1071635065",
	} {
		if !cleanPath([]byte(p)) {
			t.Errorf("cleanPath(%q) = false", p)
		}
	}
}

func FuzzCleanPath(f *testing.F) {
	for _, s := range append(badSegments, "/g/collect", "/activity;src=1;u=%2e", "/a/..;/b") {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, p string) {
		if !cleanPath([]byte(p)) {
			return
		}
		// Whatever passes has no dot segment after decoding its names.
		for _, seg := range strings.Split(p, "/") {
			name, _, _ := strings.Cut(seg, ";")
			if dec, err := url.PathUnescape(name); err == nil && (dec == "." || dec == "..") {
				t.Fatalf("cleanPath(%q) passed a dot segment %q", p, seg)
			}
		}
	})
}

// TestReloadOfEmptyFileKeepsServing: a config file truncated to nothing
// while serving is refused; the tags allowlist and upstream stay. A
// reload of an unchanged file says so.
func TestReloadOfEmptyFileKeepsServing(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	path := filepath.Join(dir, "config.yaml")
	base := "cookieless: {secret: \"test-secret-0123456789\"}\ntrusted_proxies: [\"10.0.0.0/8\"]\ntags: [G-ABC123]\nupstream: http://gw.example\n"
	g := newGateway(t, "") // sets the test environment first
	writeFile(t, path, base)
	cfg, err := config.Load(path)
	if err != nil {
		t.Fatal(err)
	}
	g.h.SetConfig(cfg)
	r := NewReloader(g.h, g.m, zap.NewNop(), path, func() (*config.Config, error) { return config.Load(path) })
	for _, give := range []string{"", "# only a comment\n", "{}\n", "tags: [G-ABC123\n"} {
		writeFile(t, path, give)
		if err := r.Reload(); err == nil {
			t.Errorf("reload of %q accepted", give)
		}
		if g.h.Config() != cfg {
			t.Fatalf("reload of %q replaced the config", give)
		}
	}
	g.do(fromProxy, "GET", "/g/collect?v=2&tid=G-OTHER&gcs=G111", nil, "")
	if got := g.up.requests(); len(got) != 0 {
		t.Errorf("tags allowlist lost after a refused reload: upstream got %+v", got)
	}
	writeFile(t, path, base)
	if err := r.Reload(); err != nil {
		t.Fatal(err)
	}
	if g.h.Config() != cfg || g.m.reloads[reloadUnchanged].Get() != 1 {
		t.Errorf("unchanged reload: config swapped %v, unchanged count %d", g.h.Config() != cfg, g.m.reloads[reloadUnchanged].Get())
	}
}

// TestAdminToken: with admin.token every admin path but health needs it.
func TestAdminToken(t *testing.T) {
	t.Parallel()
	g := newGateway(t, "admin_listen: \"0.0.0.0:9090\"\nadmin: {token: \"s3cret-admin-token-0123\"}\n")
	adm := func(path, auth string) int {
		var ctx fasthttp.RequestCtx
		ctx.Request.SetRequestURI(path)
		if auth != "" {
			ctx.Request.Header.Set("Authorization", auth)
		}
		g.h.ServeAdmin(&ctx)
		return ctx.Response.StatusCode()
	}
	for _, p := range []string{"/metrics", "/debug/explain", "/debug/pprof/", "/debug/pprof/cmdline", "/nope"} {
		if s := adm(p, ""); s != fasthttp.StatusUnauthorized {
			t.Errorf("%s without token: %d", p, s)
		}
		if s := adm(p, "Bearer wrong-token-wrong-token"); s != fasthttp.StatusUnauthorized {
			t.Errorf("%s with a wrong token: %d", p, s)
		}
		if s := adm(p, "Basic czNjcmV0"); s != fasthttp.StatusUnauthorized {
			t.Errorf("%s with basic auth: %d", p, s)
		}
	}
	if s := adm("/metrics", "Bearer s3cret-admin-token-0123"); s != 200 {
		t.Errorf("/metrics with the token: %d", s)
	}
	if s := adm("/debug/pprof/", "bearer s3cret-admin-token-0123"); s != 200 {
		t.Errorf("pprof with the token: %d", s)
	}
	for _, p := range []string{"/healthz", "/readyz"} {
		if s := adm(p, ""); s != 200 {
			t.Errorf("%s needs a token: %d", p, s)
		}
	}
}

// stall opens a connection from addr and sends the start of a request
// that never completes. The caller closes it.
func (g *gateway) stall(from net.Addr, partial string) net.Conn {
	g.t.Helper()
	c, err := g.ln.DialWithLocalAddr(from)
	if err != nil {
		g.t.Fatal(err)
	}
	if partial == "" {
		return c // an in-memory pipe would pass an empty write on as a 0-byte read
	}
	if _, err := c.Write([]byte(partial)); err != nil {
		g.t.Fatal(err)
	}
	return c
}

// readResponse reads one response from c (or fails the test).
func readResponse(t *testing.T, c net.Conn) *fasthttp.Response {
	t.Helper()
	_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
	resp := &fasthttp.Response{}
	if err := resp.Read(newReader(c)); err != nil {
		t.Fatalf("reading the response: %v", err)
	}
	return resp
}

func visitor(i int) net.Addr {
	return &net.TCPAddr{IP: net.IPv4(203, 0, 113, byte(i)), Port: 40000 + i}
}

const stalledBody = "POST /g/collect?v=2&tid=G-1 HTTP/1.1\r\nHost: m.shop.example\r\nContent-Length: 60000\r\n\r\n"

// TestPerIPConnectionCap: one address gets limits.max_conns_per_ip
// connections; the next is a 503 with Retry-After, counted; other
// addresses and trusted proxies are not affected, and a closed
// connection gives its slot back.
func TestPerIPConnectionCap(t *testing.T) {
	t.Parallel()
	g := newGateway(t, "limits: {max_conns_per_ip: 3}")
	var held []net.Conn
	for range 3 {
		held = append(held, g.stall(visitor(1), ""))
	}
	extra := g.stall(visitor(1), "")
	resp := readResponse(t, extra)
	if resp.StatusCode() != fasthttp.StatusServiceUnavailable || string(resp.Header.Peek("Retry-After")) != "1" {
		t.Errorf("4th connection from one address: %d Retry-After %q", resp.StatusCode(), resp.Header.Peek("Retry-After"))
	}
	_ = extra.Close()
	if r := g.do(visitor(2), "GET", "/healthz", nil, ""); r.Status != 200 {
		t.Errorf("another address: %d", r.Status)
	}
	for range 5 { // trusted proxies carry everyone's traffic: exempt
		held = append(held, g.stall(fromProxy, ""))
	}
	if r := g.do(fromProxy, "GET", "/healthz", nil, ""); r.Status != 200 {
		t.Errorf("trusted proxy over the cap: %d", r.Status)
	}
	_ = held[0].Close()
	waitFor(t, func() bool {
		r, err := g.tryRaw(visitor(1), "GET /healthz HTTP/1.1\r\nHost: m\r\nConnection: close\r\n\r\n")
		return err == nil && r.Status == 200
	})
	for _, c := range held {
		_ = c.Close()
	}
	_, body := scrape(t, g.h, "/metrics", "GET", "")
	if !strings.Contains(body, `consentgate_rejected_total{reason="per_ip_limit"}`) || strings.Contains(body, `consentgate_rejected_total{reason="per_ip_limit"} 0`) {
		t.Errorf("per-IP refusals not counted:\n%s", grepLines(body, "per_ip"))
	}
}

// TestReadingCapCutsLongestReader: with max_reading_requests stalled
// bodies in flight, a normal hit is still served and the longest stalled
// reader gets 503 over_budget.
func TestReadingCapCutsLongestReader(t *testing.T) {
	t.Parallel()
	g := newGateway(t, "limits: {max_reading_requests: 4}")
	g.srv.budget.minAge = 0
	var stalled []net.Conn
	for i := range 4 {
		stalled = append(stalled, g.stall(visitor(10+i), stalledBody+strings.Repeat("a", 30000)))
		waitFor(t, func() bool { return g.srv.budget.reading() == i+1 })
	}
	start := time.Now()
	resp := g.do(visitor(99), "GET", deniedHit, map[string]string{"CF-IPCountry": "DE"}, "")
	if resp.Status != fasthttp.StatusNoContent {
		t.Fatalf("normal hit while the reading slots are full: %d %q", resp.Status, resp.Body)
	}
	t.Logf("normal hit answered in %v", time.Since(start))
	cut := readResponse(t, stalled[0])
	if cut.StatusCode() != fasthttp.StatusServiceUnavailable || string(cut.Body()) != "over_budget\n" || len(cut.Header.Peek("Retry-After")) == 0 {
		t.Errorf("longest stalled reader: %d %q", cut.StatusCode(), cut.Body())
	}
	for _, c := range stalled {
		_ = c.Close()
	}
	if n := len(g.up.requests()); n != 1 {
		t.Errorf("upstream got %d requests, want the normal hit", n)
	}
}

// TestReadingCapRefusesNewcomer: when every reader is younger than the
// eviction age, the newcomer gets the 503 instead.
func TestReadingCapRefusesNewcomer(t *testing.T) {
	t.Parallel()
	g := newGateway(t, "limits: {max_reading_requests: 2}")
	g.srv.budget.minAge = time.Hour
	var stalled []net.Conn
	for i := range 2 {
		stalled = append(stalled, g.stall(visitor(10+i), stalledBody+"abc"))
		waitFor(t, func() bool { return g.srv.budget.reading() == i+1 })
	}
	resp := g.do(visitor(99), "POST", "/g/collect?v=2&tid=G-1", nil, "en=page_view")
	if resp.Status != fasthttp.StatusServiceUnavailable || resp.get("Retry-After") != "1" {
		t.Errorf("newcomer over the reading cap: %d %q", resp.Status, resp.Body)
	}
	for _, c := range stalled {
		_ = c.Close()
	}
	waitFor(t, func() bool { return g.srv.budget.reading() == 0 && g.srv.budget.bytes.Load() == 0 })
	if r := g.do(visitor(99), "GET", deniedHit, nil, ""); r.Status != fasthttp.StatusNoContent {
		t.Errorf("after the stalled readers left: %d", r.Status)
	}
}

// TestByteBudget: stalled bodies fill limits.max_buffered_bytes; the next
// large body cuts the longest reader, or (all too young) is refused
// itself; a small hit always passes. The budget is given back.
func TestByteBudget(t *testing.T) {
	t.Parallel()
	g := newGateway(t, "limits: {max_buffered_bytes: 100000}")
	body := strings.Repeat("a", 30000)
	for _, minAge := range []time.Duration{time.Hour, 0} {
		g.srv.budget.minAge = minAge
		var stalled []net.Conn
		for i := range 3 {
			stalled = append(stalled, g.stall(visitor(10+i), stalledBody+body))
			waitFor(t, func() bool { return g.srv.budget.bytes.Load() >= int64(30000*(i+1)) })
		}
		if r := g.do(visitor(98), "GET", deniedHit, nil, ""); r.Status != fasthttp.StatusNoContent {
			t.Errorf("minAge %v: small hit over the byte budget: %d", minAge, r.Status)
		}
		big := g.stall(visitor(99), stalledBody+body)
		if minAge > 0 {
			if r := readResponse(t, big); r.StatusCode() != fasthttp.StatusServiceUnavailable {
				t.Errorf("large body over the budget: %d", r.StatusCode())
			}
		} else {
			if r := readResponse(t, stalled[0]); r.StatusCode() != fasthttp.StatusServiceUnavailable {
				t.Errorf("longest reader not cut: %d", r.StatusCode())
			}
		}
		for _, c := range append(stalled, big) {
			_ = c.Close()
		}
		waitFor(t, func() bool { return g.srv.budget.bytes.Load() == 0 && g.srv.budget.reading() == 0 })
	}
}

// BenchmarkInputChecks is what the hardening adds per hit: the path and
// body checks and reading the repeated-header-aware geo and Sec-GPC.
func BenchmarkInputChecks(b *testing.B) {
	g := newBenchGateway(b)
	req := benchRequest(benchHits["GA4Denied"])
	req.Header.SetMethod("POST")
	req.SetBodyString("v=2&tid=G-F9XM71K45T&en=page_view&ep.item=M%C3%BCsli&_et=120\nv=2&en=scroll&epn.percent_scrolled=90\n")
	geo := []string{"X-Forwarded-CountryRegion", "CF-IPCountry", "CloudFront-Viewer-Country", "X-Appengine-Country", "X-Gclb-Country"}
	b.ReportAllocs()
	for b.Loop() {
		if !cleanPath(req.URI().PathOriginal()) || g.h.checkBody(req) != nil || g.h.gpc(&req.Header) {
			b.Fatal("refused")
		}
		if r, _ := region(&req.Header, true, geo); r.IsUnknown() {
			b.Fatal("no region")
		}
	}
}

// TestReloadCannotDropAdminToken: with the admin listener bound beyond
// loopback, a reload to a file that moves it to 127.0.0.1 without a
// token is refused: the bound listener only moves on restart.
func TestReloadCannotDropAdminToken(t *testing.T) {
	t.Parallel()
	g := newGateway(t, "admin_listen: \"0.0.0.0:9090\"\nadmin: {token: \"s3cret-admin-token-0123\"}\n")
	path := filepath.Join(t.TempDir(), "config.yaml")
	writeFile(t, path, "cookieless: {secret: \"test-secret-0123456789\"}\nadmin_listen: \"127.0.0.1:9090\"\n")
	r := NewReloader(g.h, g.m, zap.NewNop(), path, func() (*config.Config, error) { return config.Load(path) })
	before := g.h.Config()
	if err := r.Reload(); err == nil || !strings.Contains(err.Error(), "admin.token") {
		t.Errorf("Reload = %v, want a refusal naming admin.token", err)
	}
	if g.h.Config() != before || g.h.Config().AdminToken == "" {
		t.Error("the token was dropped")
	}
}

func FuzzConflictingRaw(f *testing.F) {
	f.Add("Content-Type: a\r\nContent-Type: b\r\n", "Content-Type")
	f.Add("content-type:a\ncontent-type: A \r\n", "Content-Type")
	f.Add(":\n\n:::\r\r", "")
	f.Fuzz(func(t *testing.T, raw, name string) {
		got := conflictingRaw([]byte(raw), []byte(name))
		// Reference: collect the trimmed values of the lines named name.
		var values []string
		for _, line := range strings.Split(raw, "\n") {
			k, v, ok := strings.Cut(line, ":")
			if !ok || !strings.EqualFold(strings.Trim(k, " \t"), name) {
				continue
			}
			values = append(values, strings.ToLower(strings.Trim(strings.TrimRight(v, "\r"), " \t")))
		}
		want := false
		for _, v := range values[min(1, len(values)):] {
			if !strings.EqualFold(v, values[0]) {
				want = true
			}
		}
		if got != want {
			t.Fatalf("conflictingRaw(%q, %q) = %v, want %v", raw, name, got, want)
		}
	})
}
