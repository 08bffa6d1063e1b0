package proxy

import (
	"encoding/json"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/valyala/fasthttp"
	"github.com/valyala/fasthttp/fasthttpadaptor"

	"github.com/consentgate/consentgate/consentmode"
	"github.com/consentgate/consentgate/delivery"
	"github.com/consentgate/consentgate/vendors/vendortest"
)

// vendorHost is the three APIs' endpoint host in these tests: the
// gateway's fake upstream hands its requests to a vendortest fake, which
// checks each payload against the APIs' documented schema.
const vendorHost = "vendors.test"

const envelopeToken = "k3J9x0PqZ7vB2mWn5tR8-envelope"

var vendorTokens = [consentmode.NumVendors]string{"meta-token-0123", "ms-token-0123", "tiktok-token-0123"}

// vendorGateway is a queueing gateway with the three vendors on, and the
// fake APIs behind it; modes adds to the delivery section ("ga4: sync, ").
func vendorGateway(t *testing.T, modes string, extra ...string) (*gateway, *vendortest.Fake) {
	t.Helper()
	fake, err := vendortest.New(vendortest.Options{Tokens: vendorTokens})
	if err != nil {
		t.Fatal(err)
	}
	var vs strings.Builder
	vs.WriteString("vendors:\n  envelope_token: " + envelopeToken + "\n")
	for v := range consentmode.Vendor(consentmode.NumVendors) {
		fmt.Fprintf(&vs, "  %s: {enabled: true, id: \"P%d\", token: %s, endpoint: \"http://%s\"}\n", v, v+1, vendorTokens[v], vendorHost)
	}
	g := newGateway(t, fmt.Sprintf("trusted_proxies: [\"10.0.0.0/8\"]\ngeo: {headers: [X-Country]}\ndelivery: {%sspool: {dir: %q, sync_interval: 5ms}, workers: 2}\n%s%s",
		modes, t.TempDir(), vs.String(), strings.Join(extra, "")))
	api := fasthttpadaptor.NewFastHTTPHandler(fake)
	g.up.setRespond(func(ctx *fasthttp.RequestCtx) {
		if string(ctx.Host()) == vendorHost {
			api(ctx)
			return
		}
		ctx.SetStatusCode(fasthttp.StatusNoContent)
	})
	if err := g.h.StartDelivery(); err != nil {
		t.Fatal(err)
	}
	return g, fake
}

// ga4Requests are the GA4 hits the fake upstream received.
func ga4Requests(u *fakeUpstream) []recorded {
	var out []recorded
	for _, r := range u.requests() {
		if r.Host != vendorHost {
			out = append(out, r)
		}
	}
	return out
}

const purchaseHit = "/g/collect?v=2&tid=G-1&cid=1.2&en=purchase&ep.event_id=ord-1001&ep.transaction_id=T-1001&epn.value=59.9&cu=EUR" +
	"&pr1=idSKU-1~nmShirt~pr29.95~qt2&uid=user-42&dl=https%3A%2F%2Fshop.example%2Fthanks%3Ffbclid%3DFB1%26msclkid%3DMS1"

func purchaseHeaders(country string) map[string]string {
	return map[string]string{"X-Country": country, "User-Agent": "Mozilla/5.0 (X11; Linux x86_64) Chrome/120",
		"Cookie": "_fbp=fb.1.1700000000000.42; _ttp=ttp-cookie-1; _uetvid=uetvid-1; _uetmsclkid=_uetMS0"}
}

