package consentmode

// signalRefs holds the raw optional consent signals a hit carries. The
// slices borrow the input.
type signalRefs struct {
	gdpr, gdprConsent, usPrivacy, gpp, gppSID []byte
	seenGDPR, seenGDPRConsent, seenUSPrivacy  bool
	seenGPP                                   bool
	// A signal sent twice with different values (query and a batch line,
	// say) is contradictory: it fails closed (TCF applies and is unusable,
	// the US signals count as opted out).
	conflictGDPR, conflictGDPRConsent, conflictUSPrivacy, conflictGPP bool
}

// note records k=v when k is one of the optional signals.
func (s *signalRefs) note(k, v []byte) {
	first := func(dst *[]byte, seen, conflict *bool) {
		if !*seen {
			*dst, *seen = v, true
		} else if string(*dst) != string(v) {
			*conflict = true
		}
	}
	switch string(k) {
	case "gdpr":
		first(&s.gdpr, &s.seenGDPR, &s.conflictGDPR)
	case "gdpr_consent":
		first(&s.gdprConsent, &s.seenGDPRConsent, &s.conflictGDPRConsent)
	case "us_privacy":
		first(&s.usPrivacy, &s.seenUSPrivacy, &s.conflictUSPrivacy)
	case "gpp":
		first(&s.gpp, &s.seenGPP, &s.conflictGPP)
	case "gpp_sid":
		if s.gppSID == nil {
			s.gppSID = v
		} else if string(s.gppSID) != string(v) {
			s.conflictGPP = true
		}
	}
}

// mergeOptionalSignals merges the optional signals the region honours
// into the state (docs/spec.md §1.4, step 2), in this order: the CMP's
// cookie record, TCF from the hit (the only one that may also grant), the
// GPP string's TCF section, then the US opt-outs (GPC, US Privacy, GPP).
// The order only decides which input is reported as the source of a
// denial: a denial wins whatever comes after it.
func mergeOptionalSignals(d *Decision, h *hit, in *Input, p *Policy, rule *RegionRule, w *Work) {
	if rule.Signals.Has(SignalCMPCookie) {
		denyByCMPCookies(d, in.Cookie, p.CMPCookies, rule.TCFStrict, &w.scratch)
	}
	if rule.Signals.Has(SignalTCF) {
		applyTCF(d, h, rule.TCFStrict)
	}

	// US opt-outs: every signal present is read (its reasons and, for
	// GPP, its TCF section count), and the first that opts out is reported.
	optOut := SourceNone
	if rule.Signals.Has(SignalGPC) && in.GPC {
		optOut = SourceGPC
	}
	if rule.Signals.Has(SignalUSPrivacy) && h.seenUSPrivacy && usPrivacyOptsOut(d, h) && optOut == SourceNone {
		optOut = SourceUSPrivacy
	}
	if rule.Signals.Has(SignalGPP) && h.seenGPP && gppOptsOut(d, h, rule) && optOut == SourceNone {
		optOut = SourceGPP
	}
	if optOut != SourceNone {
		// rdp=1 (restricted data processing) is Google's answer to US
		// state privacy laws: written for visitors in the US, and where
		// the region is unknown (fail closed). Elsewhere (a GPC in the
		// EEA) the opt-out still denies, rdp is not Google's signal there.
		d.OptOut = d.Region.IsUnknown() || (d.Region[0] == 'U' && d.Region[1] == 'S')
		d.Reasons.Add(ReasonUSOptOut)
		d.Consent.deny(AdPersonalization, optOut, 0)
		if rule.OptOutDeniesAdUserData {
			d.Consent.deny(AdUserData, optOut, 0)
		}
	}
}

// denyByCMPCookies applies each CMP cookie mapping, deny-only: every
// cookie of the mapping's name counts, and a value that means neither
// granted nor denied denies its type. scratch is working space.
func denyByCMPCookies(d *Decision, header []byte, cookies []CMPCookie, strict bool, scratch *[]byte) {
	for i := range cookies {
		r := readCMPCookie(&cookies[i], header, strict, scratch)
		if r.malformed {
			d.Reasons.Add(ReasonMalformedCMPCookie)
		}
		for t, deny := range r.deny {
			if deny {
				d.Consent.deny(Type(t), SourceCMPCookie, uint8(i))
			}
		}
	}
}

// usPrivacyOptsOut reads us_privacy and reports whether it opts out: a
// third character 'Y', or a malformed or contradictory value (fail closed).
func usPrivacyOptsOut(d *Decision, h *hit) bool {
	u, err := ParseUSPrivacy(h.usPrivacy)
	if err == nil && h.conflictUSPrivacy {
		err = ErrMalformedUSPrivacy
	}
	if err != nil {
		d.Reasons.Add(ReasonMalformedUSPrivacy)
		return true
	}
	return u.OptedOut()
}

