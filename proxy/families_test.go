package proxy

import (
	"strings"
	"testing"

	"github.com/valyala/fasthttp"
)

func TestAdsConversionDenied(t *testing.T) {
	t.Parallel()
	g := newGateway(t, "")
	g.do(fromProxy, "GET", "/pagead/conversion/1071635065/?random=1&en=conversion&gcs=G100&gcd=13q3q3q2q5l1&auid=1235240376.1778240583"+
		"&gclaw=CjwKCAjw_x&gclgb=x&gac=y&em=tv.1~em.vEeV7ovnKnq&ecsid=9&value=49&oid=7192923&url=https%3A%2F%2Fshop.example%2Fthanks%3Fgclid%3DCj0",
		map[string]string{"CF-IPCountry": "DE", "Cookie": "_gcl_au=1.1.1235240376.1778240583; _ga=GA1.1.1"}, "")
	r := onlyRequest(t, g.up)
	if r.Host != "www.googleadservices.com" || !strings.HasPrefix(r.URI, "/pagead/conversion/1071635065/?") {
		t.Errorf("upstream %s %s", r.Host, r.URI)
	}
	q := query(t, r.URI)
	for _, k := range []string{"auid", "gclaw", "gclgb", "gac", "em", "ecsid"} {
		if q.Has(k) {
			t.Errorf("%s forwarded: %s", k, r.URI)
		}
	}
	if q.Get("oid") != "7192923" || q.Get("value") != "49" || q.Get("npa") != "1" || !strings.Contains(q.Get("url"), "gclid") {
		t.Errorf("conversion data lost or npa missing: %s", r.URI)
	}
	if _, ok := r.Header["Cookie"]; ok {
		t.Errorf("cookieless conversion sent cookies %q", r.Header["Cookie"])
	}
}

func TestAdsRedactionRemovesClickIDs(t *testing.T) {
	t.Parallel()
	g := newGateway(t, "consent: {ads_data_redaction: true}")
	g.do(fromProxy, "GET", "/ccm/collect?tid=AW-1&en=page_view&gcs=G100&gclid=Cj0&dl=https%3A%2F%2Fshop.example%2F%3Fgclid%3DCj0%26wbraid%3Dw%26x%3D1",
		map[string]string{"CF-IPCountry": "DE"}, "")
	r := onlyRequest(t, g.up)
	if strings.Contains(r.URI, "gclid") || strings.Contains(r.URI, "wbraid") || !strings.Contains(r.URI, "x%3D1") {
		t.Errorf("click ids not redacted: %s", r.URI)
	}
}

func TestAdsRemarketingAndFormData(t *testing.T) {
	t.Parallel()
	g := newGateway(t, "")
	for _, uri := range []string{
		"/rmkt/collect/1071635065/?random=1&en=add_to_cart&gcs=G111&gcd=13r3r3r2p5l1", // ad_personalization denied
		"/pagead/1p-user-list/1071635065/?random=1&en=add_to_cart&gcs=G111&npa=1",     // npa=1 denies personalization
		"/ccm/form-data/1071635065?gcs=G111&gcd=13r3r3q2r5l1&em=tv.1~em.x",            // ad_user_data denied
		"/td/rul/1071635065?gcd=13r3r3r2q5l1",
	} {
		if resp := g.do(fromProxy, "GET", uri, map[string]string{"CF-IPCountry": "US"}, ""); resp.Status != fasthttp.StatusNoContent {
			t.Errorf("%s: %d", uri, resp.Status)
		}
	}
	if n := len(g.up.requests()); n != 0 {
		t.Fatalf("blocked remarketing/form-data reached the upstream: %+v", g.up.requests())
	}
	// The view-through config ping leaves with npa=1, as Google's tag sends it.
	g.do(fromProxy, "GET", "/pagead/viewthroughconversion/1071635065/?random=1&en=gtag.config&gcd=13r3r3r2q5l1", map[string]string{"CF-IPCountry": "US"}, "")
	if r := onlyRequest(t, g.up); !strings.Contains(r.URI, "en=gtag.config") || !strings.Contains(r.URI, "npa=1") {
		t.Errorf("view-through ping: %s", r.URI)
	}
	g.up.mu.Lock()
	g.up.got = nil
	g.up.mu.Unlock()
	g.do(fromProxy, "GET", "/pagead/viewthroughconversion/1071635065/?random=1&en=conversion&gcd=13r3r3r2q5l1", map[string]string{"CF-IPCountry": "US"}, "")
	r := onlyRequest(t, g.up)
	if r.Host != "googleads.g.doubleclick.net" || !strings.Contains(r.URI, "npa=1") {
		t.Errorf("view-through conversion: %s %s", r.Host, r.URI)
	}
}

