package vendors

import (
	"errors"
	"net/url"
	"strings"
	"testing"

	"github.com/consentgate/consentgate/consentmode"
)

func TestParseEnvelope(t *testing.T) {
	t.Parallel()
	tc := "CO26UgFPDFvnEcWWhQHR4oEqDv___0P__y4YANGSzQsC84A8ABAAFAASAA2ACYAKAAWAA6AvMAAA"
	for _, c := range []struct {
		name, in  string
		query     string
		gpc       bool
		region    string
		wantError error
	}{
		{"full", "gcs=G111&gcd=13r3r3r2r5l1&npa=0&gdpr=1&gdpr_consent=" + tc + "&gpp=DBABMA~CPXxRfAPXxRfAAfKABENB-CgAAAAAAAAAAYgAAAAAAAA&gpp_sid=7&us_privacy=1YNN&gpc=1&region=DE",
			"gcs=G111&gcd=13r3r3r2r5l1&npa=0&gdpr=1&gdpr_consent=" + tc + "&gpp=DBABMA~CPXxRfAPXxRfAAfKABENB-CgAAAAAAAAAAYgAAAAAAAA&gpp_sid=7&us_privacy=1YNN", true, "DE", nil},
		{"subdivision, gpc 0", "gcs=G100&gpc=0&region=us-ca", "gcs=G100", false, "US-CA", nil},
		{"escaped value kept escaped", "gcd=13r3r3r2r5l1&gpp_sid=7%2C8", "gcd=13r3r3r2r5l1&gpp_sid=7%2C8", false, "unknown", nil},
		{"no consent state: only a TC string", "gdpr=1&gdpr_consent=" + tc, "", false, "", ErrEnvelopeMalformed},
		{"no consent state: US Privacy", "us_privacy=1---&region=US", "", false, "", ErrEnvelopeMalformed},
		{"no consent state: GPP", "gpp=DBAA&region=US", "", false, "", ErrEnvelopeMalformed},
		{"no consent state: gpc and region only", "gpc=0&region=US", "", false, "", ErrEnvelopeMalformed},
		{"no consent state: npa and gdpr only", "npa=0&gdpr=0", "", false, "", ErrEnvelopeMalformed},
		{"empty", "", "", false, "", ErrEnvelopeMissing},
		{"unknown key", "gcs=G111&foo=1", "", false, "", ErrEnvelopeMalformed},
		{"repeated key", "gcs=G111&gcs=G100", "", false, "", ErrEnvelopeMalformed},
		{"repeated gpc", "gpc=1&gpc=1", "", false, "", ErrEnvelopeMalformed},
		{"bad escape", "gdpr_consent=%zz", "", false, "", ErrEnvelopeMalformed},
		{"bad gpc", "gpc=yes", "", false, "", ErrEnvelopeMalformed},
		{"bad region", "region=Germany", "", false, "", ErrEnvelopeMalformed},
		{"unknown region code", "region=XX", "", false, "", ErrEnvelopeMalformed},
		{"pair without =", "gcs", "", false, "", ErrEnvelopeMalformed},
		{"empty pair", "gcs=G111&&gpc=1", "", false, "", ErrEnvelopeMalformed},
		{"trailing &", "gcs=G111&", "", false, "", ErrEnvelopeMalformed},
		{"too long", "gdpr_consent=" + strings.Repeat("A", MaxEnvelope), "", false, "", ErrEnvelopeMalformed},
	} {
		e, err := ParseEnvelope([]byte(c.in))
		if c.wantError != nil {
			if !errors.Is(err, c.wantError) {
				t.Errorf("%s: error %v, want %v", c.name, err, c.wantError)
			}
			continue
		}
		if err != nil {
			t.Errorf("%s: %v", c.name, err)
			continue
		}
		if string(e.Query) != c.query || e.GPC != c.gpc || e.Region.String() != c.region {
			t.Errorf("%s: got %q %v %s", c.name, e.Query, e.GPC, e.Region)
		}
	}
}

// TestParseEnvelopeErrorsHideValues: an error names the key, never the
// value.
func TestParseEnvelopeErrorsHideValues(t *testing.T) {
	t.Parallel()
	for _, in := range []string{"gpc=jane@example.com", "region=jane@example.com", "gdpr_consent=%zzjane@example.com"} {
		_, err := ParseEnvelope([]byte(in))
		if err == nil || strings.Contains(err.Error(), "jane") {
			t.Errorf("%s: %v", in, err)
		}
	}
}

func FuzzParseEnvelope(f *testing.F) {
	for _, s := range []string{"gcs=G111&gcd=13r3r3r2r5l1&gdpr=1&gdpr_consent=CO26&gpp=DBABMA~x&gpp_sid=7&us_privacy=1YNN&gpc=1&region=DE",
		"", "gcs", "gcs=G1&gcs=G1", "region=us_ca", "gpc=0", "%", "a=b&", "gdpr_consent=%41"} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		e, err := ParseEnvelope(b)
		if err != nil {
			if !errors.Is(err, ErrEnvelopeMissing) && !errors.Is(err, ErrEnvelopeMalformed) {
				t.Fatalf("error %v is neither sentinel", err)
			}
			return
		}
		if len(b) > MaxEnvelope {
			t.Fatal("took an envelope over the limit")
		}
		// The query holds consent keys only, each once, and parses again
		// to itself.
		seen := map[string]bool{}
		for _, pair := range strings.Split(string(e.Query), "&") {
			if pair == "" {
				continue
			}
			k, v, _ := strings.Cut(pair, "=")
			if index(envelopeKeys, k) < 0 || seen[k] {
				t.Fatalf("query %q holds %q", e.Query, k)
			}
			seen[k] = true
			if _, err := url.QueryUnescape(v); err != nil {
				t.Fatalf("query %q holds a bad escape", e.Query)
			}
		}
		if len(e.Query) > 0 {
			again, err := ParseEnvelope(e.Query)
			if err != nil || string(again.Query) != string(e.Query) {
				t.Fatalf("query %q does not parse to itself: %v", e.Query, err)
			}
		}
		if !e.Region.IsUnknown() {
			if r, ok := consentmode.ParseRegion([]byte(e.Region.String())); !ok || r != e.Region {
				t.Fatalf("region %s", e.Region)
			}
		}
		b[0] ^= 0xff // the result does not refer to b
		if again, _ := ParseEnvelope(e.Query); len(e.Query) > 0 && string(again.Query) != string(e.Query) {
			t.Fatal("the result refers to the input")
		}
	})
}