// TestVendorsFromGA4Granted: a granted purchase reaches each vendor once,
// with the hit's event id, the ids and user data consent allows, the
// gateway's token, and a payload the API's schema accepts; the GA4 hit
// leaves exactly as it does without vendors.
func TestVendorsFromGA4Granted(t *testing.T) {
	t.Parallel()
	g, fake := vendorGateway(t, "")
	uri := purchaseHit + "&gcs=G111&gcd=13r3r3r2r5l1"
	if r := g.do(fromProxy, "GET", uri, purchaseHeaders("US"), ""); r.Status != fasthttp.StatusNoContent {
		t.Fatalf("status %d %s", r.Status, r.Body)
	}
	for v := range consentmode.Vendor(consentmode.NumVendors) {
		if err := fake.WaitEvents(v, 1, 10*time.Second); err != nil {
			t.Fatal(err)
		}
	}
	want := map[consentmode.Vendor][]string{
		consentmode.VendorMeta:      {"event_id=ord-1001", "event_name=Purchase", "user_data.fbp=fb.1.1700000000000.42", "user_data.client_ip_address=10.1.2.3"},
		consentmode.VendorMicrosoft: {"eventId=ord-1001", "eventName=purchase", "adStorageConsent=G", "userData.msclkid=MS1", "userData.anonymousId=uetvid-1"},
		consentmode.VendorTikTok:    {"event_id=ord-1001", "event=CompletePayment", "user.ttp=ttp-cookie-1"},
	}
	for v, fields := range want {
		evs := fake.Events(v)
		if len(evs) != 1 {
			t.Fatalf("%s: %d events, want 1", v, len(evs))
		}
		for _, f := range fields {
			path, val, _ := strings.Cut(f, "=")
			if got := fmt.Sprint(dig(evs[0], path)); got != val {
				t.Errorf("%s: %s = %q, want %q", v, path, got, val)
			}
		}
	}
	if vs := fake.Violations(); len(vs) > 0 {
		t.Errorf("schema violations: %v", vs)
	}
	// Never worse for Google: the same hit through a gateway without
	// vendors leaves byte for byte the same.
	plain := queueGateway(t, t.TempDir(), "")
	plain.do(fromProxy, "GET", uri, purchaseHeaders("US"), "")
	a, b := ga4Requests(g.up), plain.up.wait(t, 1)
	if len(a) != 1 || a[0].URI != b[0].URI || a[0].Body != b[0].Body || fmt.Sprint(a[0].Header) != fmt.Sprint(b[0].Header) {
		t.Errorf("the GA4 hit left differently with vendors on:\n%+v\n%+v", a, b)
	}
	line := g.waitLog(1)[0]
	if !strings.Contains(line, `"vendors":{"meta":"send","microsoft":"send","tiktok":"send"}`) {
		t.Errorf("decision log line without the vendors' calls: %s", line)
	}
	// Delivery counts each vendor's event delivered (the three share a
	// host here: no vendor's answer is judged by another's rules).
	g.h.vendors.Close()
	g.h.delivery.Shutdown(5 * time.Second)
	for _, want := range []string{
		`consentgate_delivery_delivered_total{family="vendor_meta"} 1`,
		`consentgate_delivery_delivered_total{family="vendor_microsoft"} 1`,
		`consentgate_delivery_delivered_total{family="vendor_tiktok"} 1`,
		`consentgate_delivery_dropped_total{cause="rejected_4xx"} 0`,
	} {
		if !strings.Contains(metricsText(g), want) {
			t.Errorf("metrics lack %s", want)
		}
	}
}

// TestTuneVendorLane: a vendor's endpoint gets a coalescing lane; TikTok's
// answers are read for their code only on a host of its own.
func TestTuneVendorLane(t *testing.T) {
	t.Parallel()
	cfg := loadConfig(t, `vendors:
  meta: {enabled: true, id: "1", token: meta-token-0123, endpoint: "https://meta.example"}
  microsoft: {enabled: true, id: "2", token: ms-token-0123, endpoint: "https://shared.example"}
  tiktok: {enabled: true, id: T3, token: tiktok-token-0123, endpoint: "https://tiktok.example"}
`)
	tune := func(host string) delivery.Upstream {
		up := delivery.Upstream{Scheme: "https", Host: host}
		tuneVendorLane(cfg, &up)
		return up
	}
	if up := tune("tiktok.example"); up.Merge == nil || up.Batch != 100 || up.Refused == nil {
		t.Errorf("tiktok's lane: %+v", up)
	}
	if up := tune("meta.example"); up.Merge == nil || up.Refused != nil {
		t.Errorf("meta's lane: %+v", up)
	}
	if up := tune("region1.google-analytics.com"); up.Merge != nil || up.Refused != nil {
		t.Errorf("Google's lane: %+v", up)
	}
	shared := loadConfig(t, `vendors:
  microsoft: {enabled: true, id: "2", token: ms-token-0123, endpoint: "https://shared.example"}
  tiktok: {enabled: true, id: T3, token: tiktok-token-0123, endpoint: "https://shared.example"}
`)
	up := delivery.Upstream{Scheme: "https", Host: "shared.example"}
	tuneVendorLane(shared, &up)
	if up.Merge == nil || up.Refused != nil {
		t.Errorf("a host two vendors share: %+v", up)
	}
}

