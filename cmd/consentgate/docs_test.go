package main

import (
	"bytes"
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"go.uber.org/zap"

	"github.com/consentgate/consentgate/config"
	"github.com/consentgate/consentgate/consentmode"
	"github.com/consentgate/consentgate/proxy"
	"github.com/consentgate/consentgate/vendors"
)

var update = flag.Bool("update", false, "rewrite the generated parts of docs/")

// defaultRulesDoc is the rules document of the embedded default config,
// free of any CONSENTGATE_* variables of the environment.
func defaultRulesDoc(t *testing.T) *rulesDoc {
	t.Helper()
	for _, kv := range os.Environ() {
		if name, _, _ := strings.Cut(kv, "="); strings.HasPrefix(name, "CONSENTGATE_") {
			t.Setenv(name, "")
			os.Unsetenv(name)
		}
	}
	cfg, err := config.Load("")
	if err != nil {
		t.Fatal(err)
	}
	return buildRulesDoc(cfg)
}

func routesSection(d *rulesDoc) string {
	var b bytes.Buffer
	fmt.Fprintf(&b, "| route | path | family | methods | Google host (subdomain style) | styles | what |\n|---|---|---|---|---|---|---|\n")
	for _, r := range d.Routes {
		fmt.Fprintf(&b, "| %s | `%s` | %s | %s | %s | %s | %s |\n", r.Name, r.Path, r.Family, r.Methods, r.Host, r.Styles, cell(r.Doc))
	}
	return b.String()
}

func ga4Section(d *rulesDoc) string {
	var b bytes.Buffer
	fmt.Fprintf(&b, "| consent | action | removed | consent written back |\n|---|---|---|---|\n")
	for _, o := range d.Outcomes {
		if o.Route == "ga4_collect" {
			fmt.Fprintf(&b, "| %s | **%s** | %s | %s |\n", o.Situation, o.Action, cell(strings.Join(o.Removed, " ")), strings.Join(o.WrittenBack, " "))
		}
	}
	return b.String()
}

// generated replaces each "<!-- BEGIN GENERATED name: ... -->" …
// "<!-- END GENERATED name -->" section of doc with sections[name]. Every
// section of the map must be there.
func generated(t *testing.T, path, doc string, sections map[string]string) string {
	t.Helper()
	for name, body := range sections {
		re := regexp.MustCompile(`(?s)(<!-- BEGIN GENERATED ` + name + `:[^\n]*-->\n).*?(<!-- END GENERATED ` + name + ` -->)`)
		loc := re.FindStringSubmatchIndex(doc)
		if loc == nil {
			t.Fatalf("%s has no generated section %q", path, name)
		}
		doc = doc[:loc[3]] + body + doc[loc[4]:]
	}
	return doc
}

// configSection is the configuration reference: every key of the config
// struct, with its default and description from config/default.yaml.
func configSection() string {
	var b bytes.Buffer
	fmt.Fprintf(&b, "| key | default | takes | on reload | meaning |\n|---|---|---|---|---|\n")
	for _, k := range config.Keys() {
		def := "–"
		if k.Default != "" && k.Default != `""` {
			def = "`" + cell(k.Default) + "`"
		}
		reload := "applied"
		if k.Restart {
			reload = "**restart**"
		}
		fmt.Fprintf(&b, "| `%s` | %s | %s | %s | %s |\n", k.Name, def, cell(k.Type), reload, cell(k.Doc))
	}
	return b.String()
}

// marketersSection is what leaves for a GA4 and an Ads hit per consent situation.
func marketersSection(d *rulesDoc) string {
	var b bytes.Buffer
	fmt.Fprintf(&b, "| hit | consent | action | what Google does not get |\n|---|---|---|---|\n")
	for _, o := range d.Outcomes {
		if o.Route == "ga4_collect" || o.Route == "ads_conversion" {
			fmt.Fprintf(&b, "| %s | %s | **%s** | %s |\n", o.Route, o.Situation, o.Action, cell(strings.Join(o.Removed, " ")))
		}
	}
	return b.String()
}

// vendorsMappingSection is the vendor mapping, the GVL and the default
// event mapping, as `consentgate rules` prints them.
func vendorsMappingSection(d *rulesDoc) string {
	var b bytes.Buffer
	writeVendorsMarkdown(&b, d)
	s := b.String()
	return s[strings.Index(s, "Every row"):] // without the heading and the enabled list
}

