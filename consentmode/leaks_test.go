package consentmode

import (
	"encoding/base64"
	"net/url"
	"os"
	"strings"
	"testing"
)

// linkerB64 encodes a linker part's value the way the tag does: URL-safe
// base64 with '.' as padding.
func linkerB64(s string) string {
	return strings.ReplaceAll(base64.URLEncoding.EncodeToString([]byte(s)), "=", ".")
}

var (
	gaB64    = linkerB64("1174285007.1749196701")
	awB64    = linkerB64("GCL.1749196701.Cj0KCQjwLinkerClick")
	fullGL   = "1*1q2w3e*_ga*" + gaB64 + "*_ga_ABC123*" + linkerB64("GS1.1.1749196701.1.0") + "*_gcl_aw*" + awB64
	adsOnlGL = "1*9z8y7x*_gcl_aw*" + awB64 + "*_gcl_gs*" + linkerB64("2.1.k1$i1749196701")
)

// leakInput builds a Decide input from a gateway-relative URL ("/g/collect?…",
// Floodlight matrix included) as the proxy would.
func leakInput(t *testing.T, raw, body, region string) *Input {
	t.Helper()
	path, query, _ := strings.Cut(raw, "?")
	ri, ok := MatchRoute([]byte(path))
	if !ok {
		t.Fatalf("no route for %s", path)
	}
	r := &Routes[ri]
	in := &Input{Route: ri, Family: r.Family, Kind: r.Kind, Query: []byte(query), Body: []byte(body), Day: 20000,
		PathTag: r.PathTag([]byte(path)), Region: MustRegion(region)}
	in.Path, in.Matrix = r.SplitPath([]byte(path))
	return in
}

// decodedLayers returns s and up to four layers of its percent-decoding.
func decodedLayers(s string) []string {
	out := []string{s}
	for range 4 {
		d, err := url.PathUnescape(strings.ReplaceAll(s, "%%", "%25%"))
		if err != nil {
			var b []byte
			b, _ = appendUnescape(nil, []byte(s))
			d = string(b)
		}
		if d == s {
			break
		}
		out = append(out, d)
		s = d
	}
	return out
}

