package consentmode

import (
	"net/netip"
	"strings"
	"testing"
)

func testPolicy() *Policy {
	p := NewPolicy()
	p.SetSecret([]byte("test-secret-0123456789"))
	return p
}

func ga4(q string) *Input {
	return &Input{Route: 0, Family: FamilyGA4, Query: []byte(q), Day: 20000}
}

func decide(in *Input, p *Policy) (Decision, *Work) {
	var w Work
	d := Decide(in, p, &w)
	return d, &w
}

func params(q []byte) map[string][]string {
	m := map[string][]string{}
	for _, kv := range strings.Split(string(q), "&") {
		if kv == "" {
			continue
		}
		k, v, _ := strings.Cut(kv, "=")
		m[k] = append(m[k], v)
	}
	return m
}

// TestMergeDisagreeingInputs covers every pair of inputs that disagree:
// an explicit denial from any of them wins, and the first denier (in the
// order gcd, gcs, npa, then the optional signals) is reported.
func TestMergeDisagreeingInputs(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		query   string
		gpc     bool
		region  string
		want    [NumTypes]Value
		wantSrc [NumTypes]Source
	}{
		{"gcd denies, gcs grants", "gcs=G111&gcd=13q3q3q2q5l1", false, "US",
			[4]Value{Denied, Denied, Denied, Denied}, [4]Source{SourceGCD, SourceGCD, SourceGCD, SourceGCD}},
		{"gcs denies, gcd grants", "gcs=G100&gcd=13r3r3r2r5l1", false, "US",
			[4]Value{Denied, Denied, Granted, Granted}, [4]Source{SourceGCS, SourceGCS, SourceGCD, SourceGCD}},
		{"npa denies, gcd grants", "gcd=13r3r3r2r5l1&npa=1", false, "US",
			[4]Value{Granted, Granted, Granted, Denied}, [4]Source{SourceGCD, SourceGCD, SourceGCD, SourceNPA}},
		{"gpc denies, gcd grants", "gcd=13r3r3r2r5l1", true, "US",
			[4]Value{Granted, Granted, Granted, Denied}, [4]Source{SourceGCD, SourceGCD, SourceGCD, SourceGPC}},
		{"gcd grants, region would deny", "gcd=13r3r3r2r5l1", false, "DE",
			[4]Value{Granted, Granted, Granted, Granted}, [4]Source{SourceGCD, SourceGCD, SourceGCD, SourceGCD}},
		{"gcs grants storage only, region denies the rest", "gcs=G111", false, "DE",
			[4]Value{Granted, Granted, Denied, Denied}, [4]Source{SourceGCS, SourceGCS, SourceRegionDefault, SourceRegionDefault}},
		{"gcd not set, region grants", "gcd=13l3l3l3l1l1", false, "US",
			[4]Value{Granted, Granted, Granted, Granted}, [4]Source{SourceRegionDefault, SourceRegionDefault, SourceRegionDefault, SourceRegionDefault}},
		{"gcd not set, unknown region denies", "gcd=13l3l3l3l1l1", false, "",
			[4]Value{Denied, Denied, Denied, Denied}, [4]Source{SourceRegionDefault, SourceRegionDefault, SourceRegionDefault, SourceRegionDefault}},
		{"batch line denies what the query grants", "gcs=G111&gcd=13r3r3r2r5l1", false, "US",
			[4]Value{Granted, Granted, Granted, Granted}, [4]Source{SourceGCD, SourceGCD, SourceGCD, SourceGCD}},
		{"gpc and npa both deny: npa is the hit's own", "gcd=13r3r3r2r5l1&npa=1", true, "US",
			[4]Value{Granted, Granted, Granted, Denied}, [4]Source{SourceGCD, SourceGCD, SourceGCD, SourceNPA}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			in := ga4("v=2&tid=G-1&" + tt.query)
			in.GPC = tt.gpc
			in.Region = MustRegion(tt.region)
			d, _ := decide(in, testPolicy())
			if d.Consent.Value != tt.want || d.Consent.Source != tt.wantSrc {
				t.Errorf("Decide(%q) consent = %v from %v, want %v from %v", tt.query, d.Consent.Value, d.Consent.Source, tt.want, tt.wantSrc)
			}
		})
	}
}

func TestBatchLineCanOnlyDeny(t *testing.T) {
	t.Parallel()
	in := ga4("v=2&tid=G-1&gcs=G111&gcd=13r3r3r2r5l1&_p=9")
	in.Region = MustRegion("US")
	in.Body = []byte("en=page_view&cid=1.2\r\nen=scroll&gcs=G100&cid=1.2\r\n")
	d, w := decide(in, testPolicy())
	if d.Action != ActionCookieless || !d.Consent.Denied(AnalyticsStorage) {
		t.Fatalf("Decide = %v %v, want cookieless with analytics denied", d.Action, d.Consent.Value)
	}
	lines := strings.Split(string(w.Body), "\r\n")
	if len(lines) != 3 || lines[2] != "" {
		t.Fatalf("body lines = %q, want two CRLF lines", w.Body)
	}
	for _, l := range lines[:2] {
		if strings.Contains(l, "cid=1.2") {
			t.Errorf("line %q still carries the original cid", l)
		}
	}
	if !strings.Contains(lines[1], "gcs=G100") {
		t.Errorf("line %q lost its gcs", lines[1])
	}
}

