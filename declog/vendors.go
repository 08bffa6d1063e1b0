package declog

import (
	"net/url"

	"github.com/consentgate/consentgate/consentmode"
)

// VendorFacts rebuilds the vendor facts of a decision-log record from
// what it holds: the enforced consent, the us_opt_out reason, Sec-GPC and
// the TCF inputs (gdpr, gdpr_consent, the euconsent-v2 cookie). audit
// runs consentmode.DecideVendors on them and compares with Vendors. A
// consent value other than "granted" reads as denied, and an input
// recorded as "?" (not recordable) reads as a malformed one, as the
// mapping itself treats them: fail closed.
func (r *Record) VendorFacts() consentmode.VendorFacts {
	var f consentmode.VendorFacts
	for t := range consentmode.NumTypes {
		f.Consent.Value[t] = consentmode.Denied
		if r.Consent[t] == "granted" {
			f.Consent.Value[t] = consentmode.Granted
		}
	}
	for _, reason := range r.Reasons {
		if reason == consentmode.ReasonUSOptOut.String() {
			f.USOptOut = true
		}
	}
	var query, cookie []byte
	if in := r.Inputs; in != nil {
		f.USOptOut = f.USOptOut || in.GPC
		for _, i := range []Input{InputGDPR, InputGDPRConsent} {
			if v := in.Values[i]; v != "" {
				if len(query) > 0 {
					query = append(query, '&')
				}
				query = append(append(append(query, i.Name()...), '='), url.QueryEscape(v)...)
			}
		}
		if v := in.Values[InputTCFCookie]; v != "" {
			cookie = append([]byte("euconsent-v2="), v...)
		}
	}
	for v := range consentmode.Vendor(consentmode.NumVendors) {
		if id := consentmode.VendorGVLID(v); id > 0 {
			f.TCFDenied[v] = consentmode.VendorTCF(query, cookie, id)
		}
	}
	return f
}
