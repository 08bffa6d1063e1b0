package consentmode

import "bytes"

// This file holds the byte-level helpers shared by the parsers and the
// rewriter: splitting parameter lists, percent-decoding and -encoding, and
// finding e-mail addresses. None of them allocates when given room.

// cutByte splits b around the first sep. found is false when there is none.
func cutByte(b []byte, sep byte) (before, after []byte, found bool) {
	if i := bytes.IndexByte(b, sep); i >= 0 {
		return b[:i], b[i+1:], true
	}
	return b, nil, false
}

// splitPair splits "key=value" into key and value (value empty without '=').
func splitPair(pair []byte) (key, value []byte) {
	key, value, _ = cutByte(pair, '=')
	return key, value
}

func unhex(c byte) (byte, bool) {
	switch {
	case '0' <= c && c <= '9':
		return c - '0', true
	case 'a' <= c && c <= 'f':
		return c - 'a' + 10, true
	case 'A' <= c && c <= 'F':
		return c - 'A' + 10, true
	}
	return 0, false
}

// appendUnescape appends b with %XX sequences decoded. A '+' stays a '+'
// (so an address like a+b@example.com is seen whole) and a bad escape is
// copied as it is. It reports whether anything was decoded.
func appendUnescape(dst, b []byte) ([]byte, bool) {
	changed := false
	for i := 0; i < len(b); i++ {
		c := b[i]
		if c == '%' && i+2 < len(b) {
			hi, ok1 := unhex(b[i+1])
			lo, ok2 := unhex(b[i+2])
			if ok1 && ok2 {
				dst = append(dst, hi<<4|lo)
				i += 2
				changed = true
				continue
			}
		}
		dst = append(dst, c)
	}
	return dst, changed
}

// needsKeyDecode reports whether a parameter name holds an escape.
func needsKeyDecode(k []byte) bool {
	for _, c := range k {
		if c == '%' {
			return true
		}
	}
	return false
}

// normKey returns the parameter name to match rules against: k itself,
// or k percent-decoded into buf when it holds escapes (so "c%69d" is cid,
// as Google would read it). Keys too long for buf come back as they are:
// they cannot decode to any name in the tables.
func normKey(buf *[64]byte, k []byte) []byte {
	if !needsKeyDecode(k) || len(k) > len(buf) {
		return k
	}
	out, _ := appendUnescape(buf[:0], k)
	return out
}

const upperHex = "0123456789ABCDEF"

// componentSafe marks the bytes encodeURIComponent leaves alone.
var componentSafe = func() (t [256]bool) {
	for c := 'a'; c <= 'z'; c++ {
		t[c] = true
	}
	for c := 'A'; c <= 'Z'; c++ {
		t[c] = true
	}
	for c := '0'; c <= '9'; c++ {
		t[c] = true
	}
	for _, c := range "-_.!~*'()" {
		t[c] = true
	}
	return t
}()

// appendEscape appends b percent-encoded the way gtag encodes values
// (encodeURIComponent).
func appendEscape(dst, b []byte) []byte {
	for _, c := range b {
		if componentSafe[c] {
			dst = append(dst, c)
			continue
		}
		dst = append(dst, '%', upperHex[c>>4], upperHex[c&15])
	}
	return dst
}

// mayHoldAt reports whether b could hold an '@' at any depth of
// percent-encoding. An escape can only build a deeper '@' out of the
// characters '%', '4', '0' and, for those, '2', '5' and '3': the set
// S = {'@', '%', '0', '2', '3', '4', '5'} is closed under "what an escape
// of it is made of". So if b holds no '@' and no escape that decodes into
// S (%40, %25, %30, %32, %33, %34, %35), no decoding of it can, however the
// layers are nested (%2540, %25%34%30, %4%%330, ...). It is the cheap test
// that keeps e-mail scanning off almost every value.
func mayHoldAt(b []byte) bool {
	if bytes.IndexByte(b, '@') >= 0 {
		return true
	}
	for {
		i := bytes.IndexByte(b, '%')
		if i < 0 || i+2 >= len(b) {
			return false
		}
		switch x, y := b[i+1], b[i+2]; x {
		case '4':
			if y == '0' {
				return true
			}
		case '2':
			if y == '5' {
				return true
			}
		case '3':
			if y == '0' || y == '2' || y == '3' || y == '4' || y == '5' {
				return true
			}
		}
		b = b[i+1:]
	}
}

// isLocalChar accepts the characters of an address's local part: RFC 5322
// atext (but the query delimiters '=', '&', '/' and '?') and UTF-8 bytes.
func isLocalChar(c byte) bool {
	switch c {
	case '.', '_', '%', '+', '-', '\'', '~', '!', '#', '$', '*', '^', '`', '{', '}', '|':
		return true
	}
	return 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c >= 0x80
}

func isDomainChar(c byte) bool {
	return 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '.' || c == '-' || c >= 0x80
}

func isAlpha(c byte) bool { return 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' }

// nextEmail finds the first e-mail address in b at or after from and
// returns its bounds, or -1. An address is local@domain.tld with a
// non-empty local part, a dot in the domain and a top-level part of two
// or more letters.
func nextEmail(b []byte, from int) (start, end int) {
	for i := from; i < len(b); i++ {
		if b[i] != '@' {
			continue
		}
		s := i
		for s > from && isLocalChar(b[s-1]) { // never reach back into an earlier match
			s--
		}
		if s == i {
			continue
		}
		e := i + 1
		lastDot := -1
		for e < len(b) && isDomainChar(b[e]) {
			if b[e] == '.' {
				lastDot = e
			}
			e++
		}
		// Trailing dots belong to the sentence, not the domain.
		for e > i+1 && b[e-1] == '.' {
			e--
			if lastDot == e {
				lastDot = -1
				for k := e - 1; k > i; k-- {
					if b[k] == '.' {
						lastDot = k
						break
					}
				}
			}
		}
		if lastDot <= i+1 || e-lastDot-1 < 2 {
			continue
		}
		tldOK := true
		for k := lastDot + 1; k < e; k++ {
			if !isAlpha(b[k]) {
				tldOK = false
				break
			}
		}
		if !tldOK {
			continue
		}
		return s, e
	}
	return -1, -1
}

// redactedText replaces each e-mail address.
const redactedText = "[redacted]"

// appendRedactEmails appends b with every e-mail address replaced by
// redactedText and reports whether it replaced any.
func appendRedactEmails(dst, b []byte) ([]byte, bool) {
	found := false
	for i := 0; i < len(b); {
		s, e := nextEmail(b, i)
		if s < 0 {
			return append(dst, b[i:]...), found
		}
		dst = append(dst, b[i:s]...)
		dst = append(dst, redactedText...)
		found = true
		i = e
	}
	return dst, found
}

// holdsEmail reports whether b holds an e-mail address, looking through
// up to three layers of percent-encoding however they are nested (an
// escaped '%' can hide the '@' of the next layer, as in %25%34%30).
// scratch is working space; it is reset on every call.
func holdsEmail(b []byte, scratch *[]byte) bool {
	if !mayHoldAt(b) {
		return false
	}
	*scratch = (*scratch)[:0]
	cur := b
	for depth := 0; depth < 4; depth++ {
		if s, _ := nextEmail(cur, 0); s >= 0 {
			return true
		}
		if bytes.IndexByte(cur, '%') < 0 {
			return false
		}
		start := len(*scratch)
		var changed bool
		*scratch, changed = appendUnescape(*scratch, cur)
		if !changed {
			return false
		}
		cur = (*scratch)[start:]
	}
	return true // still escaped after four layers: treat as holding one
}
