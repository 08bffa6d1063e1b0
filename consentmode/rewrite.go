package consentmode

import "net/netip"

// rewriter rewrites one hit according to its decision. It writes into the
// Work buffers only.
type rewriter struct {
	d   *Decision
	p   *Policy
	w   *Work
	h   *hit
	in  *Input
	eph ephemeralMAC

	seenGCS, seenGCD, seenNPA, seenRDP bool
	sep                                byte // separator of the list being rewritten
}

// rewrite fills w with the hit as it may leave.
func rewrite(d *Decision, in *Input, p *Policy, w *Work, h *hit) {
	rw := rewriter{d: d, p: p, w: w, h: h, in: in}
	switch in.Family {
	case FamilyFloodlight:
		w.Matrix = rw.list(w.Matrix, in.Matrix, ';')
		w.Matrix = rw.addWriteBack(w.Matrix, ';')
		w.Query = rw.list(w.Query, in.Query, '&')
	default:
		w.Query = rw.list(w.Query, in.Query, '&')
		w.Query = rw.addWriteBack(w.Query, '&')
		if !in.TagGateway && (in.Family == FamilyGA4 || in.Family == FamilyUA) && in.ClientIP.IsValid() {
			w.Query = rw.addIP(w.Query)
		}
	}
	if len(in.Body) > 0 {
		switch in.Family {
		case FamilyMP:
			w.Body = rw.mpBody(w.Body, in.Body)
		case FamilyScript:
			w.Body = append(w.Body, in.Body...)
		default:
			// GA4 batches one event per line; other hits' bodies are
			// parameter lists too. Either way every pair is scrubbed.
			w.Body = rw.lines(w.Body, in.Body)
		}
	}
	w.Cookie = rw.cookies(w.Cookie, in.Cookie)
}

// list rewrites a sep-separated parameter list. Pieces are kept in order
// and byte for byte unless a rule changes them; empty pieces stay.
func (rw *rewriter) list(dst, src []byte, sep byte) []byte {
	rw.sep = sep
	first := true
	for len(src) > 0 || !first {
		var piece []byte
		var more bool
		piece, src, more = cutByte(src, sep)
		start := len(dst)
		if !first {
			dst = append(dst, sep)
		}
		var kept bool
		dst, kept = rw.pair(dst, piece)
		if !kept {
			dst = dst[:start]
		} else {
			first = false
		}
		if !more {
			break
		}
		if first && len(src) == 0 {
			break
		}
	}
	return dst
}

// lines rewrites a GA4 batch body line by line, keeping each line's end (LF or CRLF).
func (rw *rewriter) lines(dst, body []byte) []byte {
	for len(body) > 0 {
		line, end, rest := cutLine(body)
		dst = rw.list(dst, line, '&')
		dst = append(dst, end...)
		body = rest
	}
	return dst
}

// pair appends one parameter as it may leave and reports whether it was kept.
func (rw *rewriter) pair(dst, piece []byte) ([]byte, bool) {
	if len(piece) == 0 {
		return dst, true
	}
	k, v, hasEq := cutByte(piece, '=')
	nk := normKey(&rw.w.key, k)
	if mayHoldAt(k) && holdsEmail(k, &rw.w.emailLayers) {
		rw.removed(fieldEmail, ReasonEmailRedacted)
		return dst, false
	}
	op, field := catalogue.lookup(InHit, rw.in.Family, nk, &rw.d.Consent, rw.p)
	switch op {
	case OpDrop:
		rw.removed(field, clickReason(field))
		return dst, false
	case OpEphemeral:
		if rw.h.tagIDs {
			// cookieless.client_id: tag, and the id is provably not the
			// stored one (decide.go, tagIDsUsable): the tag's own value.
			dst = append(append(dst, k...), '=')
			return append(dst, v...), true
		}
		rw.d.Removed.Add(field)
		dst = append(append(dst, k...), '=')
		return rw.ephemeralValue(dst, nk), true
	case OpLinker:
		if d, kept, done := rw.linkerParam(dst, v); done {
			return d, kept
		}
	case OpWriteBack:
		if string(nk) == "gcu" && rw.d.Lowered() {
			rw.removed(field, noReason) // the update the tag reports is not the state that applies
			return dst, false
		}
		return rw.writeBack(dst, k, nk, v, hasEq), true
	}
	dst = append(dst, k...)
	if !hasEq {
		return dst, true
	}
	dst = append(dst, '=')
	// A linker anywhere in a value (a page URL, a URL inside one, any
	// text) is judged before the rest.
	v = rw.linkers(v, InURL)
	if op == OpScrubURL || looksLikeURL(v) {
		// Every URL-valued parameter (an ep.* holding a page URL, say)
		// gets the in-URL rules of dl.
		return rw.scrubURL(dst, v), true
	}
	return rw.scrubText(dst, v), true
}