// TestLeakCorpus is the leak corpus: hits that once carried an identifier
// or an address past the gateway although consent did not allow it. For
// each, nothing that leaves (query, matrix, body, cookies), at any depth
// of percent-encoding, may hold a forbidden string, and what must stay
// stays. A row that must be blocked says so.
func TestLeakCorpus(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name      string
		url       string
		body      string
		region    string
		redaction bool
		block     Reason // non-zero: the hit must be blocked with this reason
		forbidden []string
		keep      []string
	}{
		// Item 7: device advertising ids.
		{name: "floodlight dc_rdid, ad_storage denied", region: "DE",
			url:       "/activity;src=123;type=a;cat=b;ord=1;gcs=G100;dc_rdid=38400000-8cf0-11bd-b23e-10b96e40000d;dc_lat=0?",
			forbidden: []string{"38400000-8cf0"}, keep: []string{"dc_lat=0"}},
		{name: "ads rdid with idtype, ad_storage denied", region: "DE",
			url:       "/pagead/conversion/123/?gcs=G100&rdid=38400000-8cf0-11bd-b23e-10b96e40000d&idtype=advertisingid&label=x",
			forbidden: []string{"38400000-8cf0"}, keep: []string{"label=x"}},
		{name: "ads dc_rdid, ad_storage denied", region: "DE",
			url:       "/pagead/conversion/123/?gcs=G100&dc_rdid=AEBE52E7-03EE-455A-B3C4-E57283966239",
			forbidden: []string{"AEBE52E7"}},

		// Item 9: an address followed by '-' or digits.
		{name: "address then -42 in dl", region: "US",
			url:       "/g/collect?v=2&tid=G-1&_p=1&gcs=G111&gcd=13r3r3r2r5l1&dl=" + url.QueryEscape("https://shop.example/invite/john.doe@gmail.com-42/"),
			forbidden: []string{"john.doe", "gmail.com"}, keep: []string{"-42"}},
		{name: "escaped address then -42 in dl", region: "US",
			url:       "/g/collect?v=2&tid=G-1&_p=1&gcs=G111&gcd=13r3r3r2r5l1&dl=" + url.QueryEscape("https://shop.example/invite/john.doe%40gmail.com-42/"),
			forbidden: []string{"john.doe", "gmail.com"}},
		{name: "address then a digit in ep", region: "US",
			url:       "/g/collect?v=2&tid=G-1&_p=1&gcs=G111&gcd=13r3r3r2r5l1&ep.contact=john.doe@gmail.com1",
			forbidden: []string{"john.doe", "gmail"}},
		{name: "address then -42 in an Ads path", region: "US", block: ReasonEmailUnredactable,
			url: "/pagead/conversion/123/john.doe@gmail.com-42/?gcs=G111"},

		// Item 10: an unassigned region code is no country: the
		// unknown-region rule (denied) applies, not the granting default.
		{name: "unassigned region QQ", region: "QQ",
			url:       "/g/collect?v=2&tid=G-1&_p=1&cid=1174285007.1749196701&uid=u42&en=page_view",
			forbidden: []string{"1174285007", "u42"}},
		{name: "unassigned region AA", region: "AA",
			url:       "/g/collect?v=2&tid=G-1&_p=1&cid=1174285007.1749196701&uid=u42&en=page_view",
			forbidden: []string{"1174285007", "u42"}},
		{name: "unmapped alias UK", region: "UK",
			url:       "/g/collect?v=2&tid=G-1&_p=1&cid=1174285007.1749196701&uid=u42&en=page_view",
			forbidden: []string{"1174285007", "u42"}},

		// Item 8: the _gl linker, wherever it is. The client id is
		// forbidden; the click id stays as a plain gclid where allowed.
		{name: "top-level _gl on a cookieless GA4 hit", region: "DE",
			url:       "/g/collect?v=2&tid=G-1&_p=1&gcs=G100&_gl=" + fullGL + "&en=page_view",
			forbidden: []string{gaB64, "_gl", "1q2w3e"}, keep: []string{"gclid=Cj0KCQjwLinkerClick", "en=page_view"}},
		{name: "_gl in a protocol-relative URL", region: "DE",
			url:       "/g/collect?v=2&tid=G-1&_p=1&gcs=G100&ep.page_location=//shop.example/p?_gl=" + fullGL,
			forbidden: []string{gaB64, "_gl"}, keep: []string{"ep.page_location=//shop.example/p?gclid=Cj0KCQjwLinkerClick"}},
		{name: "_gl in mixed encoding", region: "DE",
			url:       "/g/collect?v=2&tid=G-1&_p=1&gcs=G100&ep.page_location=https%3A//shop.example/p?x=1&_gl=" + fullGL,
			forbidden: []string{gaB64, "_gl"}, keep: []string{"x=1"}},
		{name: "_gl in a URL nested in the page URL", region: "DE",
			url: "/g/collect?v=2&tid=G-1&_p=1&gcs=G100&dl=" + url.QueryEscape("https://shop.example/login?next="+
				url.QueryEscape("https://shop.example/p?_gl="+fullGL+"&q=shoes")),
			forbidden: []string{gaB64, "_gl"}, keep: []string{"q%253Dshoes", "login"}},
		{name: "_gl with escaped separators", region: "DE",
			url:       "/g/collect?v=2&tid=G-1&_p=1&gcs=G100&ep.x=" + url.QueryEscape("a=1&_gl="+strings.ReplaceAll(fullGL, "*", "%2A")),
			forbidden: []string{gaB64, "_gl"}},
		{name: "_gl in a Floodlight custom variable", region: "DE",
			url:       "/activity;src=123;type=a;cat=b;ord=1;gcs=G100;u1=" + url.QueryEscape("https://shop.example/?_gl="+fullGL) + "?",
			forbidden: []string{gaB64, "_gl"}, keep: []string{"gclid"}},
		{name: "_gl, analytics granted, ad_storage denied", region: "DE",
			url:       "/g/collect?v=2&tid=G-1&_p=1&gcs=G101&dl=" + url.QueryEscape("https://shop.example/?_gl="+fullGL),
			forbidden: []string{gaB64, "_gl"}, keep: []string{"gclid%3DCj0KCQjwLinkerClick"}},
		{name: "_gl on Ads with ads_data_redaction", region: "DE", redaction: true,
			url:       "/pagead/conversion/123/?gcs=G100&url=" + url.QueryEscape("https://shop.example/?_gl="+fullGL+"&utm_source=x"),
			forbidden: []string{gaB64, "_gl", "Cj0KCQjwLinkerClick"}, keep: []string{"utm_source"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := testPolicy()
			p.AdsDataRedaction = tt.redaction
			in := leakInput(t, tt.url, tt.body, tt.region)
			d, w := decide(in, p)
			if tt.block != 0 {
				if d.Action != ActionBlock || !d.Reasons.Has(tt.block) {
					t.Fatalf("action %v reasons %v, want block %v", d.Action, d.Reasons.Strings(), tt.block)
				}
				return
			}
			if d.Action == ActionBlock {
				t.Fatalf("blocked (%v), want forwarded", d.Reasons.Strings())
			}
			out := string(w.Query) + "\n" + string(w.Matrix) + "\n" + string(w.Body) + "\n" + string(w.Cookie)
			for _, layer := range decodedLayers(out) {
				for _, f := range tt.forbidden {
					if strings.Contains(layer, f) {
						t.Errorf("%q left:\n%s", f, out)
					}
				}
			}
			for _, k := range tt.keep {
				if !strings.Contains(out, k) {
					t.Errorf("%q lost:\n%s", k, out)
				}
			}
		})
	}
}