// vendorFieldsSection is what each flag removes from and sets in each
// vendor's events: vendors.Specs, the table the builder and the envelope
// routes apply.
func vendorFieldsSection() string {
	var b bytes.Buffer
	fmt.Fprintf(&b, "| vendor | flag | removed | set |\n|---|---|---|---|\n")
	for _, r := range vendors.FlagTable() {
		code := func(ss []string) string {
			if len(ss) == 0 {
				return "-"
			}
			return "`" + strings.Join(ss, "`, `") + "`"
		}
		fmt.Fprintf(&b, "| %s | `%s` | %s | %s |\n", r.Vendor, r.Flag, code(r.Remove), code(r.Set))
	}
	return b.String()
}

// vendorStatesSection runs the mapping on each consent situation of
// docs/vendors.md: what each vendor's call is.
func vendorStatesSection() string {
	granted := consentmode.State{Value: [consentmode.NumTypes]consentmode.Value{consentmode.Granted, consentmode.Granted, consentmode.Granted, consentmode.Granted}}
	deny := func(t consentmode.Type) consentmode.State {
		s := granted
		s.Value[t] = consentmode.Denied
		return s
	}
	rows := []struct {
		name string
		f    consentmode.VendorFacts
	}{
		{"everything granted", consentmode.VendorFacts{Consent: granted}},
		{"ad_storage denied", consentmode.VendorFacts{Consent: deny(consentmode.AdStorage)}},
		{"ad_user_data denied", consentmode.VendorFacts{Consent: deny(consentmode.AdUserData)}},
		{"ad_personalization denied", consentmode.VendorFacts{Consent: deny(consentmode.AdPersonalization)}},
		{"GPC or a US opt-out, otherwise granted", consentmode.VendorFacts{Consent: granted, USOptOut: true}},
		{"TCF string without Microsoft's vendor consent, otherwise granted", consentmode.VendorFacts{Consent: granted, TCFDenied: [consentmode.NumVendors]bool{consentmode.VendorMicrosoft: true}}},
	}
	var b bytes.Buffer
	fmt.Fprintf(&b, "| consent | %s |\n|---|---|---|---|\n", strings.Join(consentmode.VendorNames(), " | "))
	for _, r := range rows {
		calls := consentmode.DecideVendors(&r.f)
		fmt.Fprintf(&b, "| %s |", r.name)
		for _, c := range calls {
			fmt.Fprintf(&b, " %s |", c)
		}
		b.WriteString("\n")
	}
	return b.String()
}

// explainExample is the text explain prints for the auditors' example hit,
// with a fixed secret and day so that the ephemeral ids stay the same.
func explainExample(t *testing.T) string {
	t.Helper()
	t.Setenv("CONSENTGATE_COOKIELESS_SECRET", "docs-secret-k3J9x0PqZ7vB2mWn5tR8")
	cfg, err := config.Load("")
	if err != nil {
		t.Fatal(err)
	}
	day := time.Date(2026, 6, 6, 12, 0, 0, 0, time.UTC)
	h, err := proxy.NewHandler(cfg, zap.NewNop(), proxy.NewMetrics("docs"), nil, proxy.Options{Now: func() time.Time { return day }})
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	headers := headerFlags{}
	for _, hd := range explainExampleHeaders {
		if err := headers.Set(hd); err != nil {
			t.Fatal(err)
		}
	}
	e, err := h.Explain(proxy.Hit{URL: explainExampleURL, Headers: headers, Region: "DE", ClientIP: "198.51.100.23"})
	if err != nil {
		t.Fatal(err)
	}
	var b bytes.Buffer
	fmt.Fprintf(&b, "```sh\nconsentgate explain --region DE --client-ip 198.51.100.23 \\\n")
	for _, hd := range explainExampleHeaders {
		fmt.Fprintf(&b, "  -H '%s' \\\n", hd)
	}
	fmt.Fprintf(&b, "  '%s'\n```\n\n```\n", explainExampleURL)
	printExplanation(&b, e)
	fmt.Fprintf(&b, "```\n")
	return b.String()
}

