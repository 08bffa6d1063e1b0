package proxy

import (
	"bytes"
	"flag"
	"fmt"
	"net/url"
	"os"
	"regexp"
	"strings"
	"testing"
)

var updateParity = flag.Bool("update-parity", false, "rewrite ../testdata/decisions/parity.golden")

// TC strings: every purpose consented with Google (vendor 755) consenting,
// and the same purposes without Google (built by consentmode's tcString).
const (
	parityTCAll      = "COvFyGBOvFyGBAbABAENAPEAAP_gAAIAAAYgF5gAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAgXmAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAACAA"
	parityTCNoGoogle = "COvFyGBOvFyGBAbABAENAPEAAPIAAAIAAAYgF5gAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAXmAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"
	// parityGL is a _gl linker with the client id and a stored gclid.
	parityGL = "1*1q2w3e*_ga*MTE3NDI4NTAwNy4xNzQ5MTk2NzAx*_gcl_aw*R0NMLjE3NDkxOTY3MDEuQ2owS0NRandMaW5rZXJDbGljaw.."
)

// parityCase is one row of the parity table of docs/consent.md.
type parityCase struct {
	id        string // the row's name in docs/consent.md
	method    string
	uri       string
	body      string
	region    string // trusted geo header; "" for none
	gpc       bool
	redaction bool // consent.ads_data_redaction
}

