package consentmode

// gcd letters are base-64 digits in this alphabet. The low four bits hold
// the default (bits 2-3) and update (bits 0-1) halves: 1 = not set,
// 2 = denied, 3 = granted. Higher bits are flags of unknown meaning
// (uppercase letters set bit 5) and are ignored.
const gcdAlphabet = "0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ-_"

// gcdDigit maps a byte to its alphabet index, or -1.
var gcdDigit = func() (t [256]int8) {
	for i := range t {
		t[i] = -1
	}
	for i := 0; i < len(gcdAlphabet); i++ {
		t[gcdAlphabet[i]] = int8(i)
	}
	return t
}()

// gcdLetterOffset is the byte offset of each type's consent letter in a
// gcd string, in both generations ("11p1p1p1p5", "13p3p3p2p5l1").
var gcdLetterOffset = [NumTypes]int{AdStorage: 2, AnalyticsStorage: 4, AdUserData: 6, AdPersonalization: 8}

// GCD is a decoded gcd value.
type GCD struct {
	// Value is the effective state of each type: the update half if set,
	// else the default half. Unset for the letter 'l' (consent mode not
	// configured for the type), and Denied for a letter that is bad.
	Value [NumTypes]Value
	// Bad marks letters that are not a valid default/update pair. A bad
	// letter denies its type.
	Bad [NumTypes]bool
}

// ParseGCD decodes a gcd value. A string shorter than nine bytes or not
// starting with '1' is ErrMalformedGCD, and the caller denies all four
// types. A single letter that does not decode is reported in Bad with its
// type denied, and the error is ErrMalformedGCD too. The result does not
// refer to b.
func ParseGCD(b []byte) (GCD, error) {
	var g GCD
	if len(b) < 9 || b[0] != '1' {
		for t := range g.Value {
			g.Value[t], g.Bad[t] = Denied, true
		}
		return g, ErrMalformedGCD
	}
	var err error
	for t, off := range gcdLetterOffset {
		v, ok := gcdLetterValue(b[off])
		if !ok {
			g.Value[t], g.Bad[t] = Denied, true
			err = ErrMalformedGCD
			continue
		}
		g.Value[t] = v
	}
	return g, err
}

// gcdLetterValue decodes one letter with the bit rule.
func gcdLetterValue(c byte) (Value, bool) {
	d := gcdDigit[c]
	if d < 0 {
		return Denied, false
	}
	def, upd := (d>>2)&3, d&3
	if def == 0 || upd == 0 {
		return Denied, false
	}
	if upd == 1 {
		upd = def
	}
	switch upd {
	case 2:
		return Denied, true
	case 3:
		return Granted, true
	}
	return Unset, true
}

// gcdDenyLetter returns the letter c with its update half set to denied:
// t/v -> u, r -> q, n/l -> m. Letters already denied are returned as they
// are; a letter that does not decode becomes 'm' (not set, denied).
func gcdDenyLetter(c byte) byte {
	v, ok := gcdLetterValue(c)
	if !ok {
		return 'm'
	}
	if v == Denied {
		return c
	}
	return gcdAlphabet[(gcdDigit[c]&^3)|2]
}

// appendGCDDenied appends gcd with the letters of the types in deny set to
// denied. A gcd too short to hold four letters is replaced by a fresh one
// in the current format with every letter denied ('m').
func appendGCDDenied(dst, gcd []byte, deny [NumTypes]bool) []byte {
	if len(gcd) < 9 || gcd[0] != '1' {
		return append(dst, "13m3m3m2m5l1"...)
	}
	start := len(dst)
	dst = append(dst, gcd...)
	for t, off := range gcdLetterOffset {
		if deny[t] {
			dst[start+off] = gcdDenyLetter(gcd[off])
		}
	}
	return dst
}

// appendGCDState appends a current-format gcd carrying st: for each type
// the update half set ('n' granted, 'm' denied) over a not-set default.
func appendGCDState(dst []byte, st *State) []byte {
	start := len(dst)
	dst = append(dst, "13m3m3m2m5l1"...)
	for t, off := range gcdLetterOffset {
		if st.Value[t] == Granted {
			dst[start+off] = 'n'
		}
	}
	return dst
}

// gcdNoCommand reports whether gcd says no consent command ran: every
// type's letter is 'l' (neither default nor update set), as in
// "13l3l3l3l1" and the older "11l1l1l1l1". Such a gcd ends without the
// ad_user_data and ad_personalization command marks of a gcd written
// after a consent command ("13…2…5l1").
func gcdNoCommand(gcd []byte) bool {
	if len(gcd) < 9 || gcd[0] != '1' {
		return false
	}
	for _, off := range gcdLetterOffset {
		if gcd[off] != 'l' {
			return false
		}
	}
	return true
}
