package consentmode

// A small JSON scanner for Measurement Protocol bodies and JSON CMP
// cookies: it validates (RFC 8259), finds members, decodes keys, and
// copies a document while dropping top-level members and redacting e-mail
// addresses in strings. It never allocates beyond the buffers it is given
// and never recurses deeper than maxJSONDepth.

// maxJSONDepth bounds nesting (and so the scanner's recursion). Real
// Measurement Protocol bodies and CMP cookies nest a handful of levels. A
// deeper document is invalid: an MP hit is blocked (invalid_body) and a
// JSON CMP cookie denies the types it maps, so depth never lets data by.
const maxJSONDepth = 32

type jsonScanner struct {
	b []byte
	i int
}

func (s *jsonScanner) ws() {
	for s.i < len(s.b) {
		switch s.b[s.i] {
		case ' ', '\t', '\n', '\r':
			s.i++
		default:
			return
		}
	}
}

// value skips one value and reports whether it was valid.
func (s *jsonScanner) value(depth int) bool {
	if depth > maxJSONDepth {
		return false
	}
	s.ws()
	if s.i >= len(s.b) {
		return false
	}
	switch c := s.b[s.i]; {
	case c == '{':
		return s.object(depth)
	case c == '[':
		return s.array(depth)
	case c == '"':
		return s.str()
	case c == 't':
		return s.lit("true")
	case c == 'f':
		return s.lit("false")
	case c == 'n':
		return s.lit("null")
	default:
		return s.number()
	}
}

// object skips an object whose '{' is at s.i, its members one level
// deeper than depth, and reports whether it was valid.
func (s *jsonScanner) object(depth int) bool {
	s.i++
	s.ws()
	if s.i < len(s.b) && s.b[s.i] == '}' {
		s.i++
		return true
	}
	for {
		s.ws()
		if !s.str() {
			return false
		}
		s.ws()
		if s.i >= len(s.b) || s.b[s.i] != ':' {
			return false
		}
		s.i++
		if !s.value(depth + 1) {
			return false
		}
		s.ws()
		if s.i >= len(s.b) {
			return false
		}
		if s.b[s.i] == '}' {
			s.i++
			return true
		}
		if s.b[s.i] != ',' {
			return false
		}
		s.i++
	}
}

// array skips an array whose '[' is at s.i, its elements one level
// deeper than depth, and reports whether it was valid.
func (s *jsonScanner) array(depth int) bool {
	s.i++
	s.ws()
	if s.i < len(s.b) && s.b[s.i] == ']' {
		s.i++
		return true
	}
	for {
		if !s.value(depth + 1) {
			return false
		}
		s.ws()
		if s.i >= len(s.b) {
			return false
		}
		if s.b[s.i] == ']' {
			s.i++
			return true
		}
		if s.b[s.i] != ',' {
			return false
		}
		s.i++
	}
}

func (s *jsonScanner) lit(w string) bool {
	if len(s.b)-s.i < len(w) || string(s.b[s.i:s.i+len(w)]) != w {
		return false
	}
	s.i += len(w)
	return true
}

func (s *jsonScanner) str() bool {
	if s.i >= len(s.b) || s.b[s.i] != '"' {
		return false
	}
	s.i++
	for s.i < len(s.b) {
		c := s.b[s.i]
		switch {
		case c == '"':
			s.i++
			return true
		case c == '\\':
			if s.i+1 >= len(s.b) {
				return false
			}
			switch s.b[s.i+1] {
			case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
				s.i += 2
			case 'u':
				if s.i+5 >= len(s.b) {
					return false
				}
				for k := 2; k < 6; k++ {
					if _, ok := HexDigit(s.b[s.i+k]); !ok {
						return false
					}
				}
				s.i += 6
			default:
				return false
			}
		case c < 0x20:
			return false
		default:
			s.i++
		}
	}
	return false
}

