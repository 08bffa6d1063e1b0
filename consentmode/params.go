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

// HexDigit returns the value of the hexadecimal digit c, or false when c
// is not one. The proxy's path checks use it too.
func HexDigit(c byte) (byte, bool) {
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
			hi, ok1 := HexDigit(b[i+1])
			lo, ok2 := HexDigit(b[i+2])
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
// or k percent-decoded into *buf when it holds escapes (so "c%69d" is cid,
// as Google would read it). Names of any length are decoded: a long,
// fully escaped "up.<name>" must meet the same rule as a short one. The
// result aliases k or *buf and is valid until the next normKey with buf.
func normKey(buf *[]byte, k []byte) []byte {
	if !needsKeyDecode(k) {
		return k
	}
	*buf, _ = appendUnescape((*buf)[:0], k)
	return *buf
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

// maxQuotedLocal bounds how far back the opening quote of a quoted local
// part ("john doe"@…) is looked for: RFC 5321 limits a local part to 64
// octets, so twice that covers every real address. When the quote is
// further back, the local part is taken to start at the bound: the
// address is still found (and redacted), it only loses its oldest bytes.
const maxQuotedLocal = 128

// localStart returns where the local part ending just before the '@' at i
// starts, never before from, or i when there is none. A quoted local part
// ("john doe"@example.com) runs back to its opening quote.
func localStart(b []byte, from, i int) int {
	if i-1 > from && b[i-1] == '"' {
		for k := i - 2; k >= from; k-- {
			if i-k > maxQuotedLocal {
				return k + 1 // no opening quote within the bound: fail closed
			}
			if b[k] == '"' && (k == from || b[k-1] != '\\') {
				if k+1 < i-1 {
					return k
				}
				break
			}
		}
	}
	s := i
	for s > from && isLocalChar(b[s-1]) { // never reach back into an earlier match
		s--
	}
	return s
}

// ipLiteralEnd returns the end of an address literal starting at b[i] ==
// '[' ("[192.0.2.1]", "[IPv6:2001:db8::1]"), or -1. The longest real
// literal ("[IPv6:" and 45 characters) is well under the 64 bytes looked
// at; anything longer is not an address literal.
func ipLiteralEnd(b []byte, i int) int {
	digits := 0
	for k := i + 1; k < len(b) && k-i < 64; k++ {
		c := b[k]
		switch {
		case c == ']':
			if digits == 0 {
				return -1
			}
			return k + 1
		case '0' <= c && c <= '9', 'a' <= c && c <= 'f', 'A' <= c && c <= 'F':
			digits++
		case c == '.' || c == ':' || c == 'v' || c == 'V' || c == 'x' || c == 'X':
		case c == 'I' || c == 'P' || c == 'i' || c == 'p':
		default:
			return -1
		}
	}
	return -1
}

// tldOK accepts the top-level label of a domain: two or more letters,
// a UTF-8 label (internationalised, ".рф"), or a punycode label ("xn--p1ai").
func tldOK(t []byte) bool {
	if len(t) < 2 {
		return false
	}
	if len(t) > 4 && (t[0]|0x20) == 'x' && (t[1]|0x20) == 'n' && t[2] == '-' && t[3] == '-' {
		for _, c := range t[4:] {
			if !isAlpha(c) && (c < '0' || c > '9') && c != '-' {
				return false
			}
		}
		return true
	}
	for _, c := range t {
		if !isAlpha(c) && c < 0x80 {
			return false
		}
	}
	return true
}

// nextEmail finds the first e-mail address in b at or after from and
// returns its bounds, or -1. An address is a non-empty local part (dot
// atoms, UTF-8, or a quoted string), an '@', and either a domain with a
// dot and a top-level label that tldOK accepts (ASCII, UTF-8 or punycode)
// or an address literal in brackets.
func nextEmail(b []byte, from int) (start, end int) {
	for i := from; i < len(b); i++ {
		if b[i] != '@' {
			continue
		}
		s := localStart(b, from, i)
		if s == i {
			continue
		}
		if i+1 < len(b) && b[i+1] == '[' {
			if e := ipLiteralEnd(b, i+1); e > 0 {
				return s, e
			}
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
		if lastDot > i+1 && tldOK(b[lastDot+1:e]) {
			return s, e
		}
		// The domain runs into characters that end no address
		// ("gmail.com-42", "gmail.com1"): the longest valid address
		// inside it is still an address.
		if e = trimmedDomainEnd(b, i, e); e > 0 {
			return s, e
		}
	}
	return -1, -1
}

// trimmedDomainEnd returns the end of the longest domain that starts
// after the '@' at i, lies within b[i+1:end] and ends in a top-level
// label tldOK accepts, cut from the front of a label; or -1. Each label
// is looked at once, from the last: the work is linear in the domain.
func trimmedDomainEnd(b []byte, i, end int) int {
	labelEnd := end
	for d := end - 1; d > i+1; d-- {
		if b[d] != '.' {
			continue
		}
		if b[d-1] != '.' {
			label := b[d+1 : labelEnd]
			n := 0
			for n < len(label) && (isAlpha(label[n]) || label[n] >= 0x80) {
				n++
			}
			if n >= 2 {
				return d + 1 + n
			}
		}
		labelEnd = d
	}
	return -1
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

// RedactEmails appends v to dst with every e-mail address replaced by
// "[redacted]" and reports whether v held one, at any depth of
// percent-encoding. An address that plain redaction cannot cut out (it
// is escaped) takes the whole value with it: dst gets "[redacted]". It is
// for bytes outside the parameter lists Decide rewrites, such as request
// headers. v is not kept; the result is valid until the next call with w.
func (w *Work) RedactEmails(dst, v []byte) ([]byte, bool) {
	if !holdsEmail(v, &w.emailLayers) {
		return append(dst, v...), false
	}
	mark := len(dst)
	dst, _ = appendRedactEmails(dst, v)
	if holdsEmail(dst[mark:], &w.emailLayers) {
		dst = append(dst[:mark], redactedText...)
	}
	return dst, true
}