// looksLikeURL reports whether a parameter value is an absolute http(s)
// URL, plain or percent-encoded once or twice ("https%3A%2F%2F",
// "https%253A%252F%252F"); ASCII case is ignored.
func looksLikeURL(v []byte) bool {
	if len(v) < 7 || (v[0]|0x20) != 'h' || (v[1]|0x20) != 't' || (v[2]|0x20) != 't' || (v[3]|0x20) != 'p' {
		return false
	}
	rest := v[4:]
	if len(rest) > 0 && (rest[0]|0x20) == 's' {
		rest = rest[1:]
	}
	for _, sep := range [...]string{"://", "%3a%2f%2f", "%253a%252f%252f"} {
		if len(rest) >= len(sep) && equalFold(rest[:len(sep)], sep) {
			return true
		}
	}
	return false
}

// removed records a removed field and, when r is not noReason, a reason.
func (rw *rewriter) removed(f Field, r Reason) {
	rw.d.Removed.Add(f)
	if r != noReason {
		rw.d.Reasons.Add(r)
	}
}

// noReason is a Reason value outside the catalogue, meaning "no reason to add".
const noReason = Reason(255)

// clickIDFields are the fields whose removal is a click-id redaction.
var clickIDFields = func() (t [256]bool) {
	for i := range ParamRules {
		if ParamRules[i].When == IfRedaction {
			t[catalogue.byName[ParamRules[i].Name]] = true
		}
	}
	return t
}()

// clickReason returns ReasonClickIDsRedacted for a click-id field, else noReason.
func clickReason(f Field) Reason {
	if clickIDFields[f] {
		return ReasonClickIDsRedacted
	}
	return noReason
}

func (rw *rewriter) ephemeralValue(dst, key []byte) []byte {
	if !rw.eph.done {
		rw.eph.mac = rw.p.ephemeral(rw.in.Day, rw.h.tid, rw.h.pageID, rw.in.Nonce)
		rw.eph.secs = idTime(rw.h.pageID, rw.in.hitTime())
		rw.eph.done = true
	}
	if string(key) == "sid" {
		return appendEphemeralSID(dst, rw.eph.secs)
	}
	return appendEphemeralCID(dst, &rw.eph.mac, rw.eph.secs)
}