// gppOptsOut reads gpp and gpp_sid and reports whether they opt out: an
// applicable US section with an opt-out or its GPC flag set, or a
// malformed or contradictory string (fail closed). An applicable TCF
// section, where the region honours TCF, denies what Google's mapping
// denies (deny-only).
func gppOptsOut(d *Decision, h *hit, rule *RegionRule) bool {
	g, err := ParseGPP(h.gpp, h.gppSID)
	if err == nil && h.conflictGPP {
		err = ErrMalformedGPP
	}
	if err != nil {
		d.Reasons.Add(ReasonMalformedGPP)
		return true
	}
	if g.Applicable.Has(GPPTCFEUv2) && rule.Signals.Has(SignalTCF) {
		if tc := g.TCFEU(h.gpp); tc != nil {
			types, bad := tcfDenials(tc, rule.TCFStrict)
			if bad {
				d.Reasons.Add(ReasonMalformedTCF)
			}
			denyTCF(d, types)
		}
	}
	return g.OptedOut || g.GPC
}

// denyTCF records TCF's denials, in the state and in what TCF said.
func denyTCF(d *Decision, types [NumTypes]bool) {
	for t, on := range types {
		if on {
			d.Consent.deny(Type(t), SourceTCF, 0)
			d.Said.TCF[t] = Denied
		}
	}
}

// grantTCF records TCF's grants: only types still unset take them, and
// any later denial wins.
func grantTCF(d *Decision, types [NumTypes]bool) {
	for t, on := range types {
		if on {
			d.Consent.grant(Type(t), SourceTCF)
		}
	}
}

// applyTCF reads gdpr and gdpr_consent. gdpr=0 means TCF does not apply.
// With gdpr=1, a missing consent string or one that does not parse denies
// the types TCF governs; "tcunavailable" and "tcempty" (the CMP did not
// answer) leave the hit's consent mode state and the region default to decide. A consent
// string without gdpr is read too, for its denials only.
//
// TCF counts both ways when the tag is silent: with gdpr=1 and a string
// that parses, appears once (or in identical copies) and gives Google
// consent (tcfMapping), the governed types the mapping does not deny are
// granted where the hit's own gcs and gcd left them unset (absent, or the
// gcd letter 'l'). Grants come before the region default and never
// override a denial: gcs, gcd, npa, the CMP cookie, the GPP TCF section
// and the US opt-outs all still deny after this (docs/spec.md §1.5).
func applyTCF(d *Decision, h *hit, strict bool) {
	if h.conflictGDPR || h.conflictGDPRConsent {
		d.Reasons.Add(ReasonMalformedTCF)
		denyTCF(d, tcfDenyAll(strict))
		return
	}
	if h.seenGDPR && string(h.gdpr) == "0" {
		if h.seenGDPRConsent {
			d.Reasons.Add(ReasonTCFNotApplicable)
		}
		return
	}
	applies := h.seenGDPR && string(h.gdpr) == "1"
	switch {
	case !h.seenGDPRConsent || len(h.gdprConsent) == 0:
		if applies {
			d.Reasons.Add(ReasonTCFUnavailable)
			denyTCF(d, tcfDenyAll(strict))
		}
	case string(h.gdprConsent) == "tcunavailable" || string(h.gdprConsent) == "tcempty":
		// The CMP did not answer: Google's tags then proceed with the
		// consent mode state (Google's TCF integration guide), so TCF
		// says nothing. What the hit's gcs/gcd set stands; what they left
		// unset takes the region default; every other denial still wins.
		d.Reasons.Add(ReasonTCFUnavailable)
	default:
		denied, granted, bad := tcfMapping(h.gdprConsent, strict)
		if bad {
			d.Reasons.Add(ReasonMalformedTCF)
		}
		denyTCF(d, denied)
		if applies && !bad {
			grantTCF(d, granted)
		}
	}
}

// InputRule documents one consent input: where it comes from, the types
// it speaks for and how it merges. `consentgate rules` prints InputRules;
// mergeOptionalSignals and mergeClaims implement them.
type InputRule struct {
	Input  string `json:"input"`
	From   string `json:"from"`
	Types  string `json:"types"`
	Effect string `json:"effect"`
}

// InputRules lists the consent inputs in the order they are merged. A
// denial from any of them wins over every grant; the first denier is the
// reported source.
var InputRules = []InputRule{
	{"gcd", "the hit", "all four", "grants and denies; letter l leaves the type unset; a bad letter denies its type, a short string all four"},
	{"gcs", "the hit", "ad_storage, analytics_storage", "grants and denies; - leaves the type unset; malformed denies both"},
	{"npa", "the hit", "ad_personalization", "1 denies"},
	{"cmp_cookie:<name>", "the site's own CMP cookie", "the types mapped", "deny-only; unknown values deny"},
	{"tcf", "gdpr + gdpr_consent on the hit", "ad_storage, ad_user_data, ad_personalization (analytics_storage with tcf_strict)",
		"Google's TCF mapping denies; with gdpr=1 and a string that parses, appears once and gives Google (vendor 755) consent (and disclosure under TCF 2.3), it also grants the types it does not deny where the hit's gcs/gcd left them unset, before the region default; gdpr=1 with no, malformed or contradictory strings denies; tcunavailable and tcempty (the CMP did not answer) say nothing: the hit's consent mode state, then the region default, decide"},
	{"tcf", "euconsent-v2 cookie, GPP TCF section", "as above", "deny-only"},
	{"gpc, us_privacy, gpp", "Sec-GPC, us_privacy, gpp/gpp_sid", "ad_personalization (+ ad_user_data with us_opt_out_denies_ad_user_data)", "a US opt-out denies and writes back rdp=1; malformed counts as opted out"},
	{"region_default:<CC>", "trusted geo header", "every type still unset", "the region's default"},
}