var parityCases = []parityCase{
	{id: "ga4-cookieless-with-p", region: "DE", uri: "/g/collect?v=2&tid=G-1&_p=1728003000123&gcs=G100&gcd=13p3p3p2p5l1&cid=555.666&sid=777&uid=u42&up.plan=gold&sct=3&en=page_view&dl=https%3A%2F%2Fshop.example%2F"},
	{id: "ga4-cookieless-without-p", region: "DE", uri: "/g/collect?v=2&tid=G-1&gcs=G100&cid=555.666&sid=777&en=page_view&dl=https%3A%2F%2Fshop.example%2F"},
	{id: "ads-storage-denied-click-in-url", region: "DE", uri: "/pagead/conversion/123/?gcs=G100&gcd=13q3p3p2p5l1&label=x&auid=1.2&url=https%3A%2F%2Fshop.example%2F%3Fgclid%3DCj0KCQ"},
	{id: "ga4-storage-denied-click-in-gl", region: "DE", uri: "/g/collect?v=2&tid=G-1&_p=1728003000123&gcs=G100&cid=555.666&en=page_view&dl=https%3A%2F%2Fshop.example%2F%3F_gl%3D" + url.QueryEscape(url.QueryEscape(parityGL))},
	{id: "ads-storage-denied-url-passthrough", region: "DE", uri: "/ccm/collect?tid=AW-123&en=page_view&gcs=G100&gclid=Cj0KCQ&wbraid=Wb1&dl=https%3A%2F%2Fshop.example%2F%3Fgclid%3DCj0KCQ"},
	{id: "redaction-ads", region: "DE", redaction: true, uri: "/pagead/conversion/123/?gcs=G100&label=x&gclid=Cj0KCQ&url=https%3A%2F%2Fshop.example%2F%3Fgclid%3DCj0KCQ"},
	{id: "redaction-floodlight", region: "DE", redaction: true, uri: "/activity;src=123;type=a;cat=b;ord=1;gcs=G100;gclid=Cj0KCQ;~oref=https%3A%2F%2Fshop.example%2F%3Fgclid%3DCj0KCQ?"},
	{id: "redaction-ga4", region: "DE", redaction: true, uri: "/g/collect?v=2&tid=G-1&_p=1728003000123&gcs=G100&cid=555.666&en=page_view&dl=https%3A%2F%2Fshop.example%2F%3Fgclid%3DCj0KCQ"},
	{id: "ad-user-data-denied-enhanced-conversions", region: "DE", uri: "/pagead/conversion/123/?gcs=G111&gcd=13r3r3p2r5l1&label=x&em=tv.1~em.vEeV7ovnKnqSqDpn~pn.Kx0pKq~fn.Zm9v~ln.YmFy~ct.Y2l0eQ&ecsid=861586319.1782760733&user_data_mode=a"},
	{id: "ad-personalization-denied", region: "DE", uri: "/pagead/conversion/123/?gcs=G111&gcd=13r3r3r2p5l1&label=x&en=conversion"},
	{id: "ad-personalization-denied-remarketing-ping", region: "DE", uri: "/pagead/viewthroughconversion/123/?en=gtag.config&gcs=G111&gcd=13r3r3r2p5l1&url=https%3A%2F%2Fshop.example%2F"},
	{id: "ad-personalization-denied-audience", region: "DE", uri: "/rmkt/collect/123/?en=add_to_cart&gcs=G111&gcd=13r3r3r2p5l1"},
	{id: "all-denied-remarketing-ping", region: "DE", uri: "/pagead/viewthroughconversion/123/?en=gtag.config&gcs=G100&gcd=13p3p3p2p5l1&auid=1.2"},
	{id: "gcd-letter-l", region: "DE", uri: "/g/collect?v=2&tid=G-1&_p=1728003000123&gcd=13l3l3l3l1&cid=555.666&uid=u42&en=page_view"},
	{id: "gcd-letter-p", region: "US", uri: "/g/collect?v=2&tid=G-1&_p=1728003000123&gcd=13p3p3p2p5l1&cid=555.666&uid=u42&en=page_view"},
	{id: "gcd-letter-q", region: "US", uri: "/g/collect?v=2&tid=G-1&_p=1728003000123&gcd=13q3q3q2q5l1&cid=555.666&uid=u42&en=page_view"},
	{id: "gcd-letter-r", region: "DE", uri: "/g/collect?v=2&tid=G-1&_p=1728003000123&gcd=13r3r3r2r5l1&cid=555.666&uid=u42&en=page_view"},
	{id: "gcd-letter-t", region: "DE", uri: "/g/collect?v=2&tid=G-1&_p=1728003000123&gcd=13t3t3t2t5l1&cid=555.666&uid=u42&en=page_view"},
	{id: "gcd-letter-u", region: "US", uri: "/g/collect?v=2&tid=G-1&_p=1728003000123&gcd=13u3u3u2u5l1&cid=555.666&uid=u42&en=page_view"},
	{id: "gcd-letter-v", region: "DE", uri: "/g/collect?v=2&tid=G-1&_p=1728003000123&gcd=13v3v3v2v5l1&cid=555.666&uid=u42&en=page_view"},
	{id: "gcd-letter-m", region: "US", uri: "/g/collect?v=2&tid=G-1&_p=1728003000123&gcd=13m3m3m2m5l1&cid=555.666&uid=u42&en=page_view"},
	{id: "gcd-letter-n", region: "DE", uri: "/g/collect?v=2&tid=G-1&_p=1728003000123&gcd=13n3n3n2n5l1&cid=555.666&uid=u42&en=page_view"},
	{id: "no-signals-denying-region", region: "DE", uri: "/g/collect?v=2&tid=G-1&_p=1728003000123&cid=555.666&uid=u42&en=page_view"},
	{id: "no-signals-granting-region", region: "US", uri: "/g/collect?v=2&tid=G-1&_p=1728003000123&cid=555.666&uid=u42&en=page_view"},
	{id: "tcf-google-consented", region: "DE", uri: "/pagead/conversion/123/?label=x&gdpr=1&gdpr_consent=" + parityTCAll},
	{id: "tcf-google-not-consented", region: "DE", uri: "/pagead/conversion/123/?label=x&gdpr=1&gdpr_consent=" + parityTCNoGoogle},
	{id: "tcf-addtl-consent", region: "DE", uri: "/pagead/conversion/123/?label=x&gdpr=1&gdpr_consent=" + parityTCAll + "&addtl_consent=1~89.2008"},
	{id: "tcf-unavailable", region: "DE", uri: "/pagead/conversion/123/?label=x&gcs=G111&gcd=13r3r3r2r5l1&gdpr=1&gdpr_consent=tcunavailable"},
	{id: "gpc-us", region: "US", gpc: true, uri: "/g/collect?v=2&tid=G-1&_p=1728003000123&gcs=G111&gcd=13r3r3r2r5l1&cid=555.666&en=page_view"},
	{id: "gpc-eea", region: "DE", gpc: true, uri: "/g/collect?v=2&tid=G-1&_p=1728003000123&gcs=G111&gcd=13r3r3r2r5l1&cid=555.666&en=page_view"},
	{id: "mp-with-consent", region: "DE", method: "POST", uri: "/mp/collect?measurement_id=G-1&api_secret=s",
		body: `{"client_id":"1.2","user_id":"u42","consent":{"ad_user_data":"DENIED","ad_personalization":"DENIED"},"user_data":{"sha256_email_address":["x"]},"events":[{"name":"purchase"}]}`},
	{id: "mp-without-consent", region: "DE", method: "POST", uri: "/mp/collect?measurement_id=G-1&api_secret=s",
		body: `{"client_id":"1.2","user_id":"u42","user_data":{"sha256_email_address":["x"]},"events":[{"name":"purchase"}]}`},
}

// ephemeralIDs matches the ids of a hit without _p: drawn per hit, so the
// golden file and the comparison of explain with the wire mask them.
var ephemeralIDs = regexp.MustCompile(`(cid=)[0-9]+\.[0-9]+|(sid=)[0-9]+`)