// TestVendorsFromGA4Denied: "reject all" in DE. Meta and TikTok get
// nothing; Microsoft gets the conversion with adStorageConsent "D" and
// no ids, no user data, no client IP.
func TestVendorsFromGA4Denied(t *testing.T) {
	t.Parallel()
	g, fake := vendorGateway(t, "")
	uri := purchaseHit + "&gcs=G100&gcd=13q3q3q2q5l1&em=tv.1~em.2WpZ4OEmfXyPfdy7Y10rClL0r9lx7RfffhMUXNEUXaQ"
	if r := g.do(fromProxy, "GET", uri, purchaseHeaders("DE"), ""); r.Status != fasthttp.StatusNoContent {
		t.Fatalf("status %d %s", r.Status, r.Body)
	}
	if err := fake.WaitEvents(consentmode.VendorMicrosoft, 1, 10*time.Second); err != nil {
		t.Fatal(err)
	}
	ev := fake.Events(consentmode.VendorMicrosoft)[0]
	if ev["adStorageConsent"] != "D" {
		t.Errorf("adStorageConsent %v, want D", ev["adStorageConsent"])
	}
	body, _ := json.Marshal(ev)
	for _, leak := range []string{"msclkid", "anonymousId", "externalId", "clientIpAddress", `"em"`, "MS1", "FB1", "uetvid-1", "10.1.2.3"} {
		if strings.Contains(string(body), leak) {
			t.Errorf("microsoft got %s under denied consent: %s", leak, body)
		}
	}
	// The decision log line is written with the answer, before the
	// builder takes the hit: once it says block, and Microsoft's call has
	// arrived, nothing more is on its way to Meta or TikTok.
	line := g.waitLog(1)[0]
	if !strings.Contains(line, `"vendors":{"meta":"block","microsoft":"send+no_ids+no_user_data+conversions_only","tiktok":"block"}`) {
		t.Errorf("decision log: %s", line)
	}
	g.h.vendors.Close() // hands every built call to delivery
	g.h.delivery.Shutdown(5 * time.Second)
	if n, m := len(fake.Received(consentmode.VendorMeta)), len(fake.Received(consentmode.VendorTikTok)); n+m != 0 {
		t.Errorf("meta got %d calls, tiktok %d, under denied ad_storage", n, m)
	}
	for _, want := range []string{
		`consentgate_vendor_events_total{vendor="meta",action="block"} 1`,
		`consentgate_vendor_events_total{vendor="tiktok",action="block"} 1`,
		`consentgate_vendor_events_total{vendor="microsoft",action="send"} 1`,
	} {
		if !strings.Contains(metricsText(g), want) {
			t.Errorf("metrics lack %s", want)
		}
	}
}

// TestVendorsNotOfferedOnError: a GA4 hit the browser got an error for
// (it will send it again) does not reach the vendors.
func TestVendorsNotOfferedOnError(t *testing.T) {
	t.Parallel()
	g, fake := vendorGateway(t, "ga4: sync, ")
	api := fasthttpadaptor.NewFastHTTPHandler(fake)
	var fail atomic.Bool
	fail.Store(true)
	g.up.setRespond(func(ctx *fasthttp.RequestCtx) {
		switch {
		case string(ctx.Host()) == vendorHost:
			api(ctx)
		case fail.Load():
			ctx.SetStatusCode(fasthttp.StatusServiceUnavailable)
		default:
			ctx.SetStatusCode(fasthttp.StatusNoContent)
		}
	})
	hit := purchaseHit + "&gcs=G111&gcd=13r3r3r2r5l1"
	if r := g.do(fromProxy, "GET", hit, purchaseHeaders("US"), ""); r.Status < 400 {
		t.Fatalf("status %d, want the upstream's error", r.Status)
	}
	// The browser sends it again, and this time Google takes it: the
	// vendors get the purchase once.
	fail.Store(false)
	if r := g.do(fromProxy, "GET", hit, purchaseHeaders("US"), ""); r.Status != fasthttp.StatusNoContent {
		t.Fatalf("status %d", r.Status)
	}
	g.h.vendors.Close()
	g.h.delivery.Shutdown(5 * time.Second)
	for v := range consentmode.Vendor(consentmode.NumVendors) {
		if n := len(fake.Events(v)); n != 1 {
			t.Errorf("%s got %d events for a purchase sent twice, answered once", v, n)
		}
	}
}

