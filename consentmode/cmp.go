package consentmode

// CMPFormat is the format of a CMP cookie.
type CMPFormat uint8

// CMP cookie formats.
const (
	CMPFormatKV   CMPFormat = iota // key/value pairs, separators configurable (OneTrust, Cookiebot, CookieYes)
	CMPFormatJSON                  // a JSON object, a dotted path per type (Klaro)
	CMPFormatTCF                   // an IAB TC string (euconsent-v2)
)

var cmpFormatNames = [...]string{"kv", "json", "tcf"}

// String returns the format's config name.
func (f CMPFormat) String() string {
	if int(f) < len(cmpFormatNames) {
		return cmpFormatNames[f]
	}
	return "unknown"
}

// ParseCMPFormat returns the format with the given config name.
func ParseCMPFormat(s string) (CMPFormat, bool) {
	for i, n := range cmpFormatNames {
		if n == s {
			return CMPFormat(i), true
		}
	}
	return 0, false
}

// CMPCookie maps a consent management platform's cookie to consent types.
// It is a deny-only input: it can lower what a hit claims, never raise it.
type CMPCookie struct {
	// Name is the cookie name ("OptanonConsent", "euconsent-v2").
	Name   string
	Format CMPFormat
	// Keys names, per consent type, the key (kv) or dotted path (json)
	// holding that type's state. Empty: the cookie says nothing about it.
	// Unused for tcf, which follows Google's TCF mapping.
	Keys [NumTypes]string
	// Granted and Denied list the values (compared without case, quotes
	// and spaces) that mean granted and denied. A value in neither list is
	// malformed and denies its type.
	Granted, Denied []string
	// PairSeparators and KVSeparators are the bytes that separate pairs
	// and a key from its value (kv format). The cookie value is
	// percent-decoded first, so nested lists such as OneTrust's
	// "groups=C0001:1,C0002:0" are read with pairs "&," and kv "=:".
	PairSeparators, KVSeparators string
	// Required makes a missing cookie deny every mapped type: without the
	// CMP's record there is no consent.
	Required bool
}

// cookieValue returns the value of the named cookie in a Cookie header, or false.
func cookieValue(header []byte, name string) ([]byte, bool) {
	for v := range cookieValues(header, name) {
		return v, true
	}
	return nil, false
}

// cookiePieces yields each non-empty "name=value" piece of a Cookie
// header with its name. The slices alias header.
func cookiePieces(header []byte) func(yield func(piece, name []byte) bool) {
	return func(yield func(piece, name []byte) bool) {
		for len(header) > 0 {
			var piece []byte
			piece, header, _ = cutByte(header, ';')
			for len(piece) > 0 && (piece[0] == ' ' || piece[0] == '\t') {
				piece = piece[1:]
			}
			if len(piece) == 0 {
				continue
			}
			name, _, _ := cutByte(piece, '=')
			if !yield(piece, name) {
				return
			}
		}
	}
}

// cookieValues yields the value of every cookie of the name (a browser
// sends one per path and domain that matches).
func cookieValues(header []byte, name string) func(yield func([]byte) bool) {
	return func(yield func([]byte) bool) {
		for piece, k := range cookiePieces(header) {
			if string(k) == name && !yield(piece[min(len(k)+1, len(piece)):]) {
				return
			}
		}
	}
}

// cmpResult is what a CMP cookie says about each type.
type cmpResult struct {
	deny      [NumTypes]bool
	malformed bool
}

// readCMPCookie evaluates a mapping against the cookie header: every
// cookie of the name counts, a denial in any wins. strict is the region's
// tcf_strict switch (tcf format); scratch is working space.
func readCMPCookie(c *CMPCookie, header []byte, strict bool, scratch *[]byte) cmpResult {
	var r cmpResult
	found := false
	for raw := range cookieValues(header, c.Name) {
		found = true
		one := readCMPValue(c, raw, strict, scratch)
		for t := range r.deny {
			r.deny[t] = r.deny[t] || one.deny[t]
		}
		r.malformed = r.malformed || one.malformed
	}
	if !found && c.Required {
		r.deny = c.mapped(strict)
	}
	return r
}

