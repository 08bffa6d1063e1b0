package consentmode

import (
	"slices"
	"testing"
)

// vendorState builds a consent state: each type granted unless listed in
// denied; unset lists types left Unset.
func vendorState(denied, unset []Type) State {
	var s State
	for t := range Type(NumTypes) {
		s.Value[t] = Granted
		if slices.Contains(denied, t) {
			s.Value[t] = Denied
		}
		if slices.Contains(unset, t) {
			s.Value[t] = Unset
		}
	}
	return s
}

// TestDecideVendors pins the vendor mapping of docs/vendors.md for each
// consent situation the issue lists.
func TestDecideVendors(t *testing.T) {
	tests := []struct {
		name                    string
		facts                   VendorFacts
		meta, microsoft, tiktok string
	}{
		{"granted", VendorFacts{Consent: vendorState(nil, nil)}, "send", "send", "send"},
		{"ad_storage denied", VendorFacts{Consent: vendorState([]Type{AdStorage}, nil)}, "block", "send+no_ids", "block"},
		{"ad_storage unset fails closed", VendorFacts{Consent: vendorState(nil, []Type{AdStorage})}, "block", "send+no_ids", "block"},
		{"ad_user_data denied", VendorFacts{Consent: vendorState([]Type{AdUserData}, nil)}, "send+no_user_data", "send+no_user_data", "send+no_user_data"},
		{"ad_personalization denied", VendorFacts{Consent: vendorState([]Type{AdPersonalization}, nil)}, "send+opt_out", "send+conversions_only", "send+conversions_only"},
		{"analytics_storage denied changes nothing", VendorFacts{Consent: vendorState([]Type{AnalyticsStorage}, nil)}, "send", "send", "send"},
		{"GPC", VendorFacts{Consent: vendorState(nil, nil), USOptOut: true}, "send+limited_data_use", "send+no_ids+no_user_data+conversions_only", "send+limited_data_use"},
		{"TCF without Microsoft's consent", VendorFacts{Consent: vendorState(nil, nil), TCFDenied: [NumVendors]bool{VendorMicrosoft: true}}, "send", "send+no_ids+no_user_data+conversions_only", "send"},
		{"all denied", VendorFacts{Consent: vendorState([]Type{AdStorage, AnalyticsStorage, AdUserData, AdPersonalization}, nil), USOptOut: true},
			"block", "send+no_ids+no_user_data+conversions_only", "block"},
		{"ad_user_data and ad_personalization denied, GPC", VendorFacts{Consent: vendorState([]Type{AdUserData, AdPersonalization}, nil), USOptOut: true},
			"send+no_user_data+opt_out+limited_data_use", "send+no_ids+no_user_data+conversions_only", "send+no_user_data+limited_data_use+conversions_only"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := DecideVendors(&tt.facts)
			for v, want := range []string{tt.meta, tt.microsoft, tt.tiktok} {
				if got[v].String() != want {
					t.Errorf("%s: %s, want %s", Vendor(v), got[v], want)
				}
				if got[v].Action == VendorBlock && got[v].Flags != 0 {
					t.Errorf("%s: a block carries flags %s", Vendor(v), got[v].Flags)
				}
				if got[v].Action == VendorSend && (got[v].Flags == 0) != (got[v].Rule < 0) {
					t.Errorf("%s: flags %s but rule %d", Vendor(v), got[v].Flags, got[v].Rule)
				}
			}
		})
	}
}

// TestDecideVendorsNeverUpgrades: denying one more type, or adding an
// opt-out, never gives any vendor more: a block stays a block and a send
// keeps every flag it had.
func TestDecideVendorsNeverUpgrades(t *testing.T) {
	for mask := range 1 << (NumTypes + 2) {
		var f VendorFacts
		for ty := range Type(NumTypes) {
			f.Consent.Value[ty] = Granted
			if mask&(1<<ty) != 0 {
				f.Consent.Value[ty] = Denied
			}
		}
		f.USOptOut = mask&(1<<NumTypes) != 0
		f.TCFDenied[VendorMicrosoft] = mask&(1<<(NumTypes+1)) != 0
		base := DecideVendors(&f)
		for extra := range NumTypes + 2 {
			g := f
			switch {
			case extra < NumTypes:
				g.Consent.Value[extra] = Denied
			case extra == NumTypes:
				g.USOptOut = true
			default:
				g.TCFDenied[VendorMicrosoft] = true
			}
			more := DecideVendors(&g)
			for v := range NumVendors {
				switch {
				case base[v].Action == VendorBlock && more[v].Action != VendorBlock:
					t.Errorf("mask %b + %d: %s unblocked (%s)", mask, extra, Vendor(v), more[v])
				case more[v].Action == VendorSend && !more[v].Flags.Has(base[v].Flags):
					t.Errorf("mask %b + %d: %s lost flags: %s → %s", mask, extra, Vendor(v), base[v], more[v])
				}
			}
		}
	}
}