// TestEnvelopeRoutes: a merchant backend's own calls through
// /vendors/<name>/events: refused without a usable envelope, blocked or
// restricted by the consent it carries, forwarded with the gateway's
// token and without the envelope.
func TestEnvelopeRoutes(t *testing.T) {
	t.Parallel()
	g, fake := vendorGateway(t, "")
	meta := `{"data":[{"event_name":"Purchase","event_time":1728000000,"event_id":"crm-1","action_source":"website",` +
		`"event_source_url":"https://shop.example/thanks","user_data":{"client_user_agent":"UA/1","client_ip_address":"203.0.113.9",` +
		`"em":["a3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"],"fbp":"fb.1.1.2"},"custom_data":{"value":10,"currency":"EUR"}}]}`
	post := func(vendor, envelope, body string) *response {
		h := map[string]string{"Content-Type": "application/json", "Authorization": "Bearer " + envelopeToken}
		if envelope != "" {
			h["Consent-Envelope"] = envelope
		}
		return g.do(fromVisitor, "POST", "/vendors/"+vendor+"/events", h, body)
	}
	tests := []struct {
		name, vendor, envelope, body string
		status                       int
		answer                       string
	}{
		{"no envelope", "meta", "", meta, 400, "consent_envelope_missing"},
		{"malformed envelope", "meta", "gcs=G111&bogus=1", meta, 400, "consent_envelope_malformed"},
		{"not the vendor's JSON", "meta", "gcs=G111&gcd=13r3r3r2r5l1&region=US", "{", 400, "vendor_payload_invalid"},
		{"unknown vendor", "snap", "gcs=G111", meta, 404, "unknown_path"},
		{"ad_storage denied blocks meta", "meta", "gcs=G100&gcd=13q3q3q2q5l1&region=DE", meta, 200, `"action":"block"`},
		{"ad_user_data denied", "meta", "gcs=G111&gcd=13r3r3q2r5l1&region=DE", meta, 202, `"action":"send+no_user_data"`},
	}
	// Only the merchant's backends, holding the envelope token, may spend
	// its vendor tokens.
	for _, auth := range []string{"", "Bearer wrong-token-0123456789", "Basic " + envelopeToken} {
		h := map[string]string{"Content-Type": "application/json", "Consent-Envelope": "gcs=G111&gcd=13r3r3r2r5l1&region=US"}
		if auth != "" {
			h["Authorization"] = auth
		}
		if r := g.do(fromVisitor, "POST", "/vendors/meta/events", h, meta); r.Status != fasthttp.StatusUnauthorized {
			t.Errorf("Authorization %q: %d %q, want 401", auth, r.Status, r.Body)
		}
	}
	if r := g.do(fromVisitor, "GET", "/vendors/meta/events", map[string]string{"Authorization": "Bearer " + envelopeToken}, ""); r.Status != fasthttp.StatusMethodNotAllowed || r.get("Allow") != "POST" {
		t.Errorf("GET: %d, Allow %q", r.Status, r.get("Allow"))
	}
	for _, tt := range tests {
		r := post(tt.vendor, tt.envelope, tt.body)
		if r.Status != tt.status || !strings.Contains(r.Body, tt.answer) {
			t.Errorf("%s: %d %q, want %d with %q", tt.name, r.Status, r.Body, tt.status, tt.answer)
		}
	}
	if err := fake.WaitEvents(consentmode.VendorMeta, 1, 10*time.Second); err != nil {
		t.Fatal(err)
	}
	reqs := fake.Received(consentmode.VendorMeta)
	if len(reqs) != 1 {
		t.Fatalf("meta got %d calls, want the one consent allowed", len(reqs))
	}
	ev := fake.Events(consentmode.VendorMeta)[0]
	if ud, _ := ev["user_data"].(map[string]any); ud["em"] != nil || ud["client_ip_address"] != nil || ud["fbp"] != "fb.1.1.2" {
		t.Errorf("user_data under denied ad_user_data: %v", ud)
	}
	all, _ := json.Marshal(g.up.requests())
	if strings.Contains(string(all), "Consent-Envelope") || strings.Contains(string(all), "gcd=13r3r3q2r5l1") {
		t.Error("the envelope left with the call")
	}
	if vs := fake.Violations(); len(vs) > 0 {
		t.Errorf("schema violations: %v", vs)
	}
	for _, want := range []string{
		`consentgate_vendor_envelopes_total{vendor="meta",result="consent_envelope_missing"} 1`,
		`consentgate_vendor_envelopes_total{vendor="meta",result="consent_envelope_malformed"} 1`,
		`consentgate_vendor_envelopes_total{vendor="meta",result="vendor_payload_invalid"} 1`,
		`consentgate_vendor_envelopes_total{vendor="meta",result="block"} 1`,
		`consentgate_vendor_envelopes_total{vendor="meta",result="send"} 1`,
		`consentgate_rejected_total{reason="consent_envelope_missing"} 1`,
	} {
		if !strings.Contains(metricsText(g), want) {
			t.Errorf("metrics lack %s", want)
		}
	}
	lines := g.waitLog(3) // the three calls that were decided
	var envelopes int
	for _, l := range lines {
		var rec struct {
			Route, Family, Action string
			Vendors               map[string]string
		}
		if err := json.Unmarshal([]byte(l), &rec); err != nil {
			t.Fatal(err)
		}
		if rec.Route == "vendor_envelope" && rec.Family == "vendors" && rec.Vendors["meta"] == rec.Action {
			envelopes++
		}
	}
	if envelopes != 3 {
		t.Errorf("%d envelope records, want 3:\n%s", envelopes, strings.Join(lines, "\n"))
	}
}