// writeBack appends a consent parameter carrying the enforced state.
func (rw *rewriter) writeBack(dst, k, nk, v []byte, hasEq bool) []byte {
	st := &rw.d.Consent
	dst = append(append(dst, k...), '=')
	switch string(nk) {
	case "gcs":
		rw.seenGCS = true
		ad, an, err := ParseGCS(v)
		if err != nil {
			return AppendGCS(dst, st.Value[AdStorage], st.Value[AnalyticsStorage])
		}
		if st.Denied(AdStorage) {
			ad = Denied
		}
		if st.Denied(AnalyticsStorage) {
			an = Denied
		}
		return AppendGCS(dst, ad, an)
	case "gcd":
		rw.seenGCD = true
		if holdsEmail(v, &rw.w.emailLayers) {
			// Garbage around the letters: send a clean gcd of the enforced state.
			rw.removed(fieldEmail, ReasonEmailRedacted)
			return appendGCDState(dst, st)
		}
		var deny [NumTypes]bool
		change := false
		for t := range deny {
			deny[t] = st.Value[t] == Denied
			if off := gcdLetterOffset[t]; deny[t] && off < len(v) && gcdDenyLetter(v[off]) != v[off] {
				change = true
			}
		}
		if change && gcdNoCommand(v) {
			// "No consent command ran" has a tail of its own
			// (13l3l3l3l1): denied letters in it would contradict it.
			// The enforced state goes out as a whole current gcd.
			return appendGCDState(dst, st)
		}
		mark := len(dst)
		dst = appendGCDDenied(dst, v, deny)
		if holdsEmail(dst[mark:], &rw.w.emailLayers) { // a rewritten letter completed an address
			rw.removed(fieldEmail, ReasonEmailRedacted)
			return appendGCDState(dst[:mark], st)
		}
		return dst
	case "npa":
		rw.seenNPA = true
		if st.Denied(AdPersonalization) {
			return append(dst, '1')
		}
	case "rdp":
		rw.seenRDP = true
		if rw.d.OptOut {
			return append(dst, '1')
		}
	case "dma_cps":
		if dmaDenied(st) {
			return append(dst, '-') // no Google service may receive the data
		}
	}
	if !hasEq {
		return dst[:len(dst)-1]
	}
	return rw.scrubText(dst, v)
}

// dmaDenied reports whether dma_cps must say "-" (no Google services):
// ad_user_data or ad_personalization, the two types Consent Mode added for
// the Digital Markets Act, is denied.
func dmaDenied(st *State) bool {
	return st.Denied(AdUserData) || st.Denied(AdPersonalization)
}

// addWriteBack appends the consent parameters the hit lacked: gcs when
// the gateway denied a storage type the hit did not claim denied, a gcd
// stating all four enforced types when the gateway enforced any denial on
// a hit without one (older tags and TCF-only setups send none, and Google
// would otherwise read an implicit grant), npa=1 when ad_personalization
// is denied, rdp=1 after a US opt-out.
func (rw *rewriter) addWriteBack(dst []byte, sep byte) []byte {
	st := &rw.d.Consent
	add := func(dst []byte, kv string) []byte {
		if len(dst) > 0 {
			dst = append(dst, sep)
		}
		return append(dst, kv...)
	}
	if rw.in.Family == FamilyMP {
		return dst
	}
	if !rw.seenGCS && (enforced(rw.d, AdStorage) || enforced(rw.d, AnalyticsStorage)) {
		dst = add(dst, "gcs=")
		dst = AppendGCS(dst, st.Value[AdStorage], st.Value[AnalyticsStorage])
	}
	// h.seenGCD: a gcd anywhere in the hit (a batch line, Floodlight's
	// query after its matrix) is rewritten where it stands; none is added.
	if !rw.seenGCD && !rw.h.seenGCD && anyEnforced(rw.d) {
		dst = add(dst, "gcd=")
		dst = appendGCDState(dst, st)
	}
	if !rw.seenNPA && st.Denied(AdPersonalization) {
		dst = add(dst, "npa=1")
	}
	if !rw.seenRDP && rw.d.OptOut {
		dst = add(dst, "rdp=1")
	}
	return dst
}

// anyEnforced reports whether the gateway denied any type the hit did not claim denied.
func anyEnforced(d *Decision) bool {
	for t := range NumTypes {
		if enforced(d, Type(t)) {
			return true
		}
	}
	return false
}

// enforced reports whether the gateway denied t although the hit did not claim it denied.
func enforced(d *Decision, t Type) bool {
	return d.Consent.Value[t] == Denied && d.Claimed[t] != Denied
}

