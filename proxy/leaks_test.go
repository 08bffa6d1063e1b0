package proxy

import (
	"bufio"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/valyala/fasthttp"
)

// statusLine sends one request and returns the status line of the answer
// as it came over the wire.
func (g *gateway) statusLine(uri string) string {
	g.t.Helper()
	c, err := g.ln.DialWithLocalAddr(fromVisitor)
	if err != nil {
		g.t.Fatal(err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := c.Write([]byte("GET " + uri + " HTTP/1.1\r\nHost: metrics.shop.example\r\nConnection: close\r\n\r\n")); err != nil {
		g.t.Fatal(err)
	}
	line, err := bufio.NewReader(c).ReadString('\n')
	if err != nil {
		g.t.Fatal(err)
	}
	return strings.TrimRight(line, "\r\n")
}

// TestWithheldRedirectStatusLine: an off-site redirect withheld on a
// cookieless hit is answered "204 No Content", not with the reason phrase
// of Google's 302.
func TestWithheldRedirectStatusLine(t *testing.T) {
	t.Parallel()
	g := newGateway(t, "")
	g.up.setRespond(func(ctx *fasthttp.RequestCtx) {
		ctx.Response.Header.Set("Location", "https://www.google.com/pagead/1p-conversion/123/?x=1")
		ctx.SetStatusCode(fasthttp.StatusFound)
	})
	if got := g.statusLine("/pagead/conversion/123/?gcs=G100&label=x"); got != "HTTP/1.1 204 No Content" {
		t.Errorf("status line %q, want HTTP/1.1 204 No Content", got)
	}
	// Granted: the redirect is relayed as Google sent it.
	if got := g.statusLine("/pagead/conversion/123/?gcs=G111&gcd=13r3r3r2r5l1&label=x"); got != "HTTP/1.1 302 Found" {
		t.Errorf("status line %q, want HTTP/1.1 302 Found", got)
	}
	if n := len(g.up.requests()); n != 2 {
		t.Errorf("upstream got %d requests, want 2", n)
	}
}

// TestUnassignedRegionCode: a geo header with a code ISO 3166-1 does not
// assign (QQ, AA) takes consent.unknown_region, not the granting default;
// an alias (EL) counts as its country only when consent.region_aliases
// maps it, and a user-assigned code (XK) only when listed.
func TestUnassignedRegionCode(t *testing.T) {
	t.Parallel()
	const hit = "/g/collect?v=2&tid=G-ABC123&_p=1&cid=1174285007.1749196701&uid=u42&en=page_view" // no consent signal: the region decides
	send := func(g *gateway, code string) string {
		t.Helper()
		g.raw(fromProxy, rawHit("GET", hit, [][2]string{{"X-Forwarded-CountryRegion", code}}, ""))
		got := g.up.requests()
		return got[len(got)-1].URI
	}
	g := newGateway(t, "")
	for _, code := range []string{"QQ", "AA", "EL", "UK"} {
		if uri := send(g, code); strings.Contains(uri, "u42") || strings.Contains(uri, "1174285007") {
			t.Errorf("%s: identifiers left as if a granting country: %s", code, uri)
		}
	}
	if uri := send(g, "US"); !strings.Contains(uri, "uid=u42") {
		t.Errorf("US: uid dropped: %s", uri)
	}
	if uri := send(g, "XK"); !strings.Contains(uri, "uid=u42") {
		t.Errorf("XK (listed by default): uid dropped: %s", uri)
	}

	mapped := newGateway(t, "consent: {region_aliases: {EL: GR}, user_assigned_regions: [], regions: {GR: {default: granted}}}\n")
	if uri := send(mapped, "EL"); !strings.Contains(uri, "uid=u42") {
		t.Errorf("EL mapped to GR (granted): uid dropped: %s", uri)
	}
	if uri := send(mapped, "XK"); strings.Contains(uri, "u42") {
		t.Errorf("XK not listed: uid left: %s", uri)
	}
}

// TestLeaksEndToEnd: the leak corpus through the gateway, asserting on
// what the fake upstream received: device advertising ids on Floodlight
// and Ads, and the _gl linker at any depth of encoding on a cookieless
// GA4 hit (its click id kept as a plain gclid).
func TestLeaksEndToEnd(t *testing.T) {
	t.Parallel()
	const (
		gaB64 = "MTE3NDI4NTAwNy4xNzQ5MTk2NzAx" // base64 of the client id 1174285007.1749196701
		gl    = "1*1q2w3e*_ga*" + gaB64 + "*_gcl_aw*R0NMLjE3NDkxOTY3MDEuQ2owS0NRandMaW5rZXJDbGljaw.."
	)
	g := newGateway(t, "")
	de := [][2]string{{"X-Forwarded-CountryRegion", "DE"}}
	hits := []struct {
		uri       string
		forbidden []string
		keep      string
	}{
		{"/activity;src=123;type=a;cat=b;ord=1;gcs=G100;dc_rdid=38400000-8cf0-11bd-b23e-10b96e40000d?", []string{"38400000"}, "src=123"},
		{"/pagead/conversion/123/?gcs=G100&rdid=38400000-8cf0-11bd-b23e-10b96e40000d&idtype=advertisingid", []string{"38400000"}, "idtype=advertisingid"},
		{"/g/collect?v=2&tid=G-1&_p=1&gcs=G100&_gl=" + gl, []string{gaB64, "_gl"}, "gclid=Cj0KCQjwLinkerClick"},
		{"/g/collect?v=2&tid=G-1&_p=1&gcs=G100&ep.page_location=//shop.example/p?_gl=" + gl, []string{gaB64, "_gl"}, "gclid=Cj0KCQjwLinkerClick"},
		{"/g/collect?v=2&tid=G-1&_p=1&gcs=G100&ep.page_location=https%3A//shop.example/p?x=1%26_gl=" + gl, []string{gaB64, "_gl"}, "x=1"},
		{"/g/collect?v=2&tid=G-1&_p=1&gcs=G100&dl=https%3A%2F%2Fshop.example%2F%3Fnext%3Dhttps%253A%252F%252Fa%252F%253F_gl%253D" + gl, []string{gaB64, "_gl"}, "gclid%253DCj0KCQjwLinkerClick"},
	}
	for _, h := range hits {
		before := len(g.up.requests())
		g.raw(fromProxy, rawHit("GET", h.uri, de, ""))
		got := g.up.requests()
		if len(got) != before+1 {
			t.Fatalf("%s: upstream got %d requests", h.uri, len(got)-before)
		}
		uri := got[len(got)-1].URI
		for _, f := range h.forbidden {
			for s, i := uri, 0; i < 4; i++ {
				if strings.Contains(s, f) {
					t.Errorf("%q reached the upstream: %s", f, uri)
					break
				}
				s = strings.ReplaceAll(strings.ReplaceAll(strings.ReplaceAll(s, "%25", "%"), "%3D", "="), "%5F", "_")
			}
		}
		if !strings.Contains(uri, h.keep) {
			t.Errorf("%q lost: %s", h.keep, uri)
		}
	}
}

// TestCookielessIDsWithoutPageID: two visitors (different IPs) sending a
// denied GA4 hit without _p, as @minimal-analytics/ga4 does, reach the
// upstream with different client ids; their times are not after the hit.
func TestCookielessIDsWithoutPageID(t *testing.T) {
	t.Parallel()
	g := newGateway(t, "")
	const hit = "/g/collect?v=2&tid=G-1&gcs=G100&cid=111.222&sid=333&en=page_view"
	var cids []string
	for _, ip := range []string{"198.51.100.7", "192.0.2.44"} {
		g.raw(fromProxy, rawHit("GET", hit, [][2]string{{"X-Forwarded-CountryRegion", "DE"}, {"X-Forwarded-For", ip}}, ""))
		got := g.up.requests()
		q := query(t, got[len(got)-1].URI)
		cid, sid := q.Get("cid"), q.Get("sid")
		_, cidT, _ := strings.Cut(cid, ".")
		if cid == "" || cid == "111.222" || cidT > sid || sid > strconv.FormatInt(fixedNow().Unix(), 10) {
			t.Errorf("%s: cid %s sid %s", ip, cid, sid)
		}
		cids = append(cids, cid)
	}
	if cids[0] == cids[1] {
		t.Errorf("two visitors share the client id %s", cids[0])
	}
}
