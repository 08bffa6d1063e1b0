package declog

import (
	"testing"

	"github.com/consentgate/consentgate/consentmode"
)

// TestVendorFactsFromRecord: the facts rebuilt from a record give the
// calls the gateway decided from the live hit.
func TestVendorFactsFromRecord(t *testing.T) {
	const tcNo1126 = "COvFyGBOvFyGBAbAAAENAPCAAOAAAAAAAAAAAEEUACCKAAA" // the IAB spec example: vendors 2, 6, 8
	tests := []struct {
		name      string
		r         Record
		meta, mic string
	}{
		{"granted", Record{Consent: TypeValues{"granted", "granted", "granted", "granted"}}, "send", "send"},
		{"ad_storage denied", Record{Consent: TypeValues{"denied", "granted", "granted", "granted"}}, "block", "send+no_ids"},
		{"unset counts as denied", Record{Consent: TypeValues{"", "granted", "granted", "granted"}}, "block", "send+no_ids"},
		{"us opt-out reason", Record{Consent: TypeValues{"granted", "granted", "granted", "granted"}, Reasons: []string{"us_opt_out"}},
			"send+limited_data_use", "send+no_ids+no_user_data+conversions_only"},
		{"GPC input", Record{Consent: TypeValues{"granted", "granted", "granted", "granted"}, Inputs: &Inputs{GPC: true}},
			"send+limited_data_use", "send+no_ids+no_user_data+conversions_only"},
		{"TC string without 1126", Record{Consent: TypeValues{"granted", "granted", "granted", "granted"}, Inputs: &Inputs{Values: [NumInputs]string{InputGDPR: "1", InputGDPRConsent: tcNo1126}}},
			"send", "send+no_ids+no_user_data+conversions_only"},
		{"TC cookie without 1126", Record{Consent: TypeValues{"granted", "granted", "granted", "granted"}, Inputs: &Inputs{Values: [NumInputs]string{InputTCFCookie: tcNo1126}}},
			"send", "send+no_ids+no_user_data+conversions_only"},
		{"unrecordable TC string", Record{Consent: TypeValues{"granted", "granted", "granted", "granted"}, Inputs: &Inputs{Values: [NumInputs]string{InputGDPR: "1", InputGDPRConsent: "?"}}},
			"send", "send+no_ids+no_user_data+conversions_only"},
	}
	for _, tt := range tests {
		f := tt.r.VendorFacts()
		got := consentmode.DecideVendors(&f)
		if VendorCallName(got[consentmode.VendorMeta]) != tt.meta || VendorCallName(got[consentmode.VendorMicrosoft]) != tt.mic {
			t.Errorf("%s: meta %s, microsoft %s; want %s, %s", tt.name, got[consentmode.VendorMeta], got[consentmode.VendorMicrosoft], tt.meta, tt.mic)
		}
	}
}

// TestEnvelopeRecord: an envelope route's record is named after it.
func TestEnvelopeRecord(t *testing.T) {
	var r Record
	r.Route, r.Family, r.Action = "ga4_collect", "ga4", "forward"
	var calls [consentmode.NumVendors]consentmode.VendorCall
	calls[consentmode.VendorTikTok] = consentmode.VendorCall{Action: consentmode.VendorSend, Flags: consentmode.FlagLDU}
	r.setVendors(calls, true)
	if r.Route != EnvelopeRoute || r.Family != EnvelopeFamily || r.Action != "send+limited_data_use" || r.Vendors != (VendorValues{"", "", "send+limited_data_use"}) {
		t.Errorf("envelope record: %+v", r)
	}
}
