package consentmode

import (
	"bytes"
	"encoding/base64"
)

// Google's cross-domain linker travels as a parameter _gl, in a page URL
// or wherever a URL is copied: "_gl=1*<checksum>*<name>*<value>*…". Each
// value is a first-party cookie of the visitor, URL-safe base64 with '.'
// as padding: _ga is the client id, _gcl_aw the stored click id. The
// checksum covers every part, so a linker is kept whole or not at all.

// LinkerPart is one row of the linker table: a part of the _gl linker, the
// storage consent that owns it and, for stored click information, the
// plain click-id parameter that carries the same click on a cookieless hit.
type LinkerPart struct {
	Name  string // exact, or a prefix ending in '*' ("_ga_*")
	Owner Type
	Click string // "gclid", "dclid", "gbraid", "wbraid"; "" for none
	Why   string
}

// LinkerParts is the linker table. A part not listed here is owned by
// both storage types (fail closed): it is allowed only when both are granted.
var LinkerParts = []LinkerPart{
	{"_ga", AnalyticsStorage, "", "client id (the _ga cookie)"},
	{"_ga_*", AnalyticsStorage, "", "session of a GA4 property (_ga_<id>)"},
	{"_fplc", AnalyticsStorage, "", "first-party linker cookie of server-side tagging (FPLC)"},
	{"_gcl_aw", AdStorage, "gclid", "stored Google Ads click (_gcl_aw)"},
	{"_gcl_dc", AdStorage, "dclid", "stored Campaign Manager click (_gcl_dc)"},
	{"_gcl_gb", AdStorage, "gbraid", "stored app-campaign click (_gcl_gb)"},
	{"_gcl_ag", AdStorage, "wbraid", "stored web-to-app click (_gcl_ag)"},
	{"_gcl_gs", AdStorage, "", "stored click state (_gcl_gs)"},
}

// linkerPart returns the row of LinkerParts for a part name, or nil.
func linkerPart(name []byte) *LinkerPart {
	for i := range LinkerParts {
		if matchName(LinkerParts[i].Name, name) {
			return &LinkerParts[i]
		}
	}
	return nil
}

// isLinkerChar accepts the characters of a linker value: the URL-safe
// base64 alphabet, '.' (its padding) and '*' (the separator).
func isLinkerChar(c byte) bool {
	return 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '*' || c == '.' || c == '_' || c == '-'
}

// linkerAllowed reports whether every part of a decoded linker value may
// travel under st. A value that is not a linker ("1*<checksum>" and pairs)
// is judged as an unknown part.
func linkerAllowed(v []byte, st *State) bool {
	both := st.Granted(AdStorage) && st.Granted(AnalyticsStorage)
	version, rest, ok := cutByte(v, '*')
	if !ok || string(version) != "1" {
		return both
	}
	_, rest, ok = cutByte(rest, '*') // checksum
	if !ok || len(rest) == 0 {
		return both // no parts: judged like an unknown one
	}
	for len(rest) > 0 {
		var name []byte
		name, rest, ok = cutByte(rest, '*')
		if !ok {
			return both // a name without a value
		}
		_, rest, _ = cutByte(rest, '*')
		lp := linkerPart(name)
		if lp == nil {
			if !both {
				return false
			}
			continue
		}
		if !st.Granted(lp.Owner) {
			return false
		}
	}
	return true
}

// linkerClicks calls yield with each plain click-id parameter a decoded
// linker value carries and its click id: the id of "GCL.<time>.<id>" in
// the part's base64 value. Parts that do not decode to that shape, or
// whose id is not plain ([A-Za-z0-9_-], at most maxClickID bytes), yield
// nothing. buf is working space of at least 2*maxClickID bytes; the id
// lives in it and is valid only during the call.
func linkerClicks(v, buf []byte, yield func(param string, id []byte)) {
	if version, rest, ok := cutByte(v, '*'); ok && string(version) == "1" {
		if _, rest, ok = cutByte(rest, '*'); ok {
			for len(rest) > 0 {
				var name, val []byte
				name, rest, _ = cutByte(rest, '*')
				val, rest, _ = cutByte(rest, '*')
				if lp := linkerPart(name); lp != nil && lp.Click != "" {
					if id := clickID(buf, val); id != nil {
						yield(lp.Click, id)
					}
				}
			}
		}
	}
}

// maxClickID bounds a click id taken out of a linker. Real gclids are
// about 100 characters; a longer value is dropped with the linker.
const maxClickID = 256