// dig returns the value at a dotted path of a decoded JSON object.
func dig(m map[string]any, path string) any {
	var cur any = m
	for k := range strings.SplitSeq(path, ".") {
		o, ok := cur.(map[string]any)
		if !ok {
			return nil
		}
		cur = o[k]
	}
	return cur
}

// metricsText is the gateway's /metrics exposition.
func metricsText(g *gateway) string {
	var b strings.Builder
	g.m.set.WritePrometheus(&b)
	return b.String()
}

// TestEnvelopeRoutesOffWithoutToken: without vendors.envelope_token the
// routes do not exist, whatever the caller presents.
func TestEnvelopeRoutesOffWithoutToken(t *testing.T) {
	t.Parallel()
	g := newGateway(t, "vendors: {meta: {enabled: true, id: \"1\", token: meta-token-0123, endpoint: \"http://vendors.test\"}}\n")
	r := g.do(fromVisitor, "POST", "/vendors/meta/events", map[string]string{"Consent-Envelope": "gcs=G111", "Authorization": "Bearer x"}, `{"data":[]}`)
	if r.Status != fasthttp.StatusNotFound {
		t.Errorf("%d %q, want 404", r.Status, r.Body)
	}
	if n := len(g.up.requests()); n != 0 {
		t.Errorf("%d requests left", n)
	}
}

// TestVendorsNotFromBlockedHits: a GA4 hit the gateway blocks (here: a
// tag not on the allowlist) makes no vendor call, whatever its consent.
func TestVendorsNotFromBlockedHits(t *testing.T) {
	t.Parallel()
	g, fake := vendorGateway(t, "", "tags: [G-MINE]\n")
	if r := g.do(fromProxy, "GET", purchaseHit+"&gcs=G111&gcd=13r3r3r2r5l1", purchaseHeaders("US"), ""); r.Status != fasthttp.StatusNoContent {
		t.Fatalf("status %d", r.Status)
	}
	line := g.waitLog(1)[0]
	if !strings.Contains(line, `"action":"block"`) || strings.Contains(line, `"vendors"`) {
		t.Errorf("decision log: %s", line)
	}
	g.h.vendors.Close()
	g.h.delivery.Shutdown(5 * time.Second)
	for v := range consentmode.Vendor(consentmode.NumVendors) {
		if n := len(fake.Received(v)); n != 0 {
			t.Errorf("%s got %d calls from a blocked hit", v, n)
		}
	}
}
