package consentmode

import "strings"

// Vendor is an advertising vendor other than Google whose server API the
// gateway calls with conversions taken from the GA4 stream, under the
// same consent state it enforces for Google (docs/vendors.md).
type Vendor uint8

// The vendors, in the order every output lists them.
const (
	VendorMeta Vendor = iota
	VendorMicrosoft
	VendorTikTok
	NumVendors = 3
)

var vendorNames = [NumVendors]string{"meta", "microsoft", "tiktok"}

// String returns the vendor's config name, such as "meta".
func (v Vendor) String() string {
	if int(v) < NumVendors {
		return vendorNames[v]
	}
	return "unknown"
}

// VendorNames returns the config names of the vendors, in order.
func VendorNames() []string { return append([]string(nil), vendorNames[:]...) }

// ParseVendor returns the vendor with config name s.
func ParseVendor(s string) (Vendor, bool) {
	for i, n := range vendorNames {
		if n == s {
			return Vendor(i), true
		}
	}
	return 0, false
}

// VendorAction is what leaves for one vendor.
type VendorAction uint8

// Vendor actions. VendorNone is the zero value: no call is planned (the
// vendor is not configured, or no event of the hit maps to it).
const (
	VendorNone VendorAction = iota
	VendorBlock
	VendorSend
)

var vendorActionNames = [...]string{"none", "block", "send"}

// String returns "none", "block" or "send".
func (a VendorAction) String() string {
	if int(a) < len(vendorActionNames) {
		return vendorActionNames[a]
	}
	return "unknown"
}

// VendorFlags are the restrictions a sent vendor call carries.
type VendorFlags uint8

// Vendor flags. Each removes data or tells the vendor to use less of it.
const (
	// FlagNoIDs: no cookie ids and no click ids (Microsoft's
	// adStorageConsent "D").
	FlagNoIDs VendorFlags = 1 << iota
	// FlagNoUserData: no user data: hashed e-mail, phone, external id,
	// name and address fields, and no client IP.
	FlagNoUserData
	// FlagOptOut: the event is for attribution only (Meta's opt_out).
	FlagOptOut
	// FlagLDU: limited data use (Meta's data_processing_options ["LDU"],
	// TikTok's limited_data_use).
	FlagLDU
	// FlagConversionsOnly: only events marked as conversions leave; page
	// and audience events do not.
	FlagConversionsOnly
	// NumVendorFlags counts the flags above.
	NumVendorFlags = 5
)

var vendorFlagNames = [NumVendorFlags]string{"no_ids", "no_user_data", "opt_out", "limited_data_use", "conversions_only"}

// VendorFlagNames returns the names of the flags, in bit order.
func VendorFlagNames() []string { return append([]string(nil), vendorFlagNames[:]...) }

// Has reports whether every flag of g is set in f.
func (f VendorFlags) Has(g VendorFlags) bool { return f&g == g }

// Names returns the names of the flags set, in bit order.
func (f VendorFlags) Names() []string {
	var out []string
	for i, n := range vendorFlagNames {
		if f&(1<<i) != 0 {
			out = append(out, n)
		}
	}
	return out
}

// String joins the flag names with '+' ("" for none).
func (f VendorFlags) String() string { return strings.Join(f.Names(), "+") }

// VendorCall is the decision for one vendor: its action, its flags when
// sent, and the row of VendorRules that blocked it (or, when sent, the
// first row that restricted it; -1 for none).
type VendorCall struct {
	Action VendorAction
	Flags  VendorFlags
	Rule   int8
}

// String is "block", "send" or "send+no_user_data+opt_out".
func (c VendorCall) String() string {
	if c.Action == VendorSend && c.Flags != 0 {
		return "send+" + c.Flags.String()
	}
	return c.Action.String()
}

// VendorCond is a condition of a VendorRules row.
type VendorCond uint8

// Vendor rule conditions. A consent type counts as denied unless it is
// granted: an unset type is denied (fail closed).
const (
	CondAdStorageDenied VendorCond = iota
	CondAdUserDataDenied
	CondAdPersonalizationDenied
	// CondUSOptOut: Sec-GPC: 1, or a US Privacy or GPP opt-out (also a
	// malformed one).
	CondUSOptOut
	// CondTCFNoVendorConsent: a TC string applies (gdpr=1, or a string is
	// present) and it does not give the vendor's GVL id consent and
	// Purpose 1 consent, or it is missing (with gdpr=1) or malformed.
	CondTCFNoVendorConsent
	numVendorConds
)