// checkExample is what check prints for testdata/check/broken.yaml with
// one bad environment variable.
func checkExample(t *testing.T) string {
	t.Helper()
	t.Setenv("CONSENTGATE_CONSENT_UNKNOWN_REGION", "nope")
	defer os.Unsetenv("CONSENTGATE_CONSENT_UNKNOWN_REGION")
	var out, errOut bytes.Buffer
	err := run([]string{"check", "--config", "../../testdata/check/broken.yaml"}, &out, &errOut)
	if !errors.Is(err, errFailed) {
		t.Fatalf("check broken.yaml: %v, want errFailed", err)
	}
	shown := strings.ReplaceAll(errOut.String(), "../../testdata/", "testdata/") // as run from the repository's root
	return "```\n$ CONSENTGATE_CONSENT_UNKNOWN_REGION=nope consentgate check --config testdata/check/broken.yaml\n" + shown + "```\n"
}

var explainExampleHeaders = []string{"Cookie: _ga=GA1.1.1174285007.1749196701; session=abc", "Referer: https://shop.example/cart?coupon=X"}

const explainExampleURL = "https://metrics.shop.example/g/collect?v=2&tid=G-ABC123&_p=1749196701069&gcs=G111&gcd=13p3p3p2p5l1&cid=1174285007.1749196701&sid=1749196701&sct=3&uid=u42&up.plan=gold&en=page_view&dl=https%3A%2F%2Fshop.example%2F%3F_gl%3D1*x*y"

func metricsSection() string {
	var b bytes.Buffer
	fmt.Fprintf(&b, "| metric | meaning |\n|---|---|\n")
	for _, n := range proxy.Families() {
		fmt.Fprintf(&b, "| `%s` | %s |\n", n, proxy.Help(n))
	}
	fmt.Fprintf(&b, "\nPlus the Go runtime and process metrics (`go_*`, `process_*`).\n")
	return b.String()
}

// TestDocs keeps the generated parts of the documentation equal to what
// the code says: the rule tables and docs/rules.md (`consentgate rules`
// for the default config), the configuration reference (the config
// struct and config/default.yaml), the metrics table (the metrics and
// their help) and the explain example (the explain command).
func TestDocs(t *testing.T) {
	d := defaultRulesDoc(t)
	var rules bytes.Buffer
	writeRulesMarkdown(&rules, d)
	sections := map[string]map[string]string{
		"../../docs/operators.md": {"config": configSection(), "metrics": metricsSection(), "check": checkExample(t)},
		"../../docs/auditors.md":  {"routes": routesSection(d), "ga4": ga4Section(d), "explain": explainExample(t)},
		"../../docs/marketers.md": {"outcomes": marketersSection(d)},
		"../../docs/vendors.md":   {"mapping": vendorsMappingSection(d), "states": vendorStatesSection(), "fields": vendorFieldsSection()},
	}
	want := map[string]string{
		"../../docs/rules.md": "<!-- Generated by `consentgate rules` for the default config: go test ./cmd/consentgate -run TestDocs -update -->\n\n" + rules.String(),
	}
	for path, secs := range sections {
		doc, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		want[path] = generated(t, path, string(doc), secs)
	}
	for path, content := range want {
		if *update {
			if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
				t.Fatal(err)
			}
			continue
		}
		got, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff(content, string(got)); diff != "" {
			t.Errorf("%s is out of date (-want +got):\n%s\nrun: go test ./cmd/consentgate -run TestDocs -update", path, diff)
		}
	}
}

// TestReadmeLinksEveryDoc: the README's documentation list links every
// file of docs/, and every relative link of the README and docs/ points
// to a file that exists.
func TestReadmeLinksEveryDoc(t *testing.T) {
	t.Parallel()
	readme, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	docs, err := filepath.Glob("../../docs/*.md")
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range docs {
		if !strings.Contains(string(readme), "](docs/"+filepath.Base(f)+")") {
			t.Errorf("README.md does not link docs/%s", filepath.Base(f))
		}
	}
	link := regexp.MustCompile(`\]\(([^)#:]+)(#[^)]*)?\)`)
	for _, f := range append(docs, "../../README.md") {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range link.FindAllStringSubmatch(string(b), -1) {
			target := filepath.Join(filepath.Dir(f), m[1])
			if _, err := os.Stat(target); err != nil && !optionalDoc(m[1]) {
				t.Errorf("%s links %s, which does not exist", f, m[1])
			}
		}
	}
}

// optionalDoc names the files other work adds (the limits, consent,
// deployment and delivery documents, the alert rules); the docs link them
// ahead.
func optionalDoc(link string) bool {
	for _, n := range []string{"limits.md", "consent.md", "deploy.md", "delivery.md", "prometheus/alerts.yaml"} {
		if strings.HasSuffix(link, n) {
			return true
		}
	}
	return false
}