// mapped returns the types a mapping speaks for.
func (c *CMPCookie) mapped(strict bool) (types [NumTypes]bool) {
	if c.Format == CMPFormatTCF {
		return tcfDenyAll(strict)
	}
	for t, k := range c.Keys {
		types[t] = k != ""
	}
	return types
}

// readCMPValue evaluates one cookie value.
func readCMPValue(c *CMPCookie, raw []byte, strict bool, scratch *[]byte) cmpResult {
	var r cmpResult
	if c.Format == CMPFormatTCF {
		r.deny, r.malformed = tcfDenials(raw, strict)
		return r
	}
	*scratch, _ = appendUnescape((*scratch)[:0], raw)
	val := *scratch
	if c.Format == CMPFormatJSON && !jsonValid(val) {
		r.malformed = true
		r.deny = c.mapped(strict)
		return r
	}
	for t, key := range c.Keys {
		if key == "" {
			continue
		}
		var v []byte
		var found bool
		if c.Format == CMPFormatJSON {
			v = jsonLookup(val, key)
			found = v != nil
		} else {
			v, found = kvLookup(val, key, c.PairSeparators, c.KVSeparators)
		}
		if !found {
			continue
		}
		switch {
		case valueIn(v, c.Denied):
			r.deny[t] = true
		case valueIn(v, c.Granted):
		default:
			r.deny[t] = true
			r.malformed = true
		}
	}
	return r
}

// kvLookup finds key in a list of pairs split at any byte of pairSeps,
// each split at the first byte of kvSeps.
func kvLookup(b []byte, key, pairSeps, kvSeps string) ([]byte, bool) {
	if pairSeps == "" {
		pairSeps = "&"
	}
	if kvSeps == "" {
		kvSeps = "="
	}
	for len(b) > 0 {
		end := indexAny(b, pairSeps)
		piece := b
		if end >= 0 {
			piece, b = b[:end], b[end+1:]
		} else {
			b = nil
		}
		// The key is what stands between the last two separators, so a
		// nested "groups=C0002:1" reads as C0002 = 1.
		sep := lastIndexAny(piece, kvSeps)
		if sep < 0 {
			continue
		}
		k := piece[:sep]
		if prev := lastIndexAny(k, kvSeps); prev >= 0 {
			k = k[prev+1:]
		}
		if string(trimQuotes(k)) == key {
			return piece[sep+1:], true
		}
	}
	return nil, false
}

func lastIndexAny(b []byte, chars string) int {
	for i := len(b) - 1; i >= 0; i-- {
		for j := 0; j < len(chars); j++ {
			if b[i] == chars[j] {
				return i
			}
		}
	}
	return -1
}

func indexAny(b []byte, chars string) int {
	for i, c := range b {
		for j := 0; j < len(chars); j++ {
			if c == chars[j] {
				return i
			}
		}
	}
	return -1
}

func trimQuotes(b []byte) []byte {
	for len(b) > 0 && (b[0] == ' ' || b[0] == '"' || b[0] == '\'' || b[0] == '{' || b[0] == '}') {
		b = b[1:]
	}
	for len(b) > 0 && (b[len(b)-1] == ' ' || b[len(b)-1] == '"' || b[len(b)-1] == '\'' || b[len(b)-1] == '{' || b[len(b)-1] == '}') {
		b = b[:len(b)-1]
	}
	return b
}

// valueIn reports whether v, without quotes, spaces and case, is in list.
func valueIn(v []byte, list []string) bool {
	v = trimQuotes(v)
	for _, s := range list {
		if len(s) == len(v) && equalFold(v, s) {
			return true
		}
	}
	return false
}

func equalFold(b []byte, s string) bool {
	for i := range b {
		x, y := b[i], s[i]
		if 'A' <= x && x <= 'Z' {
			x += 'a' - 'A'
		}
		if 'A' <= y && y <= 'Z' {
			y += 'a' - 'A'
		}
		if x != y {
			return false
		}
	}
	return true
}