func TestDecideVendorsAllocs(t *testing.T) {
	f := VendorFacts{Consent: vendorState([]Type{AdUserData}, nil), USOptOut: true}
	if n := testing.AllocsPerRun(100, func() { _ = DecideVendors(&f) }); n != 0 {
		t.Errorf("DecideVendors: %v allocs, want 0", n)
	}
	q := []byte("v=2&gdpr=1&gdpr_consent=" + tcfSpecExample)
	if n := testing.AllocsPerRun(100, func() { _ = VendorTCF(q, nil, 1126) }); n != 0 {
		t.Errorf("VendorTCF: %v allocs, want 0", n)
	}
}

// TestVendorGVL: Microsoft's id is read from the vendored Global Vendor
// List, by name.
func TestVendorGVL(t *testing.T) {
	if VendorGVL.VendorListVersion <= 0 || VendorGVL.LastUpdated == "" || VendorGVL.Source == "" {
		t.Fatalf("vendored GVL without version or source: %+v", VendorGVL)
	}
	if id := VendorGVLID(VendorMicrosoft); id != 1126 {
		t.Errorf("Microsoft Advertising's GVL id %d, want 1126 (the id Microsoft documents)", id)
	}
	if VendorGVLID(VendorMeta) != 0 || VendorGVLID(VendorTikTok) != 0 {
		t.Error("Meta and TikTok are not TCF vendors")
	}
}

// TestVendorTCFVectors checks VendorTCF on the IAB library's vectors:
// denied unless the string gives the vendor consent and Purpose 1, the
// string given as gdpr_consent or as the euconsent-v2 cookie.
func TestVendorTCFVectors(t *testing.T) {
	const id = 1126
	var with, without int
	for _, vec := range tcfLoadVectors(t) {
		if !slices.Contains(vec.Segments, "core") {
			continue
		}
		want := !(slices.Contains(tcfIDs(t, vec.VendorConsents), id) && slices.Contains(tcfIDs(t, vec.PurposeConsents), 1))
		for _, r := range vec.PublisherRestrictions {
			if r.Purpose == 1 && r.Type == 0 && slices.Contains(tcfIDs(t, r.Vendors), id) {
				want = true // Purpose 1 not allowed for the vendor
			}
		}
		if want {
			without++
		} else {
			with++
		}
		if got := VendorTCF([]byte("gdpr=1&gdpr_consent="+vec.TC), nil, id); got != want {
			t.Errorf("%s: gdpr_consent denied %v, want %v", vec.Name, got, want)
		}
		if got := VendorTCF([]byte("v=2"), []byte("a=b; euconsent-v2="+vec.TC), id); got != want {
			t.Errorf("%s: cookie denied %v, want %v", vec.Name, got, want)
		}
	}
	if with == 0 || without == 0 {
		t.Fatalf("vectors give vendor %d consent in %d and deny it in %d: both are needed", id, with, without)
	}
}

func TestVendorTCFEdges(t *testing.T) {
	tests := []struct {
		query, cookie string
		denied        bool
	}{
		{"v=2", "", false},
		{"gdpr=0", "", false},
		{"gdpr=1", "", true},
		{"gdpr=1&gdpr_consent=", "", true},
		{"gdpr=1&gdpr_consent=tcunavailable", "", true},
		{"gdpr=1&gdpr_consent=tcempty", "", true},
		{"gdpr_consent=not-a-tc-string", "", true},
		{"gdpr=1&gdpr_consent=" + tcfSpecExample + "&gdpr_consent=CPXxRfAPXxRfAAfKABENB-CgAAAAAAAAAAYgAAAAAAAA", "", true},
		{"gdpr=1", "euconsent-v2=garbage", true},
		{"gdpr=1&gdpr=0", "", true},
		{"gdpr=0&gdpr=0", "", false},
		{"gdpr=1&gdpr_consent=" + tcfSpecExample, "", true}, // vendors 2, 6, 8 only
	}
	for _, tt := range tests {
		if got := VendorTCF([]byte(tt.query), []byte(tt.cookie), 1126); got != tt.denied {
			t.Errorf("VendorTCF(%q, %q) = %v, want %v", tt.query, tt.cookie, got, tt.denied)
		}
	}
}

func FuzzVendorTCF(f *testing.F) {
	f.Add([]byte("gdpr=1&gdpr_consent="+tcfSpecExample), []byte("euconsent-v2=x"))
	f.Add([]byte("gdpr=1"), []byte(""))
	f.Fuzz(func(t *testing.T, query, cookie []byte) {
		denied := VendorTCF(query, cookie, 1126)
		// gdpr=1 without any string always denies.
		if !denied && string(query) == "gdpr=1" && len(cookie) == 0 {
			t.Fatal("gdpr=1 without a string did not deny")
		}
	})
}
