package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func runCLI(t *testing.T, args ...string) (string, string, error) {
	t.Helper()
	var out, errOut bytes.Buffer
	err := run(args, &out, &errOut)
	return out.String(), errOut.String(), err
}

func TestAuditPublicHits(t *testing.T) {
	t.Parallel()
	out, _, err := runCLI(t, "audit", "--region", "DE", "../../testdata/public-hits.tsv")
	if err != nil {
		t.Fatalf("audit: %v\n%s", err, out)
	}
	for _, want := range []string{"public-hits.tsv:2 ", "ga4_collect", "## Over-claiming", "## Hits per family and action", "All invariants hold"} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
}

func TestAuditHAR(t *testing.T) {
	t.Parallel()
	out, _, err := runCLI(t, "audit", "--json", "../../testdata/audit/sample.har")
	if err != nil {
		t.Fatalf("audit: %v", err)
	}
	var got struct {
		Hits []struct {
			Hit      string `json:"hit"`
			Decision struct {
				Route, Action string
				Removed       []string
			} `json:"decision"`
		} `json:"hits"`
		Summary struct {
			Hits    int `json:"hits"`
			Skipped int `json:"skipped_non_tag"`
		} `json:"summary"`
	}
	if err := json.Unmarshal([]byte(out), &got); err != nil {
		t.Fatal(err)
	}
	if got.Summary.Hits != 2 || got.Summary.Skipped != 2 || len(got.Hits) != 2 {
		t.Fatalf("summary %+v, hits %+v", got.Summary, got.Hits)
	}
	ga4 := got.Hits[0].Decision
	if ga4.Route != "ga4_collect" || ga4.Action != "cookieless" || !strings.Contains(strings.Join(ga4.Removed, " "), "cookie:_ga") {
		t.Errorf("HAR GA4 hit (cookies from the HAR used): %+v", ga4)
	}
	if ads := got.Hits[1].Decision; ads.Route != "ads_conversion" || !strings.Contains(strings.Join(ads.Removed, " "), "email") {
		t.Errorf("HAR Ads hit: %+v", ads)
	}
}

func TestAuditDecisionLog(t *testing.T) {
	t.Parallel()
	out, _, err := runCLI(t, "audit", "../../testdata/audit/decisions.log")
	if err != nil {
		t.Fatalf("audit: %v\n%s", err, out)
	}
	if !strings.Contains(out, "cmp_cookie:euconsent-v2 1") || !strings.Contains(out, "decisions.log:3") {
		t.Errorf("over-claim report from the log:\n%s", out)
	}
	dry := filepath.Join(t.TempDir(), "dry.log")
	line := `{"route":"ga4_collect","family":"ga4","region":"DE","action":"cookieless","enforced":false,"consent":{"analytics_storage":"denied"},"status":204}` + "\n"
	if err := os.WriteFile(dry, []byte(line), 0o600); err != nil {
		t.Fatal(err)
	}
	out, errOut, err := runCLI(t, "audit", dry)
	if !errors.Is(err, errFailed) || !strings.Contains(out, "unenforced_decision") || !strings.Contains(errOut, "1 invariant violation") {
		t.Errorf("dry-run log line: err %v\n%s\n%s", err, out, errOut)
	}
}

// TestAuditFailsOnBrokenPolicy: a config that lets denied data out (a dry
// run) breaks the invariants; audit names the hit and the invariant and
// exits 1.
func TestAuditFailsOnBrokenPolicy(t *testing.T) {
	t.Parallel()
	cfg := filepath.Join(t.TempDir(), "broken.yaml")
	if err := os.WriteFile(cfg, []byte("consent: {enforce: false}\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	out, errOut, err := runCLI(t, "audit", "--config", cfg, "--region", "DE", "../../testdata/public-hits.tsv")
	if !errors.Is(err, errFailed) {
		t.Fatalf("audit with a broken policy: err %v", err)
	}
	for _, want := range []string{"public-hits.tsv:2 ", "VIOLATION analytics_denied_no_original_ids", "FAIL"} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q", want)
		}
	}
	if !strings.Contains(errOut, "invariant violation") {
		t.Errorf("stderr %q", errOut)
	}
}

func TestExplainJSONContract(t *testing.T) {
	t.Parallel()
	out, _, err := runCLI(t, "explain", "--json", "--region", "DE",
		"https://metrics.shop.example/g/collect?v=2&tid=G-1&_p=1&gcs=G100&cid=1174285007.1749196701&uid=u42&up.plan=gold&en=page_view")
	if err != nil {
		t.Fatal(err)
	}
	var e map[string]any
	if err := json.Unmarshal([]byte(out), &e); err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"route", "family", "region", "consent", "sources", "action", "reasons", "removed", "forward", "delivery"} {
		if _, ok := e[k]; !ok {
			t.Errorf("explain --json lacks %q", k)
		}
	}
	fwd := e["forward"].(map[string]any)
	for _, k := range []string{"method", "url", "headers", "body"} {
		if _, ok := fwd[k]; !ok {
			t.Errorf("forward lacks %q", k)
		}
	}
	if e["delivery"] != "queue" {
		t.Errorf("GA4 delivery = %v, want queue (the default)", e["delivery"])
	}
	u := fwd["url"].(string)
	if e["action"] != "cookieless" || strings.Contains(u, "1174285007.1749196701") || strings.Contains(u, "uid=") || strings.Contains(u, "up.") {
		t.Errorf("explain: action %v url %s", e["action"], u)
	}
}

func TestCheckCommand(t *testing.T) {
	t.Parallel()
	if _, _, err := runCLI(t, "check", "--config", "../../testdata/config/subdomain.yaml"); err != nil {
		t.Errorf("check subdomain.yaml: %v", err)
	}
	bad := filepath.Join(t.TempDir(), "bad.yaml")
	if err := os.WriteFile(bad, []byte("consent: {mode: strict}\nbogus: 1\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	_, errOut, err := runCLI(t, "check", "--config", bad)
	if !errors.Is(err, errFailed) || !strings.Contains(errOut, "bogus") {
		t.Errorf("check bad.yaml: %v %s", err, errOut)
	}
}

// TestDeliveryModeShown: explain and audit say how a hit leaves, from the
// same delivery settings serve uses.
func TestDeliveryModeShown(t *testing.T) {
	t.Parallel()
	hit := "https://metrics.shop.example/g/collect?v=2&tid=G-1&gcs=G111&cid=1.2&en=page_view"
	out, _, err := runCLI(t, "explain", "--region", "US", hit)
	if err != nil || !strings.Contains(out, "delivery queue: the browser gets 204 at once") {
		t.Errorf("explain (queue): %v\n%s", err, out)
	}
	cfg := filepath.Join(t.TempDir(), "sync.yaml")
	if err := os.WriteFile(cfg, []byte("delivery: {ga4: sync}\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	out, _, err = runCLI(t, "explain", "--config", cfg, "--region", "US", hit)
	if err != nil || !strings.Contains(out, "delivery sync: the browser gets the upstream's answer") {
		t.Errorf("explain (sync): %v\n%s", err, out)
	}
	out, _, err = runCLI(t, "audit", "--region", "DE", "../../testdata/public-hits.tsv")
	if err != nil || !strings.Contains(out, "delivery=queue") || !strings.Contains(out, "delivery=sync") {
		t.Errorf("audit lacks delivery modes: %v\n%s", err, out)
	}
}