func TestFloodlightMatrix(t *testing.T) {
	t.Parallel()
	g := newGateway(t, "")
	path := "/activity;src=14804749;type=delif0;cat=allvi0;ord=5426429458572;npa=0;auiddc=2106096883.1779186070;" +
		"u1=https%3A%2F%2Fwww.delife.de%2F%3Fe%3Djo%2540x.com;u3=28249;gcs=G100;gcd=13q3q3q2q5l1;~oref=https%3A%2F%2Fwww.delife.de%2F%3Fgclid%3DCj0?"
	g.do(fromProxy, "GET", path, map[string]string{"CF-IPCountry": "DE", "Cookie": "_gcl_au=1.1.2106096883.1779186070"}, "")
	r := onlyRequest(t, g.up)
	want := "/activity;src=14804749;type=delif0;cat=allvi0;ord=5426429458572;npa=1;" +
		"u1=https%3A%2F%2Fwww.delife.de%2F%3Fe%3Dredacted;u3=28249;gcs=G100;gcd=13q3q3q2q5l1;~oref=https%3A%2F%2Fwww.delife.de%2F%3Fgclid%3DCj0?"
	if r.URI != want || r.Host != "ad.doubleclick.net" {
		t.Errorf("Floodlight upstream got\n %s %s\nwant\n %s", r.Host, r.URI, want)
	}
	if _, ok := r.Header["Cookie"]; ok {
		t.Errorf("cookieless Floodlight hit sent cookies")
	}
	// Granted: the matrix leaves byte for byte.
	g2 := newGateway(t, "")
	granted := "/activityi;src=14804749;type=delif0;cat=allvi0;rcb=15;ord=1;npa=0;auiddc=2106096883.1779186070;u1=https%3A%2F%2Fwww.delife.de%2F;gcs=G111;gcd=13r3r3r2r5l1;dma=1?"
	g2.do(fromProxy, "GET", granted, map[string]string{"CF-IPCountry": "DE"}, "")
	if r := onlyRequest(t, g2.up); r.URI != granted {
		t.Errorf("granted Floodlight hit changed:\n got %s\nwant %s", r.URI, granted)
	}
}

func TestUniversalAnalytics(t *testing.T) {
	t.Parallel()
	hit := "/j/collect?v=1&_v=j101&t=pageview&tid=UA-692547-2&cid=414801335.1715625262&_gid=196473.1&jid=1388679807&gjid=654531532&aip=1&dl=https%3A%2F%2Fx.example%2F"
	blocked := newGateway(t, "")
	if resp := blocked.do(fromProxy, "POST", hit, map[string]string{"CF-IPCountry": "US"}, ""); resp.Status != fasthttp.StatusNoContent {
		t.Errorf("UA hit: %d", resp.Status)
	}
	if n := len(blocked.up.requests()); n != 0 {
		t.Errorf("UA hit forwarded by default")
	}

	g := newGateway(t, "ua: {forward: true}")
	g.do(fromProxy, "POST", hit, map[string]string{"CF-IPCountry": "US", "X-Forwarded-For": "198.51.100.23"}, "")
	r := onlyRequest(t, g.up)
	q := query(t, r.URI)
	if r.Host != "www.google-analytics.com" || q.Get("cid") != "414801335.1715625262" || q.Get("uip") != "198.51.100.0" {
		t.Errorf("granted UA hit with aip=1: %s %s", r.Host, r.URI)
	}
	g.do(fromProxy, "POST", hit, map[string]string{"CF-IPCountry": "FR"}, "")
	r = g.up.requests()[1]
	q = query(t, r.URI)
	for _, k := range []string{"_gid", "jid", "gjid"} {
		if q.Has(k) {
			t.Errorf("denied UA hit kept %s: %s", k, r.URI)
		}
	}
	if q.Get("cid") == "414801335.1715625262" {
		t.Errorf("denied UA hit kept its cid")
	}
}