// addIP appends _uip with the client IP, truncated to /24 or /48 when the
// family's storage type is denied.
func (rw *rewriter) addIP(dst []byte) []byte {
	if len(dst) > 0 {
		dst = append(dst, '&')
	}
	if rw.in.Family == FamilyUA {
		dst = append(dst, "uip="...)
	} else {
		dst = append(dst, "_uip="...)
	}
	return appendEscapeIP(dst, rw.d.SentIP(rw.in.ClientIP))
}

// appendEscapeIP appends ip in query form (IPv6 colons escaped).
func appendEscapeIP(dst []byte, ip netip.Addr) []byte {
	// 64 bytes hold any IPv4 or IPv6 text (at most 45) with a short zone;
	// a longer zone makes AppendTo grow the slice, nothing is cut.
	var buf [64]byte
	return appendEscape(dst, ip.AppendTo(buf[:0]))
}

// TruncateIP returns ip with its host part zeroed: /24 for IPv4, /48 for IPv6.
func TruncateIP(ip netip.Addr) netip.Addr {
	bits := 48
	if ip.Is4() || ip.Is4In6() {
		ip = ip.Unmap()
		bits = 24
	}
	pfx, err := ip.Prefix(bits)
	if err != nil {
		return netip.Addr{}
	}
	return pfx.Addr()
}

// SentIP returns the client IP as it may leave, as _uip or, in tag
// gateway style, as X-Forwarded-For: truncated when TruncateIP says so.
func (d *Decision) SentIP(client netip.Addr) netip.Addr {
	if d.TruncateIP() {
		return TruncateIP(client)
	}
	return client
}

// TruncateIP reports whether the client IP must be truncated before it
// leaves: the storage type that owns the family's identifiers is denied.
func (d *Decision) TruncateIP() bool {
	switch d.Family {
	case FamilyAds, FamilyFloodlight:
		return d.Consent.Denied(AdStorage)
	case FamilyMP:
		return false
	}
	return d.Consent.Denied(AnalyticsStorage) || d.AnonymizeIP
}

// noCookies marks families that never carry cookies: the Measurement
// Protocol is server to server, and scripts need no identifiers.
var noCookies = [numFamilies]bool{FamilyMP: true, FamilyScript: true}

// cookies appends the Cookie header value that may travel: only the
// Google cookies of CookieRules whose owner is granted, and none at all on
// a cookieless hit.
func (rw *rewriter) cookies(dst, src []byte) []byte {
	for piece, name := range cookiePieces(src) {
		switch i := cookieRule(name); {
		case i < 0:
			rw.d.Removed.Add(fieldCookieOther)
		case rw.d.Action == ActionCookieless || !rw.d.Consent.Granted(CookieRules[i].Owner) || noCookies[rw.in.Family]:
			rw.d.Removed.Add(catalogue.cookieField[i])
		case holdsEmail(piece, &rw.w.emailLayers):
			// A Google cookie never holds an address: one that does is
			// not Google's value, and it does not travel.
			rw.d.Removed.Add(catalogue.cookieField[i])
			rw.removed(fieldEmail, ReasonEmailRedacted)
		default:
			dst = appendCookie(dst, piece)
		}
	}
	return dst
}

// scrubText appends a value with e-mail addresses redacted. Values
// without an '@' at any escape depth are copied as they are.
func (rw *rewriter) scrubText(dst, v []byte) []byte {
	if !holdsEmail(v, &rw.w.emailLayers) {
		return append(dst, v...)
	}
	rw.removed(fieldEmail, ReasonEmailRedacted)
	w := rw.w
	w.scratch, _ = appendUnescape(w.scratch[:0], v)
	start := len(w.scratch)
	var found bool
	w.scratch, found = appendRedactEmails(w.scratch, w.scratch[:start])
	red := w.scratch[start:]
	if !found || holdsEmail(red, &w.emailLayers) {
		// Hidden under more than one layer of escaping: give up the value.
		return appendEscape(dst, []byte(redactedText))
	}
	return appendEscapeKeepPlus(dst, red)
}