func (s *jsonScanner) number() bool {
	start := s.i
	if s.i < len(s.b) && s.b[s.i] == '-' {
		s.i++
	}
	digits := func() int {
		n := 0
		for s.i < len(s.b) && '0' <= s.b[s.i] && s.b[s.i] <= '9' {
			s.i++
			n++
		}
		return n
	}
	if s.i < len(s.b) && s.b[s.i] == '0' {
		s.i++
	} else if digits() == 0 {
		return false
	}
	if s.i < len(s.b) && s.b[s.i] == '.' {
		s.i++
		if digits() == 0 {
			return false
		}
	}
	if s.i < len(s.b) && (s.b[s.i] == 'e' || s.b[s.i] == 'E') {
		s.i++
		if s.i < len(s.b) && (s.b[s.i] == '+' || s.b[s.i] == '-') {
			s.i++
		}
		if digits() == 0 {
			return false
		}
	}
	return s.i > start
}

// jsonValid reports whether b is exactly one valid JSON value.
func jsonValid(b []byte) bool {
	s := jsonScanner{b: b}
	if !s.value(0) {
		return false
	}
	s.ws()
	return s.i == len(b)
}

// jsonMember is one member of an object: its raw key (with quotes) and value spans.
type jsonMember struct {
	key, value []byte
}

// jsonMembers calls yield for each member of the object b (which must be
// valid). It stops early when yield returns false.
func jsonMembers(b []byte, yield func(m jsonMember) bool) {
	s := jsonScanner{b: b}
	s.ws()
	if s.i >= len(b) || b[s.i] != '{' {
		return
	}
	s.i++
	for {
		s.ws()
		if s.i >= len(b) || b[s.i] == '}' {
			return
		}
		ks := s.i
		if !s.str() {
			return
		}
		key := b[ks:s.i]
		s.ws()
		s.i++ // ':'
		s.ws()
		vs := s.i
		if !s.value(1) {
			return
		}
		if !yield(jsonMember{key: key, value: b[vs:s.i]}) {
			return
		}
		s.ws()
		if s.i < len(b) && b[s.i] == ',' {
			s.i++
		}
	}
}

// jsonUnquote appends the decoded content of the JSON string token q
// (with its quotes). \u escapes outside ASCII become '?': good enough to
// compare against the ASCII names of the rule tables.
func jsonUnquote(dst, q []byte) []byte {
	if len(q) < 2 {
		return dst
	}
	q = q[1 : len(q)-1]
	for i := 0; i < len(q); i++ {
		c := q[i]
		if c != '\\' || i+1 >= len(q) {
			dst = append(dst, c)
			continue
		}
		i++
		switch q[i] {
		case 'b':
			dst = append(dst, '\b')
		case 'f':
			dst = append(dst, '\f')
		case 'n':
			dst = append(dst, '\n')
		case 'r':
			dst = append(dst, '\r')
		case 't':
			dst = append(dst, '\t')
		case 'u':
			if i+4 < len(q) {
				var r rune
				for k := 1; k <= 4; k++ {
					h, _ := HexDigit(q[i+k])
					r = r<<4 | rune(h)
				}
				if r < 0x80 {
					dst = append(dst, byte(r))
				} else {
					dst = append(dst, '?')
				}
				i += 4
			}
		default:
			dst = append(dst, q[i])
		}
	}
	return dst
}

// jsonLookup returns the raw value at a dotted path ("consents.analytics")
// in the valid JSON document b, or nil.
func jsonLookup(b []byte, path string) []byte {
	cur := b
	for path != "" {
		var seg string
		seg, path = cutString(path, '.')
		var found []byte
		var kb [64]byte // starting capacity only: a longer key is decoded in full
		jsonMembers(cur, func(m jsonMember) bool {
			if string(jsonUnquote(kb[:0], m.key)) == seg {
				found = m.value
				return false
			}
			return true
		})
		if found == nil {
			return nil
		}
		cur = found
	}
	return cur
}

func cutString(s string, sep byte) (before, after string) {
	for i := 0; i < len(s); i++ {
		if s[i] == sep {
			return s[:i], s[i+1:]
		}
	}
	return s, ""
}
