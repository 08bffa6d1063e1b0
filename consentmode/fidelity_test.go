package consentmode

import (
	"net/url"
	"strings"
	"testing"
)

// Tests for consent fidelity: what Google's own cookieless behaviour keeps,
// and nothing that consent denies (leaks 1-5, over-strips 6-8).

// tcDisclosed appends a TCF 2.3 DisclosedVendors segment to tc, listing
// Google (vendor 755) or not.
func tcDisclosed(tc string, google bool) string {
	w := new(bitWriter)
	w.add(1, 3).add(755, 16).flag(false)
	for id := 1; id <= 755; id++ {
		w.flag(google && id == 755)
	}
	return tc + "." + w.String()
}

// TestTCFMerge is the TCF merge table: when the hit's own gcs/gcd leave a
// type unset and gdpr=1 carries a usable string giving Google consent,
// Google's mapping sets the ad types both ways before the region default;
// explicit denials from the hit, the CMP cookie and US opt-outs still win.
func TestTCFMerge(t *testing.T) {
	t.Parallel()
	G, D := Granted, Denied
	type srcs = [NumTypes]Source
	const (
		gcd = SourceGCD
		gcs = SourceGCS
		npa = SourceNPA
		tcf = SourceTCF
		def = SourceRegionDefault
		cmp = SourceCMPCookie
		gpc = SourceGPC
	)
	tests := []struct {
		name   string
		region string
		query  string
		cookie string
		gpc    bool
		strict bool
		want   [NumTypes]Value
		src    srcs
		// wantQuery lists parameters the forwarded hit must carry; a
		// leading '!' one it must not carry.
		wantQuery []string
	}{
		{name: "silent tag, everything consented: ad types granted by tcf", region: "DE", query: "gdpr=1&gdpr_consent=" + tcAll,
			want: [4]Value{G, D, G, G}, src: srcs{tcf, def, tcf, tcf}, wantQuery: []string{"gcs=G110", "gcd=13n3m3n2n5l1", "!npa=1"}},
		{name: "gcd letters l count as silent", region: "DE", query: "gcd=13l3l3l3l1l1&gdpr=1&gdpr_consent=" + tcAll,
			want: [4]Value{G, D, G, G}, src: srcs{tcf, def, tcf, tcf}, wantQuery: []string{"gcd=13n3m3n2n5l1", "!npa=1"}}, // no command ran: a whole gcd of the enforced state
		{name: "tcf grants analytics only in strict mode", region: "DE", strict: true, query: "gdpr=1&gdpr_consent=" + tcAll,
			want: [4]Value{G, G, G, G}, src: srcs{tcf, tcf, tcf, tcf}, wantQuery: []string{"!gcs", "!npa=1"}},
		{name: "purpose 3 refused: ad_personalization denied, rest granted", region: "DE", query: "gdpr=1&gdpr_consent=" + tcNoP3,
			want: [4]Value{G, D, G, D}, src: srcs{tcf, def, tcf, tcf}, wantQuery: []string{"npa=1"}},
		{name: "purpose 1 refused", region: "DE", query: "gdpr=1&gdpr_consent=" + tcNoP1,
			want: [4]Value{D, D, D, G}, src: srcs{tcf, def, tcf, tcf}},
		{name: "google without consent grants nothing", region: "US", query: "gdpr=1&gdpr_consent=" + tcNoGoogle,
			want: [4]Value{D, G, D, D}, src: srcs{tcf, def, tcf, tcf}},
		{name: "TCF 2.3, google disclosed", region: "DE", query: "gdpr=1&gdpr_consent=" + tcDisclosed(tcAll, true),
			want: [4]Value{G, D, G, G}, src: srcs{tcf, def, tcf, tcf}},
		{name: "TCF 2.3, google not disclosed", region: "DE", query: "gdpr=1&gdpr_consent=" + tcDisclosed(tcAll, false),
			want: [4]Value{D, D, D, D}, src: srcs{tcf, def, tcf, tcf}},
		{name: "identical copies count once", region: "DE", query: "gdpr=1&gdpr_consent=" + tcAll + "&gdpr_consent=" + tcAll,
			want: [4]Value{G, D, G, G}, src: srcs{tcf, def, tcf, tcf}},
		{name: "two different strings deny", region: "DE", query: "gdpr=1&gdpr_consent=" + tcAll + "&gdpr_consent=" + tcNoP3,
			want: [4]Value{D, D, D, D}, src: srcs{tcf, def, tcf, tcf}},
		{name: "no gdpr=1: deny-only", region: "DE", query: "gdpr_consent=" + tcAll,
			want: [4]Value{D, D, D, D}, src: srcs{def, def, def, def}},
		{name: "gdpr=0: not applicable", region: "DE", query: "gdpr=0&gdpr_consent=" + tcAll,
			want: [4]Value{D, D, D, D}, src: srcs{def, def, def, def}},
		// The CMP did not answer: the hit's consent mode state decides,
		// then the region default (Google's TCF integration guide).
		{name: "unavailable: the tag's consent mode grant stands", region: "DE", query: "gcs=G111&gcd=13r3r3r2r5l1&gdpr=1&gdpr_consent=tcunavailable",
			want: [4]Value{G, G, G, G}, src: srcs{gcd, gcd, gcd, gcd}},
		{name: "tcempty: the tag's consent mode grant stands", region: "DE", query: "gcs=G111&gcd=13r3r3r2r5l1&gdpr=1&gdpr_consent=tcempty",
			want: [4]Value{G, G, G, G}, src: srcs{gcd, gcd, gcd, gcd}},
		{name: "unavailable, silent tag: region default", region: "DE", query: "gdpr=1&gdpr_consent=tcunavailable",
			want: [4]Value{D, D, D, D}, src: srcs{def, def, def, def}},
		{name: "unavailable, silent tag in a granting region: region default", region: "US", query: "gdpr=1&gdpr_consent=tcunavailable",
			want: [4]Value{G, G, G, G}, src: srcs{def, def, def, def}},
		{name: "unavailable: other denials still win", region: "DE", query: "gcs=G111&gcd=13r3r3r2r5l1&gdpr=1&gdpr_consent=tcunavailable", cookie: "euconsent-v2=" + tcNoP1,
			want: [4]Value{D, G, D, G}, src: srcs{cmp, gcd, cmp, gcd}},
		{name: "no string still denies", region: "US", query: "gdpr=1",
			want: [4]Value{D, G, D, D}, src: srcs{tcf, def, tcf, tcf}},
		{name: "malformed still denies", region: "US", query: "gdpr=1&gdpr_consent=CPxyz",
			want: [4]Value{D, G, D, D}, src: srcs{tcf, def, tcf, tcf}},
		{name: "explicit gcs denial wins", region: "DE", query: "gcs=G100&gdpr=1&gdpr_consent=" + tcAll,
			want: [4]Value{D, D, G, G}, src: srcs{gcs, gcs, tcf, tcf}},
		{name: "explicit gcd denial wins", region: "DE", query: "gcd=13l3l3q2l1l1&gdpr=1&gdpr_consent=" + tcAll,
			want: [4]Value{G, D, D, G}, src: srcs{tcf, def, gcd, tcf}},
		{name: "npa=1 wins", region: "DE", query: "npa=1&gdpr=1&gdpr_consent=" + tcAll,
			want: [4]Value{G, D, G, D}, src: srcs{tcf, def, tcf, npa}},
		{name: "CMP cookie denial wins", region: "DE", query: "gdpr=1&gdpr_consent=" + tcAll, cookie: "euconsent-v2=" + tcNoP1,
			want: [4]Value{D, D, D, G}, src: srcs{cmp, def, cmp, tcf}},
		{name: "US opt-out wins", region: "DE", query: "gdpr=1&gdpr_consent=" + tcAll, gpc: true,
			want: [4]Value{G, D, G, D}, src: srcs{tcf, def, tcf, gpc}},
		{name: "tag's own grant stays the tag's", region: "DE", query: "gcs=G111&gcd=13r3r3r2r5l1&gdpr=1&gdpr_consent=" + tcAll,
			want: [4]Value{G, G, G, G}, src: srcs{gcd, gcd, gcd, gcd}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := testPolicy()
			p.CMPCookies = []CMPCookie{CMPPresets["euconsent-v2"]}
			if tt.strict {
				rule := p.Regions[MustRegion(tt.region)]
				rule.TCFStrict = true
				p.Regions[MustRegion(tt.region)] = rule
			}
			in := ga4("v=2&tid=G-1&_p=1&cid=1.2&" + tt.query)
			in.Region = MustRegion(tt.region)
			in.Cookie = []byte(tt.cookie)
			in.GPC = tt.gpc
			d, w := decide(in, p)
			if d.Consent.Value != tt.want || d.Consent.Source != tt.src {
				t.Errorf("Decide(%s) = %v from %v, want %v from %v (reasons %v)", tt.query, d.Consent.Value, d.Consent.Source, tt.want, tt.src, d.Reasons.Strings())
			}
			for _, q := range tt.wantQuery {
				if neg, ok := strings.CutPrefix(q, "!"); ok {
					if strings.Contains(string(w.Query), neg) {
						t.Errorf("forwarded %s carries %s", w.Query, neg)
					}
				} else if !strings.Contains(string(w.Query), q) {
					t.Errorf("forwarded %s lacks %s", w.Query, q)
				}
			}
		})
	}
}

