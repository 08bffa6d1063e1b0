package consentmode

import (
	"net/url"
	"strings"
	"testing"
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
