package consentmode

import "math/bits"

// Reason is a stable snake_case code saying why the gateway decided as it
// did. Codes are metric labels and appear in explain and the decision log;
// never rename one.
type Reason uint8

// Reasons.
const (
	ReasonAnalyticsStorageDenied Reason = iota
	ReasonAdStorageDenied
	ReasonAdUserDataDenied
	ReasonAdPersonalizationDenied
	ReasonBasicMode
	ReasonTagNotAllowed
	ReasonTagMissing
	ReasonRemarketingDenied
	ReasonFormDataDenied
	ReasonUASunset
	ReasonMPDisabled
	ReasonUSOptOut
	ReasonMalformedGCS
	ReasonMalformedGCD
	ReasonMalformedNPA
	ReasonMalformedTCF
	ReasonMalformedUSPrivacy
	ReasonMalformedGPP
	ReasonMalformedCMPCookie
	ReasonInvalidBody
	ReasonNoConsentSignal
	ReasonRegionDefault
	ReasonRegionUnknown
	ReasonConsentDowngraded
	ReasonEmailRedacted
	ReasonClickIDsRedacted
	ReasonServerContainer
	ReasonTCFNotApplicable
	ReasonTCFUnavailable
	ReasonEmailUnredactable
	ReasonTagClientID
	numReasons
)

var reasonNames = [numReasons]string{
	"analytics_storage_denied",
	"ad_storage_denied",
	"ad_user_data_denied",
	"ad_personalization_denied",
	"basic_mode",
	"tag_not_allowed",
	"tag_missing",
	"remarketing_denied",
	"form_data_denied",
	"ua_sunset",
	"mp_disabled",
	"us_opt_out",
	"malformed_gcs",
	"malformed_gcd",
	"malformed_npa",
	"malformed_tcf",
	"malformed_us_privacy",
	"malformed_gpp",
	"malformed_cmp_cookie",
	"invalid_body",
	"no_consent_signal",
	"region_default",
	"region_unknown",
	"consent_downgraded",
	"email_redacted",
	"click_ids_redacted",
	"server_container",
	"tcf_not_applicable",
	"tcf_unavailable",
	"email_unredactable",
	"tag_client_id",
}

// String returns the reason's stable code.
func (r Reason) String() string {
	if r < numReasons {
		return reasonNames[r]
	}
	return "unknown"
}

// AllReasons lists every reason code, for metrics and docs.
func AllReasons() []Reason {
	rs := make([]Reason, numReasons)
	for i := range rs {
		rs[i] = Reason(i)
	}
	return rs
}

// ReasonSet is a set of reasons. It is a plain value: comparable, free to copy.
// TestCatalogueFits keeps numReasons within its 64 bits.
type ReasonSet uint64

// Add adds r to s.
func (s *ReasonSet) Add(r Reason) { *s |= 1 << r }

// Has reports whether r is in s.
func (s ReasonSet) Has(r Reason) bool { return s&(1<<r) != 0 }

// Len returns the number of reasons in s.
func (s ReasonSet) Len() int { return bits.OnesCount64(uint64(s)) }

// All calls yield for each reason in s, in code order.
func (s ReasonSet) All(yield func(Reason) bool) {
	for v := uint64(s); v != 0; v &= v - 1 {
		if !yield(Reason(bits.TrailingZeros64(v))) {
			return
		}
	}
}

// Strings returns the codes in s, in code order. It allocates; use All on the hot path.
func (s ReasonSet) Strings() []string {
	out := make([]string, 0, s.Len())
	for r := range s.All {
		out = append(out, r.String())
	}
	return out
}