var vendorCondNames = [numVendorConds]string{"ad_storage denied", "ad_user_data denied", "ad_personalization denied", "GPC or US opt-out", "TCF without vendor consent"}

// String returns the condition as `rules` prints it.
func (c VendorCond) String() string {
	if c < numVendorConds {
		return vendorCondNames[c]
	}
	return "unknown"
}

// VendorEffect is what a rule does to one vendor: block it, or add flags.
// The zero value does nothing.
type VendorEffect struct {
	Block bool
	Flags VendorFlags
}

// String is "block", the flags joined with '+', or "-".
func (e VendorEffect) String() string {
	switch {
	case e.Block:
		return "block"
	case e.Flags != 0:
		return e.Flags.String()
	}
	return "-"
}

// VendorRule is one row of the vendor mapping: when Cond holds, Effect[v]
// applies to vendor v. Why and Sources say why, with the public pages.
type VendorRule struct {
	Cond    VendorCond
	Effect  [NumVendors]VendorEffect
	Why     string
	Sources []string
}

// denied is the effect of a vendor treated as if every advertising type
// were denied.
var denied = VendorEffect{Flags: FlagNoIDs | FlagNoUserData | FlagConversionsOnly}

// VendorRules maps the consent state to each vendor's call: the
// specification of docs/vendors.md kept as data. Every row whose
// condition holds applies; a block wins over any flags. `consentgate
// rules` and docs/vendors.md print it; DecideVendors runs it.
var VendorRules = []VendorRule{
	{
		Cond: CondAdStorageDenied,
		Effect: [NumVendors]VendorEffect{
			VendorMeta:      {Block: true},
			VendorMicrosoft: {Flags: FlagNoIDs},
			VendorTikTok:    {Block: true},
		},
		Why: "Meta and TikTok have no cookieless mode and need consent (ePrivacy Art. 5(3)) before their identifiers are used; Microsoft takes adStorageConsent \"D\" and then gets no cookie or click ids",
		Sources: []string{
			"https://developers.facebook.com/docs/marketing-api/conversions-api/parameters/customer-information-parameters",
			"https://learn.microsoft.com/en-us/advertising/msa-help/hlp_ba_conc_uet_consent",
			"https://business-api.tiktok.com/portal/docs?id=1771101027431425",
		},
	},
	{
		Cond: CondAdUserDataDenied,
		Effect: [NumVendors]VendorEffect{
			VendorMeta:      {Flags: FlagNoUserData},
			VendorMicrosoft: {Flags: FlagNoUserData},
			VendorTikTok:    {Flags: FlagNoUserData},
		},
		Why: "ad_user_data governs sending user data for advertising: hashed e-mail, phone, external id and address fields, and the client IP, stay home",
		Sources: []string{
			"https://support.google.com/google-ads/answer/13802165",
			"https://developers.google.com/tag-platform/security/concepts/consent-mode",
		},
	},
	{
		Cond: CondAdPersonalizationDenied,
		Effect: [NumVendors]VendorEffect{
			VendorMeta:      {Flags: FlagOptOut},
			VendorMicrosoft: {Flags: FlagConversionsOnly},
			VendorTikTok:    {Flags: FlagConversionsOnly},
		},
		Why: "Meta's opt_out marks an event for attribution only; Microsoft and TikTok have no such flag, so only conversions leave, no page or audience events",
		Sources: []string{
			"https://developers.facebook.com/docs/marketing-api/conversions-api/parameters/server-event",
		},
	},
	{
		Cond: CondUSOptOut,
		Effect: [NumVendors]VendorEffect{
			VendorMeta:      {Flags: FlagLDU},
			VendorMicrosoft: denied,
			VendorTikTok:    {Flags: FlagLDU},
		},
		Why: "a US opt-out (GPC, US Privacy, GPP) asks for limited data use: Meta's data_processing_options [\"LDU\"], TikTok's limited_data_use; Microsoft has no such mode and is treated as denied",
		Sources: []string{
			"https://developers.facebook.com/docs/marketing-apis/data-processing-options",
			"https://business-api.tiktok.com/portal/docs?id=1771101027431425",
		},
	},
	{
		Cond: CondTCFNoVendorConsent,
		Effect: [NumVendors]VendorEffect{
			VendorMicrosoft: denied,
		},
		Why: "Microsoft Advertising is an IAB TCF vendor: without consent for its GVL id and Purpose 1 it is treated as denied; Meta and TikTok are not TCF vendors, Consent Mode decides for them",
		Sources: []string{
			"https://learn.microsoft.com/en-us/advertising/msa-help/hlp_ba_conc_uet_tcf",
		},
	},
}

