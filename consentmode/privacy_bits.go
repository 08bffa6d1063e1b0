package consentmode

import "errors"

// errBitsShort reports a read past the end of a bit string, or a read that
// cannot succeed (a width outside 0..64, a Fibonacci code with no end).
// Decoders turn it into their own sentinel (ErrMalformedTC, ErrMalformedGPP).
var errBitsShort = errors.New("consentmode: bit string too short")

// bitValue maps a base64url character to its 6-bit value, and any other byte
// to bitInvalid. The standard alphabet's '+' and '/' are accepted as '-' and
// '_': some CMPs and proxies produce them. Read-only after initialisation.
var bitValue = func() (t [256]uint8) {
	for i := range t {
		t[i] = bitInvalid
	}
	const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
	for i := range len(alphabet) {
		t[alphabet[i]] = uint8(i)
	}
	t['+'] = 62
	t['/'] = 63
	return t
}()

const bitInvalid = 0xff

// bitReader reads big-endian fields, most significant bit first, from one
// base64url-encoded segment, as the IAB TCF and GPP strings are written. It
// decodes characters on demand and never copies the segment, so reading
// costs no allocation.
//
// Reads past the end do not panic: they return zero and set err, which stays
// set (like bufio.Scanner). Check err once after a group of reads, and inside
// loops whose length comes from the input.
type bitReader struct {
	s   []byte // validated base64url characters, padding removed; borrowed, never modified
	pos int    // index of the next bit
	err error  // errBitsShort after the first read past the end; nil otherwise
}

// newBitReader returns a reader over seg, a base64url segment. Trailing '='
// padding (at most two) is ignored. It reports false when seg is empty or
// holds any other character. The reader borrows seg: seg must stay unchanged
// while the reader is used.
func newBitReader(seg []byte) (bitReader, bool) {
	for i := 0; i < 2 && len(seg) > 0 && seg[len(seg)-1] == '='; i++ {
		seg = seg[:len(seg)-1]
	}
	if len(seg) == 0 {
		return bitReader{}, false
	}
	for _, c := range seg {
		if bitValue[c] == bitInvalid {
			return bitReader{}, false
		}
	}
	return bitReader{s: seg}, true
}

// size returns the number of bits in the segment (6 per character).
func (r *bitReader) size() int { return 6 * len(r.s) }

// left returns the number of bits not yet read.
func (r *bitReader) left() int { return r.size() - r.pos }

// readUint reads an n-bit unsigned integer, n in 0..64.
func (r *bitReader) readUint(n int) uint64 {
	if r.err != nil || n < 0 || n > 64 || n > r.left() {
		r.fail()
		return 0
	}
	if n > 48 {
		hi := r.readUint(n - 32)
		return hi<<32 | r.readUint(32)
	}
	if n == 0 {
		return 0
	}
	// The n bits lie in characters first..last: at most 9 of them (54
	// bits), so they fit one accumulator.
	end := r.pos + n
	first, last := r.pos/6, (end-1)/6
	var acc uint64
	for _, c := range r.s[first : last+1] {
		acc = acc<<6 | uint64(bitValue[c])
	}
	r.pos = end
	return acc >> (6*(last+1) - end) & (1<<n - 1)
}

// readInt reads an n-bit unsigned integer as an int, n in 0..62.
func (r *bitReader) readInt(n int) int {
	if n > 62 {
		r.fail()
		return 0
	}
	return int(r.readUint(n))
}

// readBool reads one bit.
func (r *bitReader) readBool() bool { return r.readUint(1) == 1 }

// bitAt reports bit i of the segment, counted from 0, without moving the
// cursor. Out-of-range i sets err.
func (r *bitReader) bitAt(i int) bool {
	if r.err != nil || i < 0 || i >= r.size() {
		r.fail()
		return false
	}
	c := bitValue[r.s[i/6]]
	return c>>(5-i%6)&1 == 1
}

// seek moves the cursor to bit i, 0 <= i <= size().
func (r *bitReader) seek(i int) {
	if i < 0 || i > r.size() {
		r.fail()
		return
	}
	r.pos = i
}

// skip moves the cursor n bits forward.
func (r *bitReader) skip(n int) {
	if n < 0 || n > r.left() {
		r.fail()
		return
	}
	r.pos += n
}

// bitMaxFibonacci bounds a Fibonacci code, terminator included. The value
// of a 45-bit code is below 3e9, which fits an int on every platform Go
// supports for this module (64-bit) and far exceeds any GPP section id.
const bitMaxFibonacci = 45

// fibonacci reads a Fibonacci-coded positive integer, as the GPP header uses:
// bit k (from the left, k = 0, 1, …) weighs F(k+2) = 1, 2, 3, 5, 8, …, and
// the code ends at the first pair of set bits "11"; the second 1 of that pair
// only terminates. A code longer than bitMaxFibonacci bits sets err.
func (r *bitReader) fibonacci() int {
	a, b := 1, 2 // weight of the current bit, and of the next
	v := 0
	prev := false
	for range bitMaxFibonacci {
		bit := r.readBool()
		if r.err != nil {
			return 0
		}
		if bit && prev {
			return v
		}
		if bit {
			v += a
		}
		prev = bit
		a, b = b, a+b
	}
	r.fail()
	return 0
}

func (r *bitReader) fail() {
	if r.err == nil {
		r.err = errBitsShort
	}
	r.pos = r.size()
}