// TestLongEncodedNames: names are matched after decoding whatever their
// length, so a fully percent-encoded long user property still meets its rule.
func TestLongEncodedNames(t *testing.T) {
	t.Parallel()
	enc := func(s string) string {
		var b strings.Builder
		for i := range len(s) {
			b.WriteString("%" + strings.ToUpper(string("0123456789abcdef"[s[i]>>4])+string("0123456789abcdef"[s[i]&15])))
		}
		return b.String()
	}
	long := strings.Repeat("x", 120)
	for _, name := range []string{"up." + long, "upn." + long, "sst." + long, "up.a", "c%69d"} {
		q := "v=2&tid=G-1&_p=1&gcs=G100&" + enc(name) + "=1174285007.1749196701"
		if name == "c%69d" {
			q = "v=2&tid=G-1&_p=1&gcs=G100&c%69d=1174285007.1749196701"
		}
		in := ga4(q)
		in.Region = MustRegion("DE")
		_, w := decide(in, testPolicy())
		if strings.Contains(string(w.Query), "1174285007.1749196701") {
			t.Errorf("%s (%d bytes encoded) reached Google under denied analytics: %s", name, len(enc(name)), w.Query)
		}
	}
}

// FuzzNormKey: normKey decodes names of any length exactly as
// appendUnescape does, and matches the rules of the decoded name.
func FuzzNormKey(f *testing.F) {
	f.Add("%75%70%2E" + strings.Repeat("%78", 70))
	f.Add("up.plain")
	f.Add("%zz%7")
	f.Fuzz(func(t *testing.T, k string) {
		var buf []byte
		got := normKey(&buf, []byte(k))
		want, _ := appendUnescape(nil, []byte(k))
		if string(got) != string(want) {
			t.Fatalf("normKey(%q) = %q, want %q", k, got, want)
		}
		st := State{Value: [NumTypes]Value{Denied, Denied, Denied, Denied}}
		op, _ := catalogue.lookup(InHit, FamilyGA4, got, &st, testPolicy())
		if strings.HasPrefix(string(want), "up.") && op != OpDrop {
			t.Fatalf("%q decodes to %q but is kept (op %v)", k, want, op)
		}
	})
}

