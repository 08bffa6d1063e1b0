package consentmode

// signalRefs holds the raw optional consent signals a hit carries. The
// slices borrow the input.
type signalRefs struct {
	gdpr, gdprConsent, usPrivacy, gpp, gppSID []byte
	seenGDPR, seenGDPRConsent, seenUSPrivacy  bool
	seenGPP                                   bool
}

// note records k=v when k is one of the optional signals; the first
// occurrence wins.
func (s *signalRefs) note(k, v []byte) {
	switch string(k) {
	case "gdpr":
		if !s.seenGDPR {
			s.gdpr, s.seenGDPR = v, true
		}
	case "gdpr_consent":
		if !s.seenGDPRConsent {
			s.gdprConsent, s.seenGDPRConsent = v, true
		}
	case "us_privacy":
		if !s.seenUSPrivacy {
			s.usPrivacy, s.seenUSPrivacy = v, true
		}
	case "gpp":
		if !s.seenGPP {
			s.gpp, s.seenGPP = v, true
		}
	case "gpp_sid":
		if s.gppSID == nil {
			s.gppSID = v
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
			var r cmpResult
			if c.Format == CMPFormatTCF {
				r = readTCFCookie(c, in.Cookie, rule.TCFStrict)
			} else {
				r = readCMPCookie(c, in.Cookie, &w.scratch)
			}
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
	optOut := SourceNone
	if rule.Signals.Has(SignalGPC) && in.GPC {
		optOut = SourceGPC
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