// appendEscapeKeepPlus is appendEscape for text decoded without turning
// '+' into a space: a '+' goes back as it came.
func appendEscapeKeepPlus(dst, b []byte) []byte {
	for len(b) > 0 {
		before, after, found := cutByte(b, '+')
		dst = appendEscape(dst, before)
		if !found {
			break
		}
		dst = append(dst, '+')
		b = after
	}
	return dst
}

// scrubURL appends a URL-valued parameter with the in-URL rules applied
// (the linker _gl and click ids removed from its query and fragment when
// the state says so) and e-mail addresses redacted. An unchanged value is
// copied byte for byte.
func (rw *rewriter) scrubURL(dst, v []byte) []byte {
	w := rw.w
	w.scratch, _ = appendUnescape(w.scratch[:0], v)
	u := w.scratch
	base, rest, hasQ := cutByte(u, '?')
	var query, frag []byte
	hasF := false
	if hasQ {
		query, frag, hasF = cutByte(rest, '#')
	} else {
		base, frag, hasF = cutByte(base, '#')
	}
	out := w.url[:0]
	changed := false
	if holdsEmail(base, &w.emailLayers) {
		var found bool
		mark := len(out)
		out, found = appendRedactEmails(out, base)
		if !found || holdsEmail(out[mark:], &w.emailLayers) {
			out = append(out[:mark], redactedText...)
		}
		changed = true
		rw.removed(fieldEmail, ReasonEmailRedacted)
	} else {
		out = append(out, base...)
	}
	if hasQ {
		mark := len(out)
		out = append(out, '?')
		var c bool
		out, c = rw.urlParams(out, query)
		if c && len(out) == mark+1 { // every parameter went: no bare '?'
			out = out[:mark]
		}
		changed = changed || c
	}
	if hasF {
		mark := len(out)
		out = append(out, '#')
		var c bool
		if bytesHas(frag, '=') {
			out, c = rw.urlParams(out, frag)
			if c && len(out) == mark+1 {
				out = out[:mark]
			}
		} else if holdsEmail(frag, &w.emailLayers) {
			out, c = append(out, redactedText...), true
			rw.removed(fieldEmail, ReasonEmailRedacted)
		} else {
			out = append(out, frag...)
		}
		changed = changed || c
	}
	w.url = out
	if !changed {
		return append(dst, v...)
	}
	return appendEscapeKeepPlus(dst, out)
}

func bytesHas(b []byte, c byte) bool {
	for _, x := range b {
		if x == c {
			return true
		}
	}
	return false
}

// urlParams appends the '&'-separated parameters of a URL's query or
// fragment with the in-URL rules applied, and reports whether it changed any.
func (rw *rewriter) urlParams(dst, list []byte) ([]byte, bool) {
	changed := false
	first := true
	for {
		piece, rest, more := cutByte(list, '&')
		list = rest
		k, _, hasEq := cutByte(piece, '=')
		nk := normKey(&rw.w.urlKey, k)
		op, field := catalogue.lookup(InURL, rw.in.Family, nk, &rw.d.Consent, rw.p)
		switch {
		case op == OpDrop:
			rw.removed(field, clickReason(field))
			changed = true
		case holdsEmail(k, &rw.w.emailLayers):
			rw.removed(fieldEmail, ReasonEmailRedacted)
			changed = true
		default:
			if !first {
				dst = append(dst, '&')
			}
			first = false
			if hasEq && holdsEmail(piece[len(k)+1:], &rw.w.emailLayers) {
				dst = append(append(dst, k...), "=redacted"...)
				rw.removed(fieldEmail, ReasonEmailRedacted)
				changed = true
			} else {
				dst = append(dst, piece...)
			}
		}
		if !more {
			return dst, changed
		}
	}
}