func TestMeasurementProtocol(t *testing.T) {
	t.Parallel()
	off := newGateway(t, "")
	if resp := off.do(fromVisitor, "POST", "/mp/collect?measurement_id=G-1&api_secret=s", nil, `{"client_id":"1"}`); resp.Status != fasthttp.StatusNotFound {
		t.Errorf("MP while disabled: %d", resp.Status)
	}
	g := newGateway(t, "mp: {enabled: true}")
	body := `{"client_id":"1234567890.1680000000","user_id":"u_8f3a2c","consent":{"ad_user_data":"DENIED","ad_personalization":"GRANTED"},` +
		`"user_data":{"sha256_email_address":["abc"]},"events":[{"name":"purchase","params":{"note":"mail jo@x.com"}}]}`
	g.do(fromVisitor, "POST", "/mp/collect?measurement_id=G-1&api_secret=SECRET", map[string]string{"Content-Type": "application/json"}, body)
	r := onlyRequest(t, g.up)
	if r.Host != "region1.google-analytics.com" || r.URI != "/mp/collect?measurement_id=G-1&api_secret=SECRET" {
		t.Errorf("MP upstream %s %s", r.Host, r.URI)
	}
	// user_id follows analytics_storage (the sender's on the Measurement
	// Protocol), as uid does on the web; user_data follows ad_user_data.
	if !strings.Contains(r.Body, `"user_id":"u_8f3a2c"`) || strings.Contains(r.Body, `"user_data":`) || strings.Contains(r.Body, "jo@x.com") ||
		!strings.Contains(r.Body, `"client_id":"1234567890.1680000000"`) || !strings.Contains(r.Body, `"ad_user_data":"DENIED"`) {
		t.Errorf("MP body %s", r.Body)
	}
	// Without a consent object the fail-closed default (denied for an
	// unknown region) still takes user_id.
	g.do(fromVisitor, "POST", "/mp/collect?measurement_id=G-1&api_secret=SECRET", map[string]string{"Content-Type": "application/json"},
		`{"client_id":"1.2","user_id":"u_8f3a2c","events":[{"name":"purchase"}]}`)
	if got := g.up.requests(); len(got) != 2 || strings.Contains(got[1].Body, "u_8f3a2c") {
		t.Errorf("MP without consent object: %+v", got)
	}
	if resp := g.do(fromVisitor, "POST", "/mp/collect?measurement_id=G-1&api_secret=s", nil, `{"client_id":`); resp.Status != fasthttp.StatusBadRequest || !strings.Contains(resp.Body, "invalid_body") {
		t.Errorf("invalid JSON: %d %q", resp.Status, resp.Body)
	}
	if n := len(g.up.requests()); n != 2 {
		t.Errorf("invalid JSON forwarded")
	}
	for _, line := range g.waitLog(1) {
		if strings.Contains(line, "SECRET") {
			t.Errorf("api_secret in the decision log: %s", line)
		}
	}
}

// TestFloodlightGtagPath: gtag's Floodlight hits carry their parameters in
// the last path segment of /ddm/fls/ (review find: they once left untouched).
func TestFloodlightGtagPath(t *testing.T) {
	t.Parallel()
	g := newGateway(t, "")
	g.do(fromProxy, "GET", "/ddm/fls/i/dc_pre=CJ2xqtbz;src=8712345;type=sales0;cat=purch0;ord=1;auiddc=706136819.1613932803;"+
		"u1=jo%40example.com;gcs=G111;gcd=13v3v3v3v5l1;~oref=https%3A%2F%2Fs.example%2F%3F_gl%3D1*x?", map[string]string{"CF-IPCountry": "DE", "Cookie": "_gcl_au=1.1.1"}, "")
	r := onlyRequest(t, g.up)
	if r.Host != "adservice.google.com" {
		t.Errorf("host %s", r.Host)
	}
	// Everything the hit claims is granted by gcd: only hygiene applies.
	if strings.Contains(r.URI, "jo%40example.com") || !strings.HasPrefix(r.URI, "/ddm/fls/i/dc_pre=CJ2xqtbz;src=8712345;") || !strings.HasSuffix(r.URI, "?") {
		t.Errorf("granted gtag Floodlight hit: %s", r.URI)
	}

	d := newGateway(t, "")
	d.do(fromProxy, "GET", "/ddm/fls/i/dc_pre=CJ2xqtbz;src=8712345;type=sales0;auiddc=706136819.1613932803;gcs=G100;~oref=https%3A%2F%2Fs.example%2F%3F_gl%3D1*x?",
		map[string]string{"CF-IPCountry": "DE", "Cookie": "_gcl_au=1.1.1"}, "")
	r = onlyRequest(t, d.up)
	if strings.Contains(r.URI, "auiddc") || strings.Contains(r.URI, "_gl") || !strings.Contains(r.URI, ";npa=1?") || r.Header["Cookie"] != "" {
		t.Errorf("denied gtag Floodlight hit: %s cookie %q", r.URI, r.Header["Cookie"])
	}
}