// clickID decodes a linker part's value into buf and returns its click id,
// or nil.
func clickID(buf, val []byte) []byte {
	for len(val) > 0 && val[len(val)-1] == '.' {
		val = val[:len(val)-1]
	}
	if base64.RawURLEncoding.DecodedLen(len(val)) > len(buf) {
		return nil
	}
	n, err := base64.RawURLEncoding.Decode(buf, val)
	if err != nil {
		return nil
	}
	// "GCL.<time>.<id>"
	prefix, rest, ok := cutByte(buf[:n], '.')
	if !ok || string(prefix) != "GCL" {
		return nil
	}
	_, id, ok := cutByte(rest, '.')
	if !ok || len(id) == 0 || len(id) > maxClickID {
		return nil
	}
	for _, c := range id {
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '_' || c == '-') {
			return nil
		}
	}
	return id
}

// layeredChar returns the character at b[i] decoded through up to depth
// layers of percent-encoding, however they are nested ("%253D" and
// "%25%33%44" are both '='), and how many bytes of b it spans. A '%'
// that starts no escape is itself.
func layeredChar(b []byte, i, depth int) (c byte, n int) {
	c, n = b[i], 1
	for c == '%' && depth > 0 && i+n < len(b) {
		hi, n1 := layeredChar(b, i+n, depth-1)
		if i+n+n1 >= len(b) {
			break
		}
		lo, n2 := layeredChar(b, i+n+n1, depth-1)
		x, ok1 := HexDigit(hi)
		y, ok2 := HexDigit(lo)
		if !ok1 || !ok2 {
			break
		}
		c, n = x<<4|y, n+n1+n2
		depth--
	}
	return c, n
}

// linkerDepth is how many layers of percent-encoding the linker scan
// looks through: a URL in a parameter of a URL in a page URL is three.
const linkerDepth = 4

// linkerAt reports whether "_gl=" starts at b[i], at any depth of
// encoding, and returns where its value starts and the raw bytes of its '='.
func linkerAt(b []byte, i int) (valStart int, eq []byte, ok bool) {
	j := i
	for _, want := range [...]byte{'_', 'g', 'l'} {
		if j >= len(b) {
			return 0, nil, false
		}
		c, n := layeredChar(b, j, linkerDepth)
		if c != want {
			return 0, nil, false
		}
		j += n
	}
	if j >= len(b) {
		return 0, nil, false
	}
	c, n := layeredChar(b, j, linkerDepth)
	if c != '=' {
		return 0, nil, false
	}
	return j + n, b[j : j+n], true
}

// ampFor returns the '&' written at the depth of the raw '=' eq ("=",
// "%3D", "%253D", ...), or nil when eq is not of that plain shape.
func ampFor(dst, eq []byte) []byte {
	if len(eq) == 1 {
		return append(dst, '&')
	}
	if len(eq) < 3 || eq[0] != '%' || !equalFold(eq[len(eq)-2:], "3d") {
		return nil
	}
	mid := eq[1 : len(eq)-2]
	for k := 0; k+1 < len(mid); k += 2 {
		if mid[k] != '2' || mid[k+1] != '5' {
			return nil
		}
	}
	if len(mid)%2 != 0 {
		return nil
	}
	dst = append(dst, eq[:len(eq)-2]...)
	return append(dst, '2', '6')
}

// mayHoldLinker is the cheap test before a scan: a linker needs a '_',
// plain or escaped.
func mayHoldLinker(v []byte) bool {
	return bytes.IndexByte(v, '_') >= 0 || bytes.IndexByte(v, '%') >= 0
}

