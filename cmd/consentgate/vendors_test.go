package main

import (
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/consentgate/consentgate/consentmode"
	"github.com/consentgate/consentgate/proxy"
	"github.com/consentgate/consentgate/vendors"
)

// vendorsConfig turns the three vendors on (their APIs are never called
// by explain or audit).
const vendorsConfig = `vendors:
  meta: {enabled: true, id: "1234", token: meta-token-0123}
  microsoft: {enabled: true, id: "187000001", token: ms-token-0123}
  tiktok: {enabled: true, id: CTT1, token: tiktok-token-0123}
`

func writeVendorsConfig(t *testing.T) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "vendors.yaml")
	if err := os.WriteFile(p, []byte(vendorsConfig), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

const explainPurchase = "https://metrics.shop.example/g/collect?v=2&tid=G-1&cid=1.2&en=purchase&ep.event_id=ord-9&epn.value=12&cu=EUR&dl=https%3A%2F%2Fshop.example%2Fthanks"

// TestExplainVendors: explain shows each vendor's call, why, and the
// request that would leave, the token redacted.
func TestExplainVendors(t *testing.T) {
	t.Parallel()
	cfg := writeVendorsConfig(t)
	out, _, err := runCLI(t, "explain", "--config", cfg, "--region", "DE", "-H", "User-Agent: UA/1", explainPurchase+"&gcs=G100&gcd=13q3q3q2q5l1")
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		"vendor   meta      BLOCK (ad_storage denied, ad_user_data denied, ad_personalization denied)",
		"vendor   microsoft SEND+NO_IDS+NO_USER_DATA+CONVERSIONS_ONLY (ad_storage denied, ad_user_data denied, ad_personalization denied)",
		"POST https://capi.uet.microsoft.com/v1/187000001/events (1 event(s)",
		`"adStorageConsent":"D"`,
		"vendor   tiktok    BLOCK",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("explain lacks %q:\n%s", want, out)
		}
	}
	out, _, err = runCLI(t, "explain", "--json", "--config", cfg, "--region", "US", "-H", "User-Agent: UA/1", explainPurchase+"&gcs=G111&gcd=13r3r3r2r5l1")
	if err != nil {
		t.Fatal(err)
	}
	var e proxy.Explanation
	if err := json.Unmarshal([]byte(out), &e); err != nil {
		t.Fatal(err)
	}
	if len(e.VendorCalls) != 3 || e.Vendors[consentmode.VendorMeta] != "send" {
		t.Fatalf("granted purchase: %d calls, vendors %v", len(e.VendorCalls), e.Vendors)
	}
	if strings.Contains(out, "meta-token-0123") || !strings.Contains(out, "REDACTED") {
		t.Errorf("the token is not redacted:\n%s", out)
	}
}