// TestLinkerKeptWhenEveryPartAllowed: a linker whose every part consent
// allows travels unchanged (its checksum covers all of it).
func TestLinkerKeptWhenEveryPartAllowed(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name, gcs, gl string
		keep          bool
	}{
		{"all granted", "G111", fullGL, true},
		{"ads parts only, ad_storage granted", "G110", adsOnlGL, true},
		{"ads parts only, ad_storage denied", "G101", adsOnlGL, false},
		{"client id, analytics denied", "G110", fullGL, false},
		{"unknown part, one storage denied", "G110", "1*abc*_gcl_aw*" + awB64 + "*_xx*" + linkerB64("1"), false},
		{"not a linker, one storage denied", "G110", "garbage", false},
		{"not a linker, both granted", "G111", "garbage", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			page := url.QueryEscape("https://shop.example/?_gl=" + tt.gl)
			in := leakInput(t, "/g/collect?v=2&tid=G-1&_p=1&gcs="+tt.gcs+"&_gl="+tt.gl+"&dl="+page, "", "DE")
			d, w := decide(in, testPolicy())
			kept := strings.Count(string(w.Query), "_gl="+tt.gl) == 1 && strings.Contains(string(w.Query), "dl="+page)
			if kept != tt.keep || d.Removed.Has(fieldLinker) == tt.keep {
				t.Errorf("kept %v (removed %v), want %v: %s", kept, d.Removed.Names(), tt.keep, w.Query)
			}
		})
	}
}

// FuzzLinkers: the linker scan never panics, and with both storage types
// denied nothing that leaves still holds "_gl=" at any depth of encoding
// followed by a value that is not empty.
func FuzzLinkers(f *testing.F) {
	f.Add("https://shop.example/?_gl=" + fullGL)
	f.Add("https%3A%2F%2Fa%2F%3F_gl%3D1*a*_ga*MTE.")
	f.Add("_gl%253D1*x&_gl=1")
	f.Add("%%35%46gl=1*a")
	f.Fuzz(func(t *testing.T, v string) {
		in := ga4("v=2&tid=G-1&_p=1&gcs=G100&ep.x=" + url.QueryEscape(v))
		in.Region = MustRegion("DE")
		_, w := decide(in, testPolicy())
		var rw rewriter
		rw.w = &Work{}
		for _, layer := range decodedLayers(string(w.Query)) {
			for i := 0; i+4 <= len(layer); i++ {
				if vs, _, ok := linkerAt([]byte(layer), i); ok && vs < len(layer) {
					if c, _ := layeredChar([]byte(layer), vs, linkerDepth); isLinkerChar(c) {
						t.Fatalf("a linker left in %q (from %q)", w.Query, v)
					}
				}
			}
		}
	})
}

// TestLinkerRemovalShapes: a linker without click ids leaves no stray
// delimiter behind, at any depth of encoding.
func TestLinkerRemovalShapes(t *testing.T) {
	t.Parallel()
	gl := "1*abc*_ga*" + gaB64
	tests := []struct{ give, want string }{
		{"https://a/?_gl=" + gl, "https://a/"},
		{"https://a/?_gl=" + gl + "#top", "https://a/#top"},
		{"https://a/?_gl=" + gl + "&x=1", "https://a/?x=1"},
		{"https://a/?x=1&_gl=" + gl, "https://a/?x=1"},
		{"https://a/?x=1&_gl=" + gl + "&y=2", "https://a/?x=1&y=2"},
		{"https://a/?x=1%26_gl%3D" + gl + "%26y=2", "https://a/?x=1%26y=2"},
		{"https://a/?n=https%253A%252F%252Fb%252F%253F_gl%253D" + gl, "https://a/?n=https%253A%252F%252Fb%252F"},
		{"https://a/?x=1&_gl=" + gl + "&_gl=" + gl, "https://a/?x=1"},
		{"no linker_glx=1", "no linker_glx=1"},
	}
	for _, tt := range tests {
		st := State{Value: [NumTypes]Value{Denied, Denied, Denied, Denied}}
		rw := rewriter{d: &Decision{Consent: st}, p: testPolicy(), w: &Work{}, in: &Input{Family: FamilyGA4}}
		if got := string(rw.linkers([]byte(tt.give), InURL)); got != tt.want {
			t.Errorf("linkers(%q) = %q, want %q", tt.give, got, tt.want)
		}
	}
}

// TestLinkerPartsDocumented: docs/consent.md lists every row of LinkerParts.
func TestLinkerPartsDocumented(t *testing.T) {
	t.Parallel()
	doc, err := os.ReadFile("../docs/consent.md")
	if err != nil {
		t.Fatal(err)
	}
	for _, lp := range LinkerParts {
		name := strings.TrimSuffix(lp.Name, "*")
		if !strings.Contains(string(doc), "`"+name) {
			t.Errorf("docs/consent.md does not name the linker part %s", lp.Name)
		}
		if lp.Click != "" && !strings.Contains(string(doc), "| `"+lp.Click+"` |") {
			t.Errorf("docs/consent.md does not map %s to %s", lp.Name, lp.Click)
		}
	}
}