func TestCookielessGA4(t *testing.T) {
	t.Parallel()
	q := "v=2&tid=G-ABC&_p=1749196701069&gcs=G100&gcd=13p3p3p2p5l1&cid=1174285007.1749196701&sid=1749196701&sct=4&seg=1" +
		"&uid=u42&up.plan=gold&upn.visits=3&_fplc=abc&ecid=154&_fid=f1&ep.ga_temp_client_id=1174285007.1749196701&ep.page=home&en=page_view" +
		"&dl=https%3A%2F%2Fshop.example%2F%3F_gl%3D1*abc*_ga*MTE.%26gclid%3DCj0%26utm_source%3Dx&dr=https%3A%2F%2Fref.example%2F%23_gl%3D1*q"
	in := ga4(q)
	in.Region = MustRegion("DE")
	in.Cookie = []byte("_ga=GA1.1.1; _gcl_au=1.1")
	d, w := decide(in, testPolicy())
	if d.Action != ActionCookieless {
		t.Fatalf("action = %v, want cookieless", d.Action)
	}
	got := params(w.Query)
	for _, k := range []string{"uid", "sct", "up.plan", "upn.visits", "_fplc", "ecid", "_fid", "ep.ga_temp_client_id"} {
		if _, ok := got[k]; ok {
			t.Errorf("%s still present in %s", k, w.Query)
		}
	}
	if got["cid"][0] == "1174285007.1749196701" || got["sid"][0] == "1749196701" {
		t.Errorf("original cid/sid left: %s", w.Query)
	}
	if strings.Contains(string(w.Query), "_gl") {
		t.Errorf("_gl left in %s", w.Query)
	}
	if !strings.Contains(got["dl"][0], "gclid") {
		t.Errorf("gclid removed although ads_data_redaction is off: %s", got["dl"][0])
	}
	if got["ep.page"][0] != "home" || got["seg"][0] != "1" {
		t.Errorf("kept parameters changed: %s", w.Query)
	}
	if len(w.Cookie) != 0 {
		t.Errorf("cookieless hit sends cookies %q", w.Cookie)
	}

	p := testPolicy()
	p.AdsDataRedaction = true
	_, w2 := decide(in, p)
	// ads_data_redaction is documented for Ads and Floodlight only: GA4
	// keeps click ids in dl under denied ad_storage.
	if !strings.Contains(string(w2.Query), "gclid") {
		t.Errorf("gclid removed from a GA4 hit by ads_data_redaction: %s", w2.Query)
	}
	p.Mode = ModeBasic
	if d, _ := decide(in, p); d.Action != ActionBlock || !d.Reasons.Has(ReasonBasicMode) {
		t.Errorf("basic mode: action %v reasons %v, want block basic_mode", d.Action, d.Reasons.Strings())
	}
}

func TestEphemeralID(t *testing.T) {
	t.Parallel()
	p := testPolicy()
	cid := func(q string, day int64, p *Policy) string {
		in := ga4(q)
		in.Day = day
		in.Region = MustRegion("DE")
		_, w := decide(in, p)
		return params(w.Query)["cid"][0]
	}
	a := cid("tid=G-1&_p=100&cid=1.1&gcs=G100", 20000, p)
	if b := cid("tid=G-1&_p=100&cid=9.9&gcs=G100", 20000, p); a != b {
		t.Errorf("same page load, different ids: %s %s", a, b)
	}
	if b := cid("tid=G-1&_p=101&cid=1.1&gcs=G100", 20000, p); a == b {
		t.Errorf("different page loads share id %s", a)
	}
	if b := cid("tid=G-1&_p=100&cid=1.1&gcs=G100", 20001, p); a == b {
		t.Errorf("different days share id %s", a)
	}
	other := NewPolicy()
	other.SetSecret([]byte("another-secret-0123456789"))
	if b := cid("tid=G-1&_p=100&cid=1.1&gcs=G100", 20000, other); a == b {
		t.Errorf("different secrets share id %s", a)
	}
	num, secs, ok := strings.Cut(a, ".")
	if !ok || len(num) < 1 || len(num) > 10 || len(secs) != 10 {
		t.Errorf("id %q is not shaped like a cid", a)
	}
}

