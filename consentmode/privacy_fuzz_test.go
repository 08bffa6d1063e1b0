package consentmode

import (
	"errors"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// FuzzParseTC checks that ParseTC never panics, fails only with
// ErrMalformedTC, and agrees with DecodeTC on every input: same verdict, and
// the facts for the vendor match the full decode.
func FuzzParseTC(f *testing.F) {
	f.Add(tcfSpecExample, uint16(8))
	f.Add(tcfSpecExample+".IAAA.YAAAAA", uint16(TCGoogleVendorID))
	f.Add("tcunavailable", uint16(TCGoogleVendorID))
	f.Fuzz(func(t *testing.T, s string, vendor uint16) {
		v := int(vendor)
		facts, err := ParseTC([]byte(s), v)
		ts, derr := DecodeTC(s)
		if (err == nil) != (derr == nil) {
			t.Fatalf("ParseTC(%q) error %v, DecodeTC error %v", s, err, derr)
		}
		if err != nil {
			if !errors.Is(err, ErrMalformedTC) || !errors.Is(derr, ErrMalformedTC) {
				t.Fatalf("errors %v, %v; want ErrMalformedTC", err, derr)
			}
			return
		}
		if facts.Version != 2 {
			t.Fatalf("ParseTC(%q) accepted version %d", s, facts.Version)
		}
		for _, ids := range [][]int{ts.VendorConsents, ts.VendorLI, ts.DisclosedVendors, ts.AllowedVendors} {
			if !slices.IsSorted(ids) || len(slices.Compact(slices.Clone(ids))) != len(ids) {
				t.Fatalf("DecodeTC(%q) list not sorted and unique: %v", s, ids)
			}
		}
		if diff := cmp.Diff(tcfFactsFrom(ts, v), facts); diff != "" {
			t.Fatalf("ParseTC(%q, %d) disagrees with DecodeTC (-decode +parse):\n%s", s, v, diff)
		}
		facts.GoogleDenials(false)
		facts.GoogleDenials(true)
	})
}

// FuzzParseGPP checks that ParseGPP never panics, fails only with
// ErrMalformedGPP and a zero value, and that what it accepts is
// self-consistent.
func FuzzParseGPP(f *testing.F) {
	f.Add("DBABM~"+tcfSpecExample, "2")
	f.Add("DBACNY~"+tcfSpecExample+"~1YNN", "2,6")
	f.Add("DBABjw~XXXX~1YYN", "")
	f.Add("DBABLA~CFgGAAAAAABA.QA", "7")
	f.Add("DBABLA~CFgGAAAAAABA.QA", "-1")
	f.Fuzz(func(t *testing.T, gpp, sid string) {
		g, err := ParseGPP([]byte(gpp), []byte(sid))
		if err != nil {
			if !errors.Is(err, ErrMalformedGPP) || g != (GPP{}) {
				t.Fatalf("ParseGPP(%q, %q) = %+v, %v; want zero, ErrMalformedGPP", gpp, sid, g, err)
			}
			return
		}
		if g.Version != 1 {
			t.Fatalf("ParseGPP(%q) accepted version %d", gpp, g.Version)
		}
		if g.Decoded&^g.Sections != 0 {
			t.Fatalf("decoded %b outside present %b", g.Decoded, g.Sections)
		}
		if sid == "" && g.Applicable != g.Sections {
			t.Fatalf("empty sid: applicable %b, present %b", g.Applicable, g.Sections)
		}
		tcf := g.TCFEU([]byte(gpp))
		if g.Sections.Has(GPPTCFEUv2) != (tcf != nil) || strings.Contains(string(tcf), "~") {
			t.Fatalf("tcfeuv2 at %d:%d = %q, present %v", g.TCFEUStart, g.TCFEUEnd, tcf, g.Sections.Has(GPPTCFEUv2))
		}
		if tcf != nil {
			_, _ = ParseTC(tcf, TCGoogleVendorID)
		}
		optedOut, gpc := g.Applicable.Has(GPPUSPv1) && g.USPrivacy.OptedOut(), false
		for id, s := range g.US {
			if !g.Decoded.Has(id) {
				if s != (GPPUSSection{}) {
					t.Fatalf("section %d not decoded but set: %+v", id, s)
				}
				continue
			}
			for _, v := range []GPPOptOut{s.SaleOptOut, s.SharingOptOut, s.TargetedAdvertisingOptOut} {
				if v > GPPDidNotOptOut {
					t.Fatalf("section %d opt-out value %d", id, v)
				}
			}
			if g.Applicable.Has(id) {
				optedOut = optedOut || s.OptedOut()
				gpc = gpc || s.GPC
			}
		}
		if g.OptedOut != optedOut || g.GPC != gpc {
			t.Fatalf("OptedOut, GPC = %v, %v; sections say %v, %v", g.OptedOut, g.GPC, optedOut, gpc)
		}
	})
}

// uspPattern is the US Privacy grammar, with the lower case ParseUSPrivacy
// accepts.
var uspPattern = regexp.MustCompile(`^1[YNyn-]{3}$`)

// FuzzParseUSPrivacy checks ParseUSPrivacy against the grammar and its own
// String form.
func FuzzParseUSPrivacy(f *testing.F) {
	for _, s := range []string{"1YNN", "1---", "1yn-", "2YNN", "1YN"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		u, err := ParseUSPrivacy([]byte(s))
		if valid := uspPattern.MatchString(s); valid != (err == nil) {
			t.Fatalf("ParseUSPrivacy(%q) error %v, grammar says valid=%v", s, err, valid)
		}
		if err != nil {
			if !errors.Is(err, ErrMalformedUSPrivacy) || u != (USPrivacy{}) {
				t.Fatalf("ParseUSPrivacy(%q) = %+v, %v", s, u, err)
			}
			return
		}
		if got := u.String(); got != strings.ToUpper(s) {
			t.Fatalf("ParseUSPrivacy(%q).String() = %q", s, got)
		}
		again, err := ParseUSPrivacy([]byte(u.String()))
		if err != nil || again != u {
			t.Fatalf("round trip of %q: %+v, %v; want %+v", s, again, err, u)
		}
		if u.OptedOut() != (s[2] == 'Y' || s[2] == 'y') {
			t.Fatalf("ParseUSPrivacy(%q).OptedOut() = %v", s, u.OptedOut())
		}
	})
}