// TestParity pins every row of the parity table of docs/consent.md under
// both profiles: explain's verdict and upstream request, and that the
// end-to-end gateway sends the fake upstream exactly that.
func TestParity(t *testing.T) {
	gateways := map[string]*gateway{}
	gw := func(yaml string) *gateway {
		if g, ok := gateways[yaml]; ok {
			return g
		}
		g := newGateway(t, yaml)
		gateways[yaml] = g
		return g
	}
	var b bytes.Buffer
	b.WriteString("# Parity table of docs/consent.md: explain and the end-to-end gateway agree on each row.\n")
	b.WriteString("# go test ./proxy -run TestParity -update-parity rewrites this file; ids of a hit without _p are masked.\n")
	for _, c := range parityCases {
		for _, profile := range []string{"strict", "google"} {
			yaml := fmt.Sprintf("consent: {profile: %s, ads_data_redaction: %v}\nmp: {enabled: true}\n", profile, c.redaction)
			g := gw(yaml)
			method := c.method
			if method == "" {
				method = "GET"
			}
			hdrs := [][2]string{{"X-Forwarded-For", "198.51.100.23"}, {"Cookie", "_ga=GA1.1.1174285007.1749196701; _gcl_au=1.1.1235240376.1778240583"}}
			eh := map[string]string{"Cookie": hdrs[1][1]}
			if c.region != "" {
				hdrs = append(hdrs, [2]string{"X-Forwarded-CountryRegion", c.region})
			}
			if c.gpc {
				hdrs = append(hdrs, [2]string{"Sec-GPC", "1"})
				eh["Sec-GPC"] = "1"
			}
			if c.body != "" {
				hdrs = append(hdrs, [2]string{"Content-Type", "application/json"})
				eh["Content-Type"] = "application/json"
			}
			e, err := g.h.Explain(Hit{Method: method, URL: "http://metrics.shop.example" + c.uri, Headers: eh, Body: c.body, Region: c.region, ClientIP: "198.51.100.23"})
			if err != nil {
				t.Fatalf("%s: explain: %v", c.id, err)
			}
			before := len(g.up.requests())
			g.raw(fromProxy, rawHit(method, c.uri, hdrs, c.body))
			got := g.up.requests()[before:]
			mask := func(s string) string { return s }
			if !strings.Contains(c.uri, "_p=") {
				mask = func(s string) string {
					return ephemeralIDs.ReplaceAllStringFunc(s, func(m string) string {
						if m == "cid=555.666" || m == "sid=777" { // the tag's own ids, kept
							return m
						}
						k, _, _ := strings.Cut(m, "=")
						return k + "=<per-hit>"
					})
				}
			}
			fmt.Fprintf(&b, "\n## %s (profile %s)\n%s %s\n", c.id, profile, method, c.uri)
			if c.body != "" {
				fmt.Fprintf(&b, "body %s\n", c.body)
			}
			fmt.Fprintf(&b, "region %s; action %s; reasons %s\n", e.Region, e.Action, strings.Join(e.Reasons, " "))
			if e.Forward == nil {
				b.WriteString("forward nothing\n")
				if len(got) != 0 {
					t.Errorf("%s (%s): explain forwards nothing, the gateway sent %+v", c.id, profile, got)
				}
				continue
			}
			fmt.Fprintf(&b, "forward %s\n", mask(e.Forward.URL))
			if e.Forward.Body != "" {
				fmt.Fprintf(&b, "body    %s\n", e.Forward.Body)
			}
			if len(got) != 1 {
				t.Errorf("%s (%s): the gateway sent %d requests, want 1", c.id, profile, len(got))
				continue
			}
			if wire := "http://" + got[0].Host + got[0].URI; mask(wire) != mask(e.Forward.URL) || got[0].Body != e.Forward.Body {
				t.Errorf("%s (%s): explain and the wire differ:\nexplain %s %s\nwire    %s %s", c.id, profile, e.Forward.URL, e.Forward.Body, wire, got[0].Body)
			}
		}
	}
	path := "../testdata/decisions/parity.golden"
	if *updateParity {
		if err := os.WriteFile(path, b.Bytes(), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test ./proxy -run TestParity -update-parity)", err)
	}
	if !bytes.Equal(want, b.Bytes()) {
		t.Errorf("parity.golden differs; run go test ./proxy -run TestParity -update-parity and review the diff:\n%s", lineDiff(string(want), b.String()))
	}
}

// lineDiff lists the lines of got that are not in want, and the reverse.
func lineDiff(want, got string) string {
	in := func(s string) map[string]bool {
		m := map[string]bool{}
		for _, l := range strings.Split(s, "\n") {
			m[l] = true
		}
		return m
	}
	w, g := in(want), in(got)
	var out []string
	for _, l := range strings.Split(want, "\n") {
		if !g[l] {
			out = append(out, "- "+l)
		}
	}
	for _, l := range strings.Split(got, "\n") {
		if !w[l] {
			out = append(out, "+ "+l)
		}
	}
	return strings.Join(out, "\n")
}

// TestParityTableDocumented: every row of the parity table is in
// docs/consent.md, and the table names no row the test does not pin.
func TestParityTableDocumented(t *testing.T) {
	t.Parallel()
	doc, err := os.ReadFile("../docs/consent.md")
	if err != nil {
		t.Fatal(err)
	}
	ids := map[string]bool{}
	for _, c := range parityCases {
		ids[c.id] = true
		if !bytes.Contains(doc, []byte("| `"+c.id+"` |")) {
			t.Errorf("docs/consent.md has no parity row %s", c.id)
		}
	}
	for _, m := range regexp.MustCompile("(?m)^\\| `([a-z0-9-]+)` \\|").FindAllSubmatch(doc, -1) {
		if id := string(m[1]); strings.Contains(id, "-") && !ids[id] {
			t.Errorf("docs/consent.md names parity row %s that TestParity does not pin", id)
		}
	}
}
