package consentmode

// Measurement Protocol bodies are JSON objects. Decide reads the consent
// object (ad_user_data, ad_personalization: "GRANTED" or "DENIED"); the
// rewrite drops the top-level members the rule table removes, writes the
// enforced state back into the consent object and redacts e-mail
// addresses in every string.
//
// The [64]byte key buffers below let member names be decoded without
// allocating. They are a starting capacity, not a limit: jsonUnquote
// appends, so a longer name is decoded in full (on the heap) and matched
// like any other.

// scanMP validates the body and records its consent claims. It reports
// false for anything but a valid JSON object.
func scanMP(h *hit, body []byte) bool {
	if !jsonValid(body) {
		return false
	}
	isObject := false
	var kb [64]byte
	jsonMembers(body, func(m jsonMember) bool {
		isObject = true
		if string(jsonUnquote(kb[:0], m.key)) == "consent" {
			h.seenMP = true
			scanMPConsent(h, m.value)
		}
		return true
	})
	s := jsonScanner{b: body}
	s.ws()
	return isObject || (s.i < len(body) && body[s.i] == '{')
}

func scanMPConsent(h *hit, obj []byte) {
	var kb [64]byte
	if len(obj) == 0 || obj[0] != '{' {
		h.badMP = true
		h.mp[AdUserData], h.mp[AdPersonalization] = Denied, Denied
		return
	}
	jsonMembers(obj, func(m jsonMember) bool {
		var t Type
		switch string(jsonUnquote(kb[:0], m.key)) {
		case "ad_user_data":
			t = AdUserData
		case "ad_personalization":
			t = AdPersonalization
		default:
			return true
		}
		switch string(m.value) {
		case `"GRANTED"`:
			mergeValue(&h.mp[t], Granted)
		case `"DENIED"`:
			mergeValue(&h.mp[t], Denied)
		default:
			h.badMP = true
			mergeValue(&h.mp[t], Denied)
		}
		return true
	})
}

// mpBody appends the rewritten Measurement Protocol body.
func (rw *rewriter) mpBody(dst, body []byte) []byte {
	st := &rw.d.Consent
	dst = append(dst, '{')
	n := 0
	sawConsent := false
	var kb [64]byte
	jsonMembers(body, func(m jsonMember) bool {
		key := jsonUnquote(kb[:0], m.key)
		op, field := catalogue.lookup(InHit, FamilyMP, key, st, rw.p)
		if op == OpDrop {
			rw.d.Removed.Add(field)
			return true
		}
		if n > 0 {
			dst = append(dst, ',')
		}
		n++
		dst = rw.jsonRedacted(dst, m.key)
		dst = append(dst, ':')
		if string(key) == "consent" {
			sawConsent = true
			obj := m.value
			if len(obj) == 0 || obj[0] != '{' { // not an object: ours replaces it
				obj = []byte("{}")
			}
			dst = rw.mpConsent(dst, obj)
			return true
		}
		dst = rw.jsonRedacted(dst, m.value)
		return true
	})
	if !sawConsent && (st.Denied(AdUserData) || st.Denied(AdPersonalization)) {
		if n > 0 {
			dst = append(dst, ',')
		}
		dst = append(dst, `"consent":`...)
		dst = rw.mpConsent(dst, []byte("{}"))
	}
	return append(dst, '}')
}

// mpConsent appends the consent object with DENIED written for each ad
// data type the gateway denied.
func (rw *rewriter) mpConsent(dst, obj []byte) []byte {
	st := &rw.d.Consent
	dst = append(dst, '{')
	n := 0
	var seen [NumTypes]bool
	var kb [64]byte
	jsonMembers(obj, func(m jsonMember) bool {
		if n > 0 {
			dst = append(dst, ',')
		}
		n++
		dst = append(append(dst, m.key...), ':')
		t := Type(255)
		switch string(jsonUnquote(kb[:0], m.key)) {
		case "ad_user_data":
			t = AdUserData
		case "ad_personalization":
			t = AdPersonalization
		}
		if t < NumTypes {
			seen[t] = true
			if st.Denied(t) {
				dst = append(dst, `"DENIED"`...)
				return true
			}
		}
		dst = rw.jsonRedacted(dst, m.value)
		return true
	})
	for _, t := range [...]Type{AdUserData, AdPersonalization} {
		if !seen[t] && st.Denied(t) {
			if n > 0 {
				dst = append(dst, ',')
			}
			n++
			dst = append(append(append(dst, '"'), t.String()...), `":"DENIED"`...)
		}
	}
	return append(dst, '}')
}

// jsonRedacted appends the valid JSON value v with every string that
// holds an e-mail address replaced by "[redacted]".
func (rw *rewriter) jsonRedacted(dst, v []byte) []byte {
	for i := 0; i < len(v); {
		if v[i] != '"' {
			dst = append(dst, v[i])
			i++
			continue
		}
		s := jsonScanner{b: v, i: i}
		if !s.str() {
			return append(dst, v[i:]...)
		}
		tok := v[i:s.i]
		rw.w.scratch = jsonUnquote(rw.w.scratch[:0], tok)
		if holdsEmail(rw.w.scratch, &rw.w.emailLayers) || holdsEmail(tok, &rw.w.emailLayers) {
			rw.removed(fieldEmail, ReasonEmailRedacted)
			dst = append(dst, `"`+redactedText+`"`...)
		} else {
			dst = append(dst, tok...)
		}
		i = s.i
	}
	return dst
}