// TestAuditVendorLog: audit re-derives each logged vendor call from the
// record's own consent and inputs; a line whose call was not what the
// mapping gives (here: Meta sent although ad_storage is denied) fails.
func TestAuditVendorLog(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	good := `{"route":"ga4_collect","family":"ga4","region":"DE","action":"cookieless","enforced":true,"consent":{"ad_storage":"denied","analytics_storage":"denied","ad_user_data":"denied","ad_personalization":"denied"},"status":204,"vendors":{"meta":"block","microsoft":"send+no_ids+no_user_data+conversions_only","tiktok":"block"}}` + "\n" +
		`{"route":"vendor_envelope","family":"vendors","region":"US","action":"send+limited_data_use","enforced":true,"consent":{"ad_storage":"granted","analytics_storage":"granted","ad_user_data":"granted","ad_personalization":"granted"},"status":202,"vendors":{"tiktok":"send+limited_data_use"},"inputs":{"gpc":true}}` + "\n" +
		`{"route":"ga4_collect","family":"ga4","region":"FR","action":"forward","enforced":true,"consent":{"ad_storage":"granted","analytics_storage":"granted","ad_user_data":"granted","ad_personalization":"granted"},"status":204,"vendors":{"microsoft":"send+no_ids+no_user_data+conversions_only","meta":"send"},"inputs":{"gdpr":"1","gdpr_consent":"COvFyGBOvFyGBAbAAAENAPCAAOAAAAAAAAAAAEEUACCKAAA"}}` + "\n"
	p := filepath.Join(dir, "good.log")
	if err := os.WriteFile(p, []byte(good), 0o600); err != nil {
		t.Fatal(err)
	}
	if out, errOut, err := runCLI(t, "audit", p); err != nil {
		t.Fatalf("audit of consistent vendor lines: %v\n%s\n%s", err, out, errOut)
	}
	blocked := strings.Replace(strings.Split(good, "\n")[2], `"action":"forward"`, `"action":"block"`, 1) + "\n"
	if err := os.WriteFile(p, []byte(blocked), 0o600); err != nil {
		t.Fatal(err)
	}
	if out, _, err := runCLI(t, "audit", p); !errors.Is(err, errFailed) || !strings.Contains(out, "blocked_sends_nothing") {
		t.Errorf("a blocked hit with a vendor send: err %v\n%s", err, out)
	}
	bad := strings.Replace(good, `"meta":"block"`, `"meta":"send"`, 1)
	if err := os.WriteFile(p, []byte(bad), 0o600); err != nil {
		t.Fatal(err)
	}
	out, _, err := runCLI(t, "audit", p)
	if !errors.Is(err, errFailed) || !strings.Contains(out, "vendor_mapping") || !strings.Contains(out, `meta: logged "send", the recorded consent gives "block"`) {
		t.Errorf("a logged Meta call under denied ad_storage: err %v\n%s", err, out)
	}
}

// TestVendorInvariants: the promises restated on built bodies catch a
// body that carries what the consent forbids.
func TestVendorInvariants(t *testing.T) {
	t.Parallel()
	e := &proxy.Explanation{}
	e.Decision.Consent.Value = [consentmode.NumTypes]consentmode.Value{consentmode.Denied, consentmode.Granted, consentmode.Denied, consentmode.Granted}
	e.VendorCalls = []vendors.Call{
		{Vendor: "meta", Body: json.RawMessage(`{"data":[{"event_name":"Purchase"}]}`)},
		{Vendor: "microsoft", Body: json.RawMessage(`{"data":[{"adStorageConsent":"G","userData":{"msclkid":"x","em":"h"}}]}`)},
	}
	var got []string
	for _, v := range checkVendorInvariants(e) {
		got = append(got, v.Invariant+": "+v.Detail)
	}
	for _, want := range []string{
		"vendor_ad_storage_denied: meta would get a call although ad_storage is denied",
		"vendor_ad_storage_denied: microsoft: adStorageConsent is G, not \"D\", although ad_storage is denied",
		"vendor_ad_storage_denied: microsoft: msclkid would leave although ad_storage is denied",
		"vendor_ad_user_data_denied: microsoft: em would leave although ad_user_data is denied",
	} {
		if !strings.Contains(strings.Join(got, "\n"), want) {
			t.Errorf("invariants lack %q:\n%s", want, strings.Join(got, "\n"))
		}
	}
}

// TestCheckSaysVendors: check names the vendors that are on, where their
// calls go and whether the envelope routes are open.
func TestCheckSaysVendors(t *testing.T) {
	t.Parallel()
	out, _, err := runCLI(t, "check", "--config", writeVendorsConfig(t))
	if err != nil {
		t.Fatal(err)
	}
	want := "vendors: meta 1234 (https://graph.facebook.com, 6 GA4 events mapped); microsoft 187000001 (https://capi.uet.microsoft.com, 6 GA4 events mapped); tiktok CTT1 (https://business-api.tiktok.com, 6 GA4 events mapped); envelope routes off (vendors.envelope_token is empty)\n"
	if !strings.Contains(out, want) {
		t.Errorf("check lacks %q:\n%s", want, out)
	}
	if out, _, _ := runCLI(t, "check"); strings.Contains(out, "vendors:") {
		t.Errorf("check names vendors when none is on:\n%s", out)
	}
}
