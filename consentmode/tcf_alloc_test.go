//go:build !race

package consentmode

import "testing"

// TestPrivacyParsersDoNotAllocate proves the hot-path parsers cost no
// allocation, on well-formed and malformed input alike. (The race detector
// adds allocations, hence the build tag.)
func TestPrivacyParsersDoNotAllocate(t *testing.T) {
	tc := []byte(tcfVectorNamed(t, "typical").TC)
	gv := gppVectorNamed(t, "typical")
	gpp, sid := []byte(gv.GPP), []byte(gv.SID)
	badTC := []byte("tcunavailable")
	badGPP := []byte("DBABM~")
	usp := []byte("1YNN")

	tests := []struct {
		name string
		run  func()
	}{
		{name: "ParseTC typical", run: func() {
			f, err := ParseTC(tc, TCGoogleVendorID)
			if err != nil || !f.VendorConsent {
				t.Fatal(err)
			}
		}},
		{name: "ParseTC malformed", run: func() { _, _ = ParseTC(badTC, TCGoogleVendorID) }},
		{name: "GoogleDenials", run: func() {
			f, _ := ParseTC(tc, TCGoogleVendorID)
			_, _, _, _ = f.GoogleDenials(true)
		}},
		{name: "ParseGPP typical", run: func() {
			if _, err := ParseGPP(gpp, sid); err != nil {
				t.Fatal(err)
			}
		}},
		{name: "ParseGPP malformed", run: func() { _, _ = ParseGPP(badGPP, nil) }},
		{name: "ParseUSPrivacy", run: func() { _, _ = ParseUSPrivacy(usp) }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if n := testing.AllocsPerRun(100, tt.run); n != 0 {
				t.Errorf("%s: %v allocs/op, want 0", tt.name, n)
			}
		})
	}
}