func TestEmailsRedactedEverywhere(t *testing.T) {
	t.Parallel()
	in := ga4("v=2&tid=G-1&gcs=G111&gcd=13r3r3r2r5l1&dt=Hi%20jo%40x.com&ep.form=jo%2540x.com&uid=jo@x.com" +
		"&dl=https%3A%2F%2Fs.example%2Fu%2Fjo%40x.com%3Fe%3Djo%2540x.com%23m%3Djo%2540x.com")
	in.Region = MustRegion("US")
	d, w := decide(in, testPolicy())
	if d.Action != ActionForward || !d.Reasons.Has(ReasonEmailRedacted) {
		t.Fatalf("action %v reasons %v", d.Action, d.Reasons.Strings())
	}
	var scratch []byte
	if holdsEmail(w.Query, &scratch) {
		t.Errorf("e-mail left in %s", w.Query)
	}
}

func TestTagAllowlist(t *testing.T) {
	t.Parallel()
	p := testPolicy()
	p.Tags = map[string]bool{"G-GOOD": true, "AW-123": true, "DC-77": true}
	tests := []struct {
		name string
		in   *Input
		want Action
	}{
		{"allowed", &Input{Family: FamilyGA4, Query: []byte("tid=g-good&gcs=G111&gcd=13r3r3r2r5l1")}, ActionForward},
		{"other tag", &Input{Family: FamilyGA4, Query: []byte("tid=G-EVIL&gcs=G111&gcd=13r3r3r2r5l1")}, ActionBlock},
		{"no tag", &Input{Family: FamilyGA4, Query: []byte("gcs=G111&gcd=13r3r3r2r5l1")}, ActionBlock},
		{"second tid in a batch line", &Input{Family: FamilyGA4, Query: []byte("tid=G-GOOD&gcs=G111&gcd=13r3r3r2r5l1"), Body: []byte("tid=G-EVIL&en=x")}, ActionBlock},
		{"ads path id", &Input{Route: 1, Family: FamilyAds, PathTag: []byte("123"), Query: []byte("gcs=G111&gcd=13r3r3r2r5l1")}, ActionForward},
		{"ads other path id", &Input{Route: 1, Family: FamilyAds, PathTag: []byte("999"), Query: []byte("gcs=G111&gcd=13r3r3r2r5l1")}, ActionBlock},
		{"floodlight src", &Input{Family: FamilyFloodlight, Matrix: []byte("src=77;type=a;gcs=G111;gcd=13r3r3r2r5l1")}, ActionForward},
		{"script id", &Input{Family: FamilyScript, Query: []byte("id=G-GOOD")}, ActionForward},
		{"script other id", &Input{Family: FamilyScript, Query: []byte("id=GTM-X")}, ActionBlock},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.in.Region = MustRegion("US")
			if d, _ := decide(tt.in, p); d.Action != tt.want {
				t.Errorf("action = %v, want %v (reasons %v)", d.Action, tt.want, d.Reasons.Strings())
			}
		})
	}
}

func TestServerContainerParams(t *testing.T) {
	t.Parallel()
	in := ga4("v=2&tid=G-1&gcs=G111&gcd=13r3r3r2r5l1&sst.rnd=1&sst.gcd=G111&richsstsse")
	in.Region = MustRegion("US")
	d, w := decide(in, testPolicy())
	if !d.ServerContainer || strings.Contains(string(w.Query), "sst.") || strings.Contains(string(w.Query), "richsstsse") {
		t.Errorf("server container params: %v %s", d.ServerContainer, w.Query)
	}
}

func TestClientIPParam(t *testing.T) {
	t.Parallel()
	in := ga4("v=2&tid=G-1&_uip=6.6.6.6&gcs=G100")
	in.Region = MustRegion("US")
	in.ClientIP = netip.MustParseAddr("203.0.113.77")
	_, w := decide(in, testPolicy())
	if got := params(w.Query)["_uip"]; len(got) != 1 || got[0] != "203.0.113.0" {
		t.Errorf("_uip = %v, want the truncated client IP only", got)
	}
	in.Query = []byte("v=2&tid=G-1&gcs=G111&gcd=13r3r3r2r5l1")
	in.ClientIP = netip.MustParseAddr("2001:db8:1:2:3::4")
	_, w = decide(in, testPolicy())
	if got := params(w.Query)["_uip"]; len(got) != 1 || got[0] != "2001%3Adb8%3A1%3A2%3A3%3A%3A4" {
		t.Errorf("_uip = %v, want the full IPv6 address", got)
	}
}

// TestUnchangedHitIsByteForByte: a fully consented hit without anything
// to redact leaves exactly as it came.
func TestUnchangedHitIsByteForByte(t *testing.T) {
	t.Parallel()
	q := "v=2&tid=G-1&gtm=45je&_p=1&gcs=G111&gcd=13r3r3r2r5l1&npa=0&cid=1.2&&en=page_view&dl=https%3A%2F%2Fx.example%2F%3Fa%3D1&weird%20key=%ZZ"
	in := ga4(q)
	in.Region = MustRegion("DE")
	in.Body = []byte("en=a&x=1\nen=b\n")
	d, w := decide(in, testPolicy())
	if d.Action != ActionForward || string(w.Query) != q || string(w.Body) != string(in.Body) {
		t.Errorf("Decide changed a consented hit:\n got %s %q\nwant %s %q", w.Query, w.Body, q, in.Body)
	}
}
