package config

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/consentgate/consentgate/consentmode"
)

// TestVendorsConfig: a vendor is on only with an id and a token (from a
// file or the environment, never shown), and its problems name the key.
func TestVendorsConfig(t *testing.T) {
	dir := t.TempDir()
	tokenFile := filepath.Join(dir, "meta-token")
	if err := os.WriteFile(tokenFile, []byte("  meta-secret-token\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("CONSENTGATE_VENDORS_TIKTOK_TOKEN", "tiktok-secret-token")
	c, err := Load(writeConfig(t, `vendors:
  meta: {enabled: true, id: "123", token_file: `+tokenFile+`}
  tiktok: {enabled: true, id: CTT1, endpoint: "http://vendors.example"}
`))
	if err != nil {
		t.Fatal(err)
	}
	if m := c.Vendors.On[consentmode.VendorMeta]; m == nil || m.Token != "meta-secret-token" || m.Endpoint.String() != "https://graph.facebook.com" || m.APIVersion == "" {
		t.Errorf("meta: %+v", m)
	}
	if tt := c.Vendors.On[consentmode.VendorTikTok]; tt == nil || tt.Token != "tiktok-secret-token" {
		t.Errorf("tiktok: %+v", tt)
	}
	if c.Vendors.On[consentmode.VendorMicrosoft] != nil {
		t.Error("microsoft is on without being enabled")
	}
	if e := c.Vendors.Events["purchase"]; !e.Conversion || e.Name[consentmode.VendorMeta] != "Purchase" {
		t.Errorf("default purchase mapping: %+v", e)
	}
	for k, v := range c.Settings {
		if strings.Contains(v, "secret-token") {
			t.Errorf("setting %s shows the token: %s", k, v)
		}
	}
	if !strings.Contains(strings.Join(c.Warnings, "\n"), "vendors.tiktok.endpoint http://vendors.example is plain http") {
		t.Errorf("no warning for a plain-http endpoint: %v", c.Warnings)
	}

	bad := []struct{ yaml, want string }{
		{`vendors: {meta: {enabled: true, id: "123"}}`, "vendors.meta.token: the vendor is enabled without an API token"},
		{`vendors: {meta: {enabled: true, id: "1 2", token: abcdefgh}}`, `vendors.meta.id: "1 2" is not an id`},
		{`vendors: {microsoft: {enabled: true, id: "1", token: a, token_file: /nonexistent}}`, "set token_file or token"},
		{`vendors: {tiktok: {enabled: true, id: "1", token: abc, endpoint: "https://x.example/path"}}`, "vendors.tiktok.endpoint"},
		{`vendors: {meta: {enabled: true, id: "1", token: abc, api_version: "21"}}`, "is not a Graph API version"},
		{`vendors: {envelope_token: short}`, "vendors.envelope_token: 5 bytes is too short"},
		{`vendors: {batch_max_events: 5000}`, "vendors.batch_max_events: 5000 is not in [1, 1000]"},
		{`vendors: {events: [{ga4: purchase, meta: Purchase}, {ga4: purchase, meta: Lead}]}`, `"purchase" is mapped twice`},
		{`vendors: {events: [{ga4: "bad name", meta: Purchase}]}`, "is not a GA4 event name"},
	}
	for _, b := range bad {
		_, err := Load(writeConfig(t, b.yaml+"\n"))
		if err == nil || !strings.Contains(err.Error(), b.want) {
			t.Errorf("%s: %v, want a problem with %q", b.yaml, err, b.want)
		}
	}
}