// TestRedactionCorpus: e-mail shapes the redactor must find, in any value.
func TestRedactionCorpus(t *testing.T) {
	t.Parallel()
	corpus := []string{
		"jo@example.com",
		"jo@xn--mnchen-3ya.de",   // punycode domain
		"jo@example.xn--p1ai",    // punycode TLD
		"jo@münchen.de",          // UTF-8 domain
		"jo@пример.рф",           // UTF-8 domain and TLD
		`"john doe"@example.com`, // quoted local part
		`"a\"b"@example.org`,     // escaped quote inside
		"jo@[192.0.2.1]",         // IPv4 literal
		"jo@[IPv6:2001:db8::1]",  // IPv6 literal
		"jöhn@example.com",       // UTF-8 local part
		"first.last+tag@sub.example.co.uk",
		"john.doe@gmail.com-42", // a top-level label cut short by '-' or digits
		"john.doe@gmail.com1",
		"jo@example.com.1x",
	}
	var scratch []byte
	for _, e := range corpus {
		for _, form := range []string{e, url.QueryEscape(e), url.PathEscape(e), url.QueryEscape(url.QueryEscape(e))} {
			if !holdsEmail([]byte("x "+form+" y"), &scratch) {
				t.Errorf("holdsEmail misses %q", form)
			}
			in := ga4("v=2&tid=G-1&_p=1&gcs=G111&gcd=13r3r3r2r5l1&ep.note=" + url.QueryEscape("note "+e+" end"))
			in.Region = MustRegion("US")
			d, w := decide(in, testPolicy())
			if holdsEmail(w.Query, &scratch) || !d.Reasons.Has(ReasonEmailRedacted) {
				t.Errorf("%q left in %s", e, w.Query)
			}
		}
	}
	for _, notEmail := range []string{"a@b", "@example.com", "x@1.2", "price@10.5", "jo@[nothex]", `""@example.com`} {
		if holdsEmail([]byte(notEmail), &scratch) {
			t.Errorf("holdsEmail(%q) = true, want false", notEmail)
		}
	}
}

