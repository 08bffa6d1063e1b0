package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestProfileNamed: check, rules and explain name consent.profile, and
// audit's invariants hold under both profiles (google keeps user ids and
// properties on a cookieless ping, as Google's tags do).
func TestProfileNamed(t *testing.T) {
	const hit = "https://metrics.shop.example/g/collect?v=2&tid=G-1&_p=1&gcs=G100&cid=1.2&uid=u42&up.plan=gold&en=page_view"
	for _, profile := range []string{"strict", "google"} {
		cfg := filepath.Join(t.TempDir(), profile+".yaml")
		if err := os.WriteFile(cfg, []byte("consent: {profile: "+profile+"}\ncookieless: {secret: \"test-secret-0123456789\"}\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		out, _, err := runCLI(t, "check", "--config", cfg)
		if err != nil || !strings.Contains(out, "profile "+profile) {
			t.Errorf("check (%s): %v\n%s", profile, err, out)
		}
		if profile == "google" && !strings.Contains(out, "cookieless.client_id tag") {
			t.Errorf("check: profile google does not imply client_id tag:\n%s", out)
		}
		out, _, err = runCLI(t, "rules", "--config", cfg)
		if err != nil || !strings.Contains(out, "profile **"+profile+"**") {
			t.Errorf("rules (%s): %v\n%s", profile, err, out)
		}
		out, _, err = runCLI(t, "explain", "--config", cfg, "--region", "DE", hit)
		if err != nil || !strings.Contains(out, "consent.profile "+profile) {
			t.Errorf("explain (%s): %v\n%s", profile, err, out)
		}
		if kept := strings.Contains(out, "uid=u42") && strings.Contains(out, "up.plan=gold"); kept != (profile == "google") {
			t.Errorf("explain (%s): user id kept = %v\n%s", profile, kept, out)
		}
		if out, _, err := runCLI(t, "audit", "--config", cfg, "--region", "DE", "../../testdata/public-hits.tsv"); err != nil {
			t.Errorf("audit (%s): %v\n%s", profile, err, out)
		}
	}
}
