package proxy

import (
	"strings"
	"testing"

	"github.com/valyala/fasthttp"
)

// TestCORSDefaultSameSite: with cors.allowed_origins empty, origins of the
// request Host's registrable domain get CORS headers with credentials;
// others get none; a list replaces the default.
func TestCORSDefaultSameSite(t *testing.T) {
	t.Parallel()
	g := newGateway(t, "")
	tests := []struct {
		origin string
		want   bool
	}{
		{"https://shop.example", true},
		{"https://www.shop.example", true},
		{"http://shop.example:8080", true},
		{"https://metrics.shop.example", true},
		{"https://evilshop.example", false},
		{"https://shop.example.evil.test", false},
		{"https://other.example", false},
		{"null", false},
	}
	for _, tt := range tests {
		pre := g.do(fromVisitor, "OPTIONS", "/g/collect?v=2", map[string]string{"Origin": tt.origin, "Access-Control-Request-Method": "POST"}, "")
		hit := g.do(fromVisitor, "POST", "/g/collect?v=2&tid=G-1&gcs=G100", map[string]string{"Origin": tt.origin}, "")
		for _, r := range []*response{pre, hit} {
			got := r.get("Access-Control-Allow-Origin") == tt.origin && r.get("Access-Control-Allow-Credentials") == "true"
			if got != tt.want {
				t.Errorf("origin %s: CORS headers %v (status %d), want %v", tt.origin, r.Header, r.Status, tt.want)
			}
		}
	}
	// A registrable domain under a public suffix: github.io names are separate sites.
	r := g.do(fromVisitor, "POST", "/g/collect?v=2&tid=G-1&gcs=G100", map[string]string{"Host": "metrics.a.github.io", "Origin": "https://b.github.io"}, "")
	if r.get("Access-Control-Allow-Origin") != "" {
		t.Errorf("b.github.io allowed for a.github.io: %v", r.Header)
	}
	if r := g.do(fromVisitor, "POST", "/g/collect?v=2&tid=G-1&gcs=G100", map[string]string{"Host": "127.0.0.1:8080", "Origin": "http://127.0.0.1"}, ""); r.get("Access-Control-Allow-Origin") != "" {
		t.Errorf("an IP host has no registrable domain: %v", r.Header)
	}

	listed := newGateway(t, "cors: {allowed_origins: [\"https://www.shop.example\"]}\n")
	if r := listed.do(fromVisitor, "POST", "/g/collect?v=2&tid=G-1&gcs=G100", map[string]string{"Origin": "https://shop.example"}, ""); r.get("Access-Control-Allow-Origin") != "" {
		t.Errorf("an explicit list must replace the default: %v", r.Header)
	}
}

// TestEmailsInEveryForwardedByte: forwarded headers, Google cookie
// values, the path and script ids carry no e-mail address upstream.
func TestEmailsInEveryForwardedByte(t *testing.T) {
	t.Parallel()
	g := newGateway(t, "consent: {default: granted, unknown_region: granted}\n")
	resp := g.do(fromVisitor, "GET", "/g/collect?v=2&tid=G-1&_p=1&gcs=G111&gcd=13r3r3r2r5l1&cid=1.2", map[string]string{
		"User-Agent":         "Mozilla/5.0 (jo@example.com)",
		"Accept-Language":    "de, %22john%20doe%22%40example.com",
		"Sec-Ch-Ua-Model":    "jo@[192.0.2.1]",
		"Cookie":             "_ga=GA1.1.jo@xn--mnchen-3ya.de; _ga_X=GS1.1.1",
		"Referer":            "https://shop.example/?mail=jo@example.com",
		"Sec-Ch-Ua-Platform": "\"Linux\"",
	}, "")
	if resp.Status != fasthttp.StatusNoContent {
		t.Fatalf("status %d", resp.Status)
	}
	got := g.up.requests()
	if len(got) != 1 {
		t.Fatalf("upstream got %d requests", len(got))
	}
	r := got[0]
	all := r.URI + r.Body
	for k, v := range r.Header {
		all += "\n" + k + ": " + v
	}
	for _, leak := range []string{"example.com", "192.0.2.1", "xn--mnchen"} {
		if strings.Contains(all, leak) {
			t.Errorf("%q reached the upstream:\n%s", leak, all)
		}
	}
	if r.Header["User-Agent"] != "Mozilla/5.0 ([redacted])" || r.Header["Sec-Ch-Ua-Platform"] != "\"Linux\"" || !strings.Contains(r.Header["Cookie"], "_ga_X=GS1.1.1") {
		t.Errorf("headers: %v", r.Header)
	}
	lines := g.waitLog(1)
	if !strings.Contains(lines[0], "email_redacted") {
		t.Errorf("decision log lacks email_redacted: %s", lines[0])
	}

	// An address followed by '-' or digits is still an address.
	g.do(fromVisitor, "GET", "/g/collect?v=2&tid=G-1&_p=1&gcs=G111&gcd=13r3r3r2r5l1&cid=1.2&ep.contact=john.doe@gmail.com1&dl=https%3A%2F%2Fshop.example%2Finvite%2Fjohn.doe%40gmail.com-42%2F", nil, "")
	if got := g.up.requests(); len(got) != 2 || strings.Contains(got[1].URI, "gmail") || strings.Contains(got[1].URI, "john.doe") || !strings.Contains(got[1].URI, "-42") {
		t.Errorf("address with a suffix: %+v", got)
	}

	// An address in an Ads path cannot be cut out: nothing leaves.
	for _, path := range []string{"/pagead/conversion/123/jo%40example.com/?gcs=G111", "/pagead/conversion/123/john.doe@gmail.com-42/?gcs=G111"} {
		if r := g.do(fromVisitor, "GET", path, nil, ""); r.Status != fasthttp.StatusNoContent {
			t.Errorf("ads path with an address: status %d", r.Status)
		}
	}
	if r := g.do(fromVisitor, "GET", "/gtag/js?id=jo%40example.com", nil, ""); r.Status != fasthttp.StatusForbidden {
		t.Errorf("script id with an address: status %d", r.Status)
	}
	if n := len(g.up.requests()); n != 2 {
		t.Errorf("upstream got %d requests, want only the first two", n)
	}
}

// TestClientIDTagEndToEnd: cookieless.client_id: tag keeps the tag's own
// page-scoped ids on a denied hit that carries visible cookies without
// this cid in _ga, and never sends the cookies.
func TestClientIDTagEndToEnd(t *testing.T) {
	t.Setenv("CONSENTGATE_COOKIELESS_CLIENT_ID", "tag")
	g := newGateway(t, "")
	g.do(fromVisitor, "GET", "/g/collect?v=2&tid=G-1&_p=1&gcs=G100&cid=555.666&sid=777", map[string]string{"Cookie": "cc_cookie=x"}, "")
	g.do(fromVisitor, "GET", "/g/collect?v=2&tid=G-1&_p=1&gcs=G100&cid=555.666&sid=777", map[string]string{"Cookie": "_ga=GA1.1.555.666"}, "")
	got := g.up.requests()
	if len(got) != 2 {
		t.Fatalf("upstream got %d", len(got))
	}
	if !strings.Contains(got[0].URI, "cid=555.666&sid=777") || got[0].Header["Cookie"] != "" {
		t.Errorf("tag ids not kept: %s %v", got[0].URI, got[0].Header)
	}
	if strings.Contains(got[1].URI, "555.666") {
		t.Errorf("the stored client id left on a denied hit: %s", got[1].URI)
	}
}