// TestEmailInCookieValueAndPath: Google cookie values and hit paths carry
// no e-mail address upstream.
func TestEmailInCookieValueAndPath(t *testing.T) {
	t.Parallel()
	in := ga4("v=2&tid=G-1&_p=1&gcs=G111&gcd=13r3r3r2r5l1")
	in.Region = MustRegion("US")
	in.Cookie = []byte("_ga=GA1.1.jo%40example.com; _ga_X=GS1.1.1; _gcl_au=1.1.1")
	d, w := decide(in, testPolicy())
	if strings.Contains(string(w.Cookie), "example.com") || !strings.Contains(string(w.Cookie), "_ga_X=GS1.1.1") || !d.Reasons.Has(ReasonEmailRedacted) {
		t.Errorf("cookie %q (reasons %v)", w.Cookie, d.Reasons.Strings())
	}

	ri, ok := MatchRoute([]byte("/pagead/conversion/123/"))
	if !ok {
		t.Fatal("no ads route")
	}
	path := "/pagead/conversion/123/jo%40example.com/"
	ads := &Input{Route: ri, Family: FamilyAds, Path: []byte(path), PathTag: []byte("123"), Query: []byte("gcs=G111"), Region: MustRegion("US"), Day: 20000}
	if d, _ := decide(ads, testPolicy()); d.Action != ActionBlock || !d.Reasons.Has(ReasonEmailUnredactable) {
		t.Errorf("ads path with an address: %v %v, want block email_unredactable", d.Action, d.Reasons.Strings())
	}
	si, _ := MatchRoute([]byte("/gtag/js"))
	script := &Input{Route: si, Family: FamilyScript, Path: []byte("/gtag/js"), Query: []byte("id=jo%40example.com"), Region: MustRegion("US")}
	if d, _ := decide(script, testPolicy()); d.Action != ActionBlock || !d.Reasons.Has(ReasonEmailUnredactable) {
		t.Errorf("script id with an address: %v %v, want block", d.Action, d.Reasons.Strings())
	}
}

// TestURLValuedParams: every URL-valued parameter gets dl's in-URL rules.
func TestURLValuedParams(t *testing.T) {
	t.Parallel()
	page := url.QueryEscape("https://shop.example/?_gl=1*abc*_ga*MTE.&gclid=Cj0&utm_source=x")
	for _, name := range []string{"ep.landing", "ep.page_location", "epn.x", "custom"} {
		in := ga4("v=2&tid=G-1&_p=1&gcs=G100&" + name + "=" + page)
		in.Region = MustRegion("DE")
		_, w := decide(in, testPolicy())
		v := params(w.Query)[name][0]
		if strings.Contains(v, "_gl") || !strings.Contains(v, "utm_source") {
			t.Errorf("%s = %s: want _gl removed, the rest kept", name, v)
		}
	}
	// Ads: click ids inside any URL value go with ads_data_redaction.
	ri, _ := MatchRoute([]byte("/pagead/conversion/123/"))
	p := testPolicy()
	p.AdsDataRedaction = true
	ads := &Input{Route: ri, Family: FamilyAds, PathTag: []byte("123"), Query: []byte("gcs=G100&data=" + url.QueryEscape("https://shop.example/?gclid=Cj0&x=1")), Region: MustRegion("DE"), Day: 20000}
	_, w := decide(ads, p)
	if strings.Contains(string(w.Query), "gclid") || !strings.Contains(string(w.Query), "x%3D1") {
		t.Errorf("ads data URL: %s", w.Query)
	}
	if looksLikeURL([]byte("httpx")) || !looksLikeURL([]byte("HTTPS%253A%252F%252Fa")) {
		t.Error("looksLikeURL")
	}
}