// VendorFacts are the inputs of the vendor mapping: the consent state the
// gateway enforced for the hit, whether a US opt-out applies, and what a
// TC string says about each TCF vendor.
type VendorFacts struct {
	Consent  State
	USOptOut bool
	// TCFDenied[v] is true when CondTCFNoVendorConsent holds for v (only
	// TCF vendors; see VendorTCF).
	TCFDenied [NumVendors]bool
}

// holds reports whether condition c holds for vendor v.
func (f *VendorFacts) holds(c VendorCond, v Vendor) bool {
	switch c {
	case CondAdStorageDenied:
		return !f.Consent.Granted(AdStorage)
	case CondAdUserDataDenied:
		return !f.Consent.Granted(AdUserData)
	case CondAdPersonalizationDenied:
		return !f.Consent.Granted(AdPersonalization)
	case CondUSOptOut:
		return f.USOptOut
	case CondTCFNoVendorConsent:
		return f.TCFDenied[v]
	}
	return true // an unknown condition holds: fail closed
}

// DecideVendors runs VendorRules for every vendor. It costs no allocation.
func DecideVendors(f *VendorFacts) [NumVendors]VendorCall {
	var out [NumVendors]VendorCall
	for v := range Vendor(NumVendors) {
		c := VendorCall{Action: VendorSend, Rule: -1}
		for i := range VendorRules {
			r := &VendorRules[i]
			e := r.Effect[v]
			if e == (VendorEffect{}) || !f.holds(r.Cond, v) {
				continue
			}
			if e.Block {
				c = VendorCall{Action: VendorBlock, Rule: int8(i)}
				break
			}
			if c.Rule < 0 {
				c.Rule = int8(i)
			}
			c.Flags |= e.Flags
		}
		out[v] = c
	}
	return out
}

// FactsOf returns the vendor facts of a decided hit: d's consent state,
// the US opt-out (d's, or Sec-GPC: 1 whatever the region honours: fail
// closed) and each TCF vendor's consent read from the hit's query and
// cookies (VendorTCF).
func FactsOf(d *Decision, gpc bool, query, cookie []byte) VendorFacts {
	f := VendorFacts{Consent: d.Consent, USOptOut: gpc || d.Reasons.Has(ReasonUSOptOut)}
	for v := range Vendor(NumVendors) {
		if id := vendorGVLID[v]; id > 0 {
			f.TCFDenied[v] = VendorTCF(query, cookie, id)
		}
	}
	return f
}

// VendorTCF reports whether the hit's TC string denies GVL vendor id: a
// TC string applies when the hit says gdpr=1 or carries a string
// (gdpr_consent, or the euconsent-v2 cookie when the query has none), and
// then the vendor needs vendor consent and Purpose 1 consent, and no
// publisher restriction may forbid it Purpose 1. gdpr=1
// without a string, a malformed or repeated string and the placeholders
// "tcunavailable" and "tcempty" deny (fail closed: the vendor is not
// Google, whose tags fall back to Consent Mode); so do contradictory
// gdpr values. gdpr=0 without a string says nothing.
func VendorTCF(query, cookie []byte, id int) bool {
	var gdpr, tc []byte
	var seenGDPR, seenTC, twice bool
	for rest := query; len(rest) > 0; {
		var pair []byte
		pair, rest, _ = cutByte(rest, '&')
		k, v := splitPair(pair)
		switch string(k) {
		case "gdpr":
			if seenGDPR && string(v) != string(gdpr) {
				twice = true
			}
			gdpr, seenGDPR = v, true
		case "gdpr_consent":
			if seenTC && string(v) != string(tc) {
				twice = true
			}
			tc, seenTC = v, true
		}
	}
	if !seenTC {
		if v, ok := cookieValue(cookie, "euconsent-v2"); ok {
			tc, seenTC = v, true
		}
	}
	switch {
	case twice:
		return true
	case !seenTC || len(tc) == 0:
		return string(gdpr) == "1"
	}
	f, err := ParseTC(tc, id)
	if err != nil {
		return true
	}
	return !f.VendorConsent || !f.PurposeConsent(1) || f.Restriction[0] == TCNotAllowed
}

// Applied lists the conditions of the VendorRules rows that apply to
// vendor v (those whose condition holds and whose effect on v is not
// empty), in table order: explain's "why".
func (f *VendorFacts) Applied(v Vendor) []VendorCond {
	var out []VendorCond
	for i := range VendorRules {
		r := &VendorRules[i]
		if r.Effect[v] != (VendorEffect{}) && f.holds(r.Cond, v) {
			out = append(out, r.Cond)
		}
	}
	return out
}
