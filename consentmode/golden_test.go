package consentmode

import (
	"bytes"
	"flag"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

var update = flag.Bool("update", false, "rewrite the golden files in ../testdata/decisions")

func loadPublicHits(t testing.TB) []CapturedHit {
	t.Helper()
	data, err := os.ReadFile("../testdata/public-hits.tsv")
	if err != nil {
		t.Fatal(err)
	}
	hits, err := ParseCapture(data)
	if err != nil {
		t.Fatalf("public-hits.tsv: %v", err)
	}
	return hits
}

// inputFor turns a public hit into a Decide input: the URL is read as the
// gateway would see it on its own host (RepairURL).
func inputFor(t testing.TB, h CapturedHit) (*Input, bool) {
	raw := RepairURL(h.URL, "sgtm.example")
	u, err := url.Parse(raw)
	if err != nil {
		t.Fatalf("line %d: %v", h.Line, err)
	}
	path := u.EscapedPath()
	query := u.RawQuery
	if i := strings.IndexByte(path, ';'); i >= 0 && u.RawQuery == "" && strings.HasSuffix(raw, "?") {
		query = ""
	}
	ri, ok := MatchRoute([]byte(path))
	if !ok {
		return nil, false
	}
	r := &Routes[ri]
	in := &Input{Route: ri, Family: r.Family, Kind: r.Kind, Query: []byte(query), Body: []byte(h.Body), Day: 20000,
		PathTag: r.PathTag([]byte(path)),
		Cookie:  []byte("_ga=GA1.1.1174285007.1749196701; _ga_ABC=GS1.1.1; _gcl_au=1.1.1235240376.1778240583; FPID=x; euconsent-v2=y; session=s3cr3t")}
	_, in.Matrix = r.SplitPath([]byte(path))
	return in, true
}

func goldenPolicy() *Policy {
	p := NewPolicy()
	p.SetSecret([]byte("golden-secret-0123456789"))
	p.CMPCookies = nil
	p.MPEnabled = true
	return p
}

// formatDecision prints a decision and the rewritten hit for golden files.
func formatDecision(b *bytes.Buffer, d Decision, w *Work, p *Policy) {
	fmt.Fprintf(b, "route %s family %s region %s action %s\n", Routes[d.Route].Name, d.Family, d.Region, d.Action)
	b.WriteString("consent")
	for t := range NumTypes {
		fmt.Fprintf(b, " %s=%s(%s)", Type(t), d.Consent.Value[t], d.SourceName(Type(t), p))
	}
	b.WriteString("\nclaimed")
	for t := range NumTypes {
		fmt.Fprintf(b, " %s=%s", Type(t), d.Claimed[t])
	}
	fmt.Fprintf(b, "\nreasons %s\nremoved %s\n", strings.Join(d.Reasons.Strings(), " "), strings.Join(d.Removed.Names(), " "))
	if d.Action == ActionBlock {
		b.WriteString("forward nothing\n")
		return
	}
	fmt.Fprintf(b, "query %s\n", w.Query)
	if d.Family == FamilyFloodlight {
		fmt.Fprintf(b, "matrix %s\n", w.Matrix)
	}
	if len(w.Body) > 0 {
		fmt.Fprintf(b, "body %q\n", w.Body)
	}
	fmt.Fprintf(b, "cookie %s\n", w.Cookie)
}

func checkGolden(t *testing.T, name string, got []byte) {
	t.Helper()
	path := filepath.Join("..", "testdata", "decisions", name)
	if *update {
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test ./consentmode -update to create it)", err)
	}
	if diff := cmp.Diff(string(want), string(got)); diff != "" {
		t.Errorf("%s mismatch (-want +got):\n%s\n(if the change is intended, run go test ./consentmode -update and review the diff)", name, diff)
	}
}