// linkers returns v with every _gl linker inside it (at any depth of
// encoding) judged: kept whole when consent allows every part, otherwise
// removed, its click ids written in its place as plain parameters at the
// same depth where the hit may carry them (scope's click-id rules). The
// result is v itself when nothing changed, else it lives in rw.w.linked.
func (rw *rewriter) linkers(v []byte, scope Scope) []byte {
	if !mayHoldLinker(v) {
		return v
	}
	w := rw.w
	out := w.linked[:0]
	copied := 0 // v[:copied] has been dealt with (written to out or dropped)
	changed := false
	// The character before i, as decoded, where it starts and its raw length.
	prevStart, prevN, prevC := -1, 0, byte(0)
	for i := 0; i < len(v); {
		if c := v[i]; c == '_' || c == '%' {
			if vs, eq, ok := linkerAt(v, i); ok {
				val := w.linker[:0]
				e := vs
				for e < len(v) {
					c, n := layeredChar(v, e, linkerDepth)
					if !isLinkerChar(c) {
						break
					}
					val = append(val, c)
					e += n
				}
				w.linker = val
				if linkerAllowed(val, &rw.d.Consent) {
					prevStart, prevN, prevC = -1, 0, 'x'
					i = e
					continue
				}
				changed = true
				rw.removed(fieldLinker, noReason)
				// Click ids the hit may carry take the linker's place.
				c0, start := copied, i
				out = append(out, v[c0:i]...)
				before := len(out)
				out = rw.linkerClickParams(out, val, eq, scope, 0)
				copied, i = e, e
				if len(out) > before {
					prevStart, prevN, prevC = -1, 0, 'x'
					continue
				}
				// None: the linker goes with one neighbouring delimiter.
				out = out[:before-(start-c0)]
				var next byte
				nextN := 0
				if e < len(v) {
					next, nextN = layeredChar(v, e, linkerDepth)
				}
				switch {
				case next == '&':
					copied, i = e+nextN, e+nextN // the '&' after goes; the one before stays prev
				case prevC == '&' || (prevC == '?' && (e == len(v) || next == '#')):
					if prevStart >= c0 {
						start = prevStart
					} else { // the delimiter was written already: it ends out
						out = out[:len(out)-prevN]
					}
					prevStart, prevN, prevC = -1, 0, 0
				default:
					prevStart, prevN, prevC = -1, 0, 0
				}
				out = append(out, v[c0:start]...)
				continue
			}
		}
		c, n := layeredChar(v, i, linkerDepth)
		prevStart, prevN, prevC = i, n, c
		i += n
	}
	if !changed {
		return v
	}
	out = append(out, v[copied:]...)
	if rw.deniedLinker(out) {
		// Taking a linker out joined what was around it into another one
		// ("_gl_gl%3D%3D0" less its inner "_gl%3D" reads "_gl%3D0"):
		// the value goes whole rather than a second pass that could do it
		// again (fails closed; FuzzLinkers found it).
		out = out[:0]
	}
	w.linked = out
	return out
}

// deniedLinker reports whether v holds a linker the hit may not carry.
func (rw *rewriter) deniedLinker(v []byte) bool {
	if !mayHoldLinker(v) {
		return false
	}
	w := rw.w
	for i := 0; i < len(v); i++ {
		if c := v[i]; c != '_' && c != '%' {
			continue
		}
		vs, _, ok := linkerAt(v, i)
		if !ok {
			continue
		}
		val := w.linker[:0]
		for e := vs; e < len(v); {
			c, n := layeredChar(v, e, linkerDepth)
			if !isLinkerChar(c) {
				break
			}
			val = append(val, c)
			e += n
		}
		w.linker = val
		if !linkerAllowed(val, &rw.d.Consent) {
			return true
		}
	}
	return false
}

// linkerClickParams appends, for each click id of a removed linker that
// the hit may carry, "<param><eq><id>", joined by '&' at eq's depth.
// sep, when not 0, joins them instead (a top-level linker in a list).
func (rw *rewriter) linkerClickParams(dst, val, eq []byte, scope Scope, sep byte) []byte {
	first := true
	if cap(rw.w.click) < 2*maxClickID {
		rw.w.click = make([]byte, 2*maxClickID)
	}
	linkerClicks(val, rw.w.click[:2*maxClickID], func(param string, id []byte) {
		op, field := catalogue.lookup(scope, rw.in.Family, []byte(param), &rw.d.Consent, rw.p)
		if op == OpDrop {
			rw.removed(field, ReasonClickIDsRedacted)
			return
		}
		if !first && sep != 0 {
			dst = append(dst, sep)
		} else if !first {
			var buf [32]byte // an '&' at depth 4 is 11 bytes
			amp := ampFor(buf[:0], eq)
			if amp == nil {
				return // an '=' of odd shape: the first click id only
			}
			dst = append(dst, amp...)
		}
		first = false
		dst = append(dst, param...)
		dst = append(dst, eq...)
		dst = append(dst, id...)
	})
	return dst
}

// linkerParam handles a top-level _gl parameter of the hit. done is false
// when the linker may stay: the caller then treats it as any other value.
// Otherwise the linker is removed and its click ids that the hit may carry
// take its place (kept reports whether anything was written).
func (rw *rewriter) linkerParam(dst, v []byte) (out []byte, kept, done bool) {
	val := rw.w.linker[:0]
	for i := 0; i < len(v); {
		c, n := layeredChar(v, i, linkerDepth)
		val = append(val, c)
		i += n
	}
	rw.w.linker = val
	if linkerAllowed(val, &rw.d.Consent) {
		return dst, true, false
	}
	rw.removed(fieldLinker, noReason)
	mark := len(dst)
	dst = rw.linkerClickParams(dst, val, []byte{'='}, InHit, rw.sep)
	return dst, len(dst) > mark, true
}
