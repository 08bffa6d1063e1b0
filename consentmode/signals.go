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

// applySignals adds the denials of the optional signals the region
// honours: the CMP's cookie record, TCF, and the US opt-outs (GPC, US
// Privacy, GPP). They only ever deny.
func applySignals(d *Decision, h *hit, in *Input, p *Policy, rule *RegionRule, w *Work) {
	st := &d.Consent
	if rule.Signals.Has(SignalCMPCookie) {
		for i := range p.CMPCookies {
			c := &p.CMPCookies[i]
			r := readCMPCookie(c, in.Cookie, rule.TCFStrict, &w.scratch)
			if r.malformed {
				d.Reasons.Add(ReasonMalformedCMPCookie)
			}
			for t, deny := range r.deny {
				if deny {
					st.deny(Type(t), SourceCMPCookie, uint8(i))
				}
			}
		}
	}
	deny := func(types [NumTypes]bool, src Source) {
		for t, on := range types {
			if on {
				st.deny(Type(t), src, 0)
				if src == SourceTCF {
					d.Said.TCF[t] = Denied
				}
			}
		}
	}
	if rule.Signals.Has(SignalTCF) {
		applyTCF(d, h, rule.TCFStrict, deny)
	}

	// US opt-outs: the first signal that opts out is reported.
	optOut := SourceNone
	if rule.Signals.Has(SignalGPC) && in.GPC {
		optOut = SourceGPC
	}
	if rule.Signals.Has(SignalUSPrivacy) && h.seenUSPrivacy {
		u, err := ParseUSPrivacy(h.usPrivacy)
		if err == nil && h.conflictUSPrivacy {
			err = ErrMalformedUSPrivacy
		}
		if err != nil {
			d.Reasons.Add(ReasonMalformedUSPrivacy)
		}
		if (err != nil || u.OptedOut()) && optOut == SourceNone {
			optOut = SourceUSPrivacy
		}
	}
	if rule.Signals.Has(SignalGPP) && h.seenGPP {
		g, err := ParseGPP(h.gpp, h.gppSID)
		if err == nil && h.conflictGPP {
			err = ErrMalformedGPP
		}
		switch {
		case err != nil:
			d.Reasons.Add(ReasonMalformedGPP)
			if optOut == SourceNone {
				optOut = SourceGPP
			}
		default:
			if (g.OptedOut || g.GPC) && optOut == SourceNone {
				optOut = SourceGPP
			}
			if g.Applicable.Has(GPPTCFEUv2) && rule.Signals.Has(SignalTCF) {
				if tc := g.TCFEU(h.gpp); tc != nil {
					types, bad := tcfDenials(tc, rule.TCFStrict)
					if bad {
						d.Reasons.Add(ReasonMalformedTCF)
					}
					deny(types, SourceTCF)
				}
			}
		}
	}
	if optOut != SourceNone {
		d.OptOut = true
		d.Reasons.Add(ReasonUSOptOut)
		st.deny(AdPersonalization, optOut, 0)
		if rule.OptOutDeniesAdUserData {
			st.deny(AdUserData, optOut, 0)
		}
	}
}

// applyTCF reads gdpr and gdpr_consent. gdpr=0 means TCF does not apply.
// With gdpr=1, a missing consent string, "tcunavailable", "tcempty" or a
// string that does not parse denies the types TCF governs. A consent
// string without gdpr is read too.
func applyTCF(d *Decision, h *hit, strict bool, deny func([NumTypes]bool, Source)) {
	if h.conflictGDPR || h.conflictGDPRConsent {
		d.Reasons.Add(ReasonMalformedTCF)
		deny(tcfDenyAll(strict), SourceTCF)
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
			deny(tcfDenyAll(strict), SourceTCF)
		}
	case string(h.gdprConsent) == "tcunavailable" || string(h.gdprConsent) == "tcempty":
		d.Reasons.Add(ReasonTCFUnavailable)
		deny(tcfDenyAll(strict), SourceTCF)
	default:
		types, bad := tcfDenials(h.gdprConsent, strict)
		if bad {
			d.Reasons.Add(ReasonMalformedTCF)
		}
		deny(types, SourceTCF)
	}
}
