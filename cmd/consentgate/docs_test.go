package main

import (
	"bytes"
	"flag"
	"fmt"
	"os"
	"regexp"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/consentgate/consentgate/config"
	"github.com/consentgate/consentgate/proxy"
)

var update = flag.Bool("update", false, "rewrite the generated parts of README.md and docs/rules.md")

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

func generatedReadme(t *testing.T, readme string, d *rulesDoc) string {
	t.Helper()
	for name, body := range map[string]string{"routes": routesSection(d), "ga4": ga4Section(d), "metrics": metricsSection()} {
		re := regexp.MustCompile(`(?s)(<!-- BEGIN GENERATED ` + name + `:[^\n]*-->\n).*?(<!-- END GENERATED ` + name + ` -->)`)
		loc := re.FindStringSubmatchIndex(readme)
		if loc == nil {
			t.Fatalf("README.md has no generated section %q", name)
		}
		readme = readme[:loc[3]] + body + readme[loc[4]:]
	}
	return readme
}

// metricsHelp says what each metric family counts.
var metricsHelp = map[string]string{
	"consentgate_hits_total":                 "hits decided, by route, family and action",
	"consentgate_decision_reasons_total":     "decisions by family and reason code",
	"consentgate_consent_downgrades_total":   "consent types a hit claimed granted and the gateway enforced denied, by type and deciding source",
	"consentgate_malformed_signals_total":    "malformed consent inputs, by input (gcs, gcd, npa, tcf, us_privacy, gpp, cmp_cookie, body)",
	"consentgate_region_unknown_total":       "hits without a trusted region",
	"consentgate_removed_fields_total":       "fields removed, by name (the closed field catalogue)",
	"consentgate_upstream_duration_seconds":  "upstream latency histogram, by family",
	"consentgate_upstream_errors_total":      "upstream failures by kind: timeout, refused, no_free_conns, other, 5xx",
	"consentgate_rejected_total":             "requests answered locally with an error status (4xx, 503 over a limit), by reason",
	"consentgate_conflicting_headers_total":  "headers sent twice with different values (geo, content_type, content_encoding, sec_gpc): the fail-closed answer applied",
	"consentgate_accept_errors_total":        "failed accepts by kind (emfile, enfile, enobufs, enomem, other); the listener backs off and retries",
	"consentgate_reading_requests":           "requests being read (header or body still arriving)",
	"consentgate_buffered_request_bytes":     "request bytes held by requests in progress",
	"consentgate_script_cache_total":         "script cache lookups: hit, miss, coalesced, stale, error",
	"consentgate_config_reloads_total":       "config reloads by result",
	"consentgate_decision_log_dropped_total": "decision-log lines dropped because the writer fell behind",
	"consentgate_in_flight_requests":         "requests being handled",
	"consentgate_enforcing":                  "1 when enforcing, 0 in dry run",
	"consentgate_build_info":                 "build version",
	"consentgate_delivery_accepted_total":    "queued hits accepted (answered 204), by family",
	"consentgate_delivery_delivered_total":   "queued hits delivered upstream, by family",
	"consentgate_delivery_retried_total":     "delivery attempts that failed and will be retried, by cause: refused, timeout, 5xx, 429, other",
	"consentgate_delivery_dropped_total":     "queued hits given up, by cause: max_age, rejected_4xx, spool_corrupt, shutdown (no spool), malformed",
}

func metricsSection() string {
	var b bytes.Buffer
	fmt.Fprintf(&b, "| metric | meaning |\n|---|---|\n")
	for _, n := range proxy.NewMetrics("docs").Names() {
		fmt.Fprintf(&b, "| `%s` | %s |\n", n, metricsHelp[n])
	}
	fmt.Fprintf(&b, "\nPlus the Go runtime and process metrics (`go_*`, `process_*`).\n")
	return b.String()
}

// TestDocs keeps README.md's generated tables and docs/rules.md equal to
// what `consentgate rules` prints for the default config.
func TestDocs(t *testing.T) {
	d := defaultRulesDoc(t)
	for _, n := range proxy.NewMetrics("docs").Names() {
		if metricsHelp[n] == "" {
			t.Errorf("metric %s has no line in metricsHelp", n)
		}
	}
	var rules bytes.Buffer
	writeRulesMarkdown(&rules, d)

	readme, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{
		"../../README.md":     generatedReadme(t, string(readme), d),
		"../../docs/rules.md": "<!-- Generated by `consentgate rules` for the default config: go test ./cmd/consentgate -run TestDocs -update -->\n\n" + rules.String(),
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