// TestAdsDataRedactionScope: ads_data_redaction acts on Ads and
// Floodlight; GA4 keeps click ids under denied ad_storage.
func TestAdsDataRedactionScope(t *testing.T) {
	t.Parallel()
	p := testPolicy()
	p.AdsDataRedaction = true
	in := ga4("v=2&tid=G-1&_p=1&gcs=G100&gclid=Cj0&dl=" + url.QueryEscape("https://shop.example/?gclid=Cj0"))
	in.Region = MustRegion("DE")
	d, w := decide(in, p)
	if strings.Count(string(w.Query), "gclid") != 2 || d.Reasons.Has(ReasonClickIDsRedacted) {
		t.Errorf("GA4 lost click ids: %s", w.Query)
	}
	ri, _ := MatchRoute([]byte("/pagead/conversion/123/"))
	ads := &Input{Route: ri, Family: FamilyAds, PathTag: []byte("123"), Query: []byte("gcs=G100&gclid=Cj0"), Region: MustRegion("DE"), Day: 20000}
	if d, w := decide(ads, p); strings.Contains(string(w.Query), "gclid") || !d.Reasons.Has(ReasonClickIDsRedacted) {
		t.Errorf("Ads kept click ids: %s", w.Query)
	}
}

// TestClientIDTag: cookieless.client_id: tag keeps the tag's page-scoped
// ids only when the gateway sees the cookies and cid is not _ga's.
func TestClientIDTag(t *testing.T) {
	t.Parallel()
	const q = "v=2&tid=G-1&_p=1&gcs=G100&cid=555.666&sid=777"
	tests := []struct {
		name   string
		query  string
		cookie string
		keep   bool
	}{
		{"no _ga among visible cookies", q, "cc_cookie=x", true},
		{"_ga holds another id", q, "_ga=GA1.1.111.222", true},
		{"_ga holds this cid", q, "_ga=GA1.1.555.666", false},
		{"second _ga holds this cid", q, "_ga=GA1.1.1.2; _ga=GA1.2.555.666", false},
		{"no cookies visible", q, "", false},
		{"cid not plain", "v=2&tid=G-1&_p=1&gcs=G100&cid=jo&sid=777", "x=1", false},
		{"two different cids", q + "&cid=1.2", "x=1", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := testPolicy()
			p.ClientIDTag = true
			in := ga4(tt.query)
			in.Region = MustRegion("DE")
			in.Cookie = []byte(tt.cookie)
			d, w := decide(in, p)
			kept := strings.Contains(string(w.Query), "cid=555.666&sid=777")
			if kept != tt.keep || d.Reasons.Has(ReasonTagClientID) != tt.keep || len(w.Cookie) != 0 {
				t.Errorf("kept = %v (reasons %v), want %v: %s cookie %q", kept, d.Reasons.Strings(), tt.keep, w.Query, w.Cookie)
			}
		})
	}
	// Default (ephemeral) never keeps them.
	in := ga4(q)
	in.Region = MustRegion("DE")
	in.Cookie = []byte("x=1")
	if _, w := decide(in, testPolicy()); strings.Contains(string(w.Query), "555.666") {
		t.Errorf("ephemeral mode kept the tag's cid: %s", w.Query)
	}
}

// FuzzRedactEmails: what RedactEmails returns never holds an address, and
// a value without one comes back unchanged.
func FuzzRedactEmails(f *testing.F) {
	f.Add("Mozilla/5.0 (jo@example.com)")
	f.Add(`de, "john doe"@example.com`)
	f.Add("jo%2540xn--mnchen-3ya.de")
	f.Add("x@[IPv6:2001:db8::1] y")
	f.Fuzz(func(t *testing.T, v string) {
		var w Work
		var scratch []byte
		out, found := w.RedactEmails(nil, []byte(v))
		if holdsEmail(out, &scratch) {
			t.Fatalf("RedactEmails(%q) = %q still holds an address", v, out)
		}
		if !found && string(out) != v {
			t.Fatalf("RedactEmails(%q) changed a value without an address: %q", v, out)
		}
	})
}

// TestGCDAddedOnce: a gcd elsewhere in the hit (batch lines) is rewritten
// where it stands; the gateway adds one only to a hit that has none.
func TestGCDAddedOnce(t *testing.T) {
	t.Parallel()
	in := ga4("v=2&tid=G-1&_p=1&cid=1.2")
	in.Body = []byte("en=page_view&gcd=13r3r3r2r5l1\nen=scroll&gcd=13r3r3r2r5l1")
	in.Region = MustRegion("US")
	in.GPC = true
	_, w := decide(in, testPolicy())
	if strings.Contains(string(w.Query), "gcd=") || strings.Count(string(w.Body), "gcd=13r3r3r2q5l1") != 2 {
		t.Errorf("query %s body %q", w.Query, w.Body)
	}
	in.Body = []byte("en=page_view\nen=scroll")
	_, w = decide(in, testPolicy())
	if !strings.Contains(string(w.Query), "gcd=13n3n3n2m5l1") {
		t.Errorf("no gcd added to %s", w.Query)
	}
}