// TestGoldenPublicHits pins the decision for every line of
// public-hits.tsv, in a denied region (DE), a granted one (US), and in DE
// with ads_data_redaction on.
func TestGoldenPublicHits(t *testing.T) {
	t.Parallel()
	var b bytes.Buffer
	b.WriteString("# Golden decisions for testdata/public-hits.tsv (go test ./consentmode -update rewrites this file).\n")
	b.WriteString("# Every hit carries the cookie header of inputFor; day 20000; secret golden-secret-0123456789.\n")
	b.WriteString("# Variants: DE and US with the default policy plus mp.enabled; DE+redaction with consent.ads_data_redaction on.\n\n")
	variants := []struct {
		name   string
		region string
		policy func() *Policy
	}{
		{"DE", "DE", goldenPolicy},
		{"US", "US", goldenPolicy},
		{"DE+redaction", "DE", func() *Policy { p := goldenPolicy(); p.AdsDataRedaction = true; return p }},
	}
	for _, h := range loadPublicHits(t) {
		fmt.Fprintf(&b, "## line %d: %s\n", h.Line, h.Source)
		in, ok := inputFor(t, h)
		if !ok {
			b.WriteString("no route: 404, nothing forwarded\n\n")
			continue
		}
		for _, v := range variants {
			p := v.policy()
			in.Region = MustRegion(v.region)
			var w Work
			d := Decide(in, p, &w)
			fmt.Fprintf(&b, "### %s\n", v.name)
			formatDecision(&b, d, &w, p)
		}
		b.WriteString("\n")
	}
	checkGolden(t, "public-hits.golden", b.Bytes())
}

// TestGoldenWriteBack pins the write-back table: for claimed consent
// parameters and enforced states, the gcs, gcd, npa and rdp that leave.
func TestGoldenWriteBack(t *testing.T) {
	t.Parallel()
	var b bytes.Buffer
	b.WriteString("# Write-back golden: claimed consent parameters -> what leaves (go test ./consentmode -update).\n")
	b.WriteString("# columns: region, GPC, claimed query -> action, then the consent parameters of the rewritten query\n\n")
	claims := []string{
		"gcs=G111&gcd=13r3r3r2r5l1",
		"gcs=G111&gcd=13v3v3v2v5l1&npa=0",
		"gcs=G111",
		"gcd=13t3t3t3t5l1",
		"gcd=13n3n3n3n5l1",
		"gcd=13l3l3l3l1l1",
		"gcs=G100&gcd=13q3q3q2q5l1&npa=1",
		"gcs=G101&gcd=13p3t3p3p5l1",
		"gcs=G1--&gcd=13l3l3R3l5l1",
		"",
		"gcs=G1x1&gcd=13r3r3r2r5l1",
		"gcs=G111&gcd=13r",
		"gcs=G111&gcd=13r3!3r2r5l1",
		"gcs=G111&gcd=13r3r3r2r5l1&npa=2",
		"gcs=G111&gcd=13r3r3r2r5l1&rdp=0",
		// dma_cps says "-" once ad_user_data or ad_personalization is
		// denied; gcu goes when the gateway downgraded a claimed grant.
		"gcs=G111&gcd=13r3r3r2r5l1&dma=1&dma_cps=syphamo&gcu=1",
		"gcs=G111&dma=1&dma_cps=syphamo&gcu=1",
		"gcs=G100&gcd=13q3q3q2q5l1&dma_cps=syphamo",
		// No gcd (older tags, TCF-only setups): one stating the enforced
		// state is added whenever the gateway enforces a denial.
		"gcs=G110",
		"npa=1",
		"gcs=G111&npa=0&gdpr=1&gdpr_consent=tcunavailable",
	}
	p := goldenPolicy()
	for _, region := range []string{"US", "DE", ""} {
		for _, gpc := range []bool{false, true} {
			for _, c := range claims {
				q := "v=2&tid=G-TEST&_p=1&cid=1.2"
				if c != "" {
					q += "&" + c
				}
				in := &Input{Route: 0, Family: FamilyGA4, Query: []byte(q), Region: MustRegion(region), GPC: gpc, Day: 20000}
				var w Work
				d := Decide(in, p, &w)
				var kept []string
				for _, kv := range strings.Split(string(w.Query), "&") {
					k, _, _ := strings.Cut(kv, "=")
					if k == "gcs" || k == "gcd" || k == "npa" || k == "rdp" || k == "dma_cps" || k == "gcu" || k == "dma" {
						kept = append(kept, kv)
					}
				}
				fmt.Fprintf(&b, "%-7s gpc=%-5v %-38s -> %-10s %s\n", in.Region, gpc, c, d.Action, strings.Join(kept, "&"))
			}
		}
	}
	checkGolden(t, "writeback.golden", b.Bytes())
}
