package consentmode

import (
	"errors"
	"testing"
)

// bitWriter builds base64url bit strings for tests: the inverse of
// bitReader, MSB first, zero-padded to whole characters.
type bitWriter struct{ bits []bool }

func (w *bitWriter) add(v uint64, n int) *bitWriter {
	for i := n - 1; i >= 0; i-- {
		w.bits = append(w.bits, v>>i&1 == 1)
	}
	return w
}

func (w *bitWriter) flag(b bool) *bitWriter {
	if b {
		return w.add(1, 1)
	}
	return w.add(0, 1)
}

// fibonacci appends the Fibonacci code of v >= 1.
func (w *bitWriter) fibonacci(v int) *bitWriter {
	fib := []int{1, 2}
	for fib[len(fib)-1] <= v {
		fib = append(fib, fib[len(fib)-1]+fib[len(fib)-2])
	}
	code := make([]bool, len(fib))
	last := 0
	for i := len(fib) - 1; i >= 0; i-- {
		if fib[i] <= v {
			v -= fib[i]
			code[i] = true
			if last == 0 {
				last = i
			}
		}
	}
	w.bits = append(w.bits, code[:last+1]...)
	w.bits = append(w.bits, true)
	return w
}

func (w *bitWriter) String() string {
	const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
	var out []byte
	for i := 0; i < len(w.bits); i += 6 {
		c := 0
		for j := range 6 {
			c <<= 1
			if i+j < len(w.bits) && w.bits[i+j] {
				c |= 1
			}
		}
		out = append(out, alphabet[c])
	}
	return string(out)
}

func TestBitReaderReads(t *testing.T) {
	t.Parallel()
	w := new(bitWriter).add(2, 6).add(0xABCDE, 20).flag(true).add(0x123456789, 36).add(5, 3)
	r, ok := newBitReader([]byte(w.String()))
	if !ok {
		t.Fatalf("newBitReader(%q) refused", w.String())
	}
	tests := []struct {
		name string
		n    int
		want uint64
	}{
		{name: "version", n: 6, want: 2},
		{name: "20 bits across characters", n: 20, want: 0xABCDE},
		{name: "one bit", n: 1, want: 1},
		{name: "36 bits", n: 36, want: 0x123456789},
		{name: "3 bits", n: 3, want: 5},
	}
	for _, tt := range tests {
		if got := r.readUint(tt.n); got != tt.want {
			t.Errorf("%s: readUint(%d) = %#x, want %#x", tt.name, tt.n, got, tt.want)
		}
	}
	if r.err != nil {
		t.Fatalf("err = %v after in-range reads", r.err)
	}
	// 66 bits read; the string holds 11 characters = 66 bits.
	if got := r.left(); got != 0 {
		t.Errorf("left() = %d, want 0", got)
	}
	if got := r.readUint(1); got != 0 || !errors.Is(r.err, errBitsShort) {
		t.Errorf("readUint past the end = %d, err %v; want 0, errBitsShort", got, r.err)
	}
	if got := r.readUint(1); got != 0 || r.err == nil {
		t.Errorf("read after an error = %d, err %v; want 0 and the error kept", got, r.err)
	}
}

func TestNewBitReader(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name     string
		give     string
		wantOK   bool
		wantBits int
	}{
		{name: "url alphabet", give: "AZaz09-_", wantOK: true, wantBits: 48},
		{name: "standard alphabet", give: "AZaz09+/", wantOK: true, wantBits: 48},
		{name: "one pad", give: "QUJD=", wantOK: true, wantBits: 24},
		{name: "two pads", give: "QUI==", wantOK: true, wantBits: 18},
		{name: "three pads", give: "QU===", wantOK: false},
		{name: "pad inside", give: "Q=UI", wantOK: false},
		{name: "empty", give: "", wantOK: false},
		{name: "only padding", give: "==", wantOK: false},
		{name: "dot", give: "AB.C", wantOK: false},
		{name: "space", give: "AB C", wantOK: false},
		{name: "non-ascii", give: "AB\xffC", wantOK: false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r, ok := newBitReader([]byte(tt.give))
			if ok != tt.wantOK {
				t.Fatalf("newBitReader(%q) ok = %v, want %v", tt.give, ok, tt.wantOK)
			}
			if ok && r.size() != tt.wantBits {
				t.Errorf("size() = %d, want %d", r.size(), tt.wantBits)
			}
		})
	}
}

func TestBitReaderStandardAlphabetEqualsURL(t *testing.T) {
	t.Parallel()
	a, _ := newBitReader([]byte("-_-_"))
	b, _ := newBitReader([]byte("+/+/"))
	if x, y := a.readUint(24), b.readUint(24); x != y {
		t.Errorf("'-_' reads %#x, '+/' reads %#x", x, y)
	}
}

func TestBitReaderBounds(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		op   func(r *bitReader)
	}{
		{name: "negative width", op: func(r *bitReader) { r.readUint(-1) }},
		{name: "width over 64", op: func(r *bitReader) { r.readUint(65) }},
		{name: "readInt over 62", op: func(r *bitReader) { r.readInt(63) }},
		{name: "skip past end", op: func(r *bitReader) { r.skip(13) }},
		{name: "negative skip", op: func(r *bitReader) { r.skip(-1) }},
		{name: "seek past end", op: func(r *bitReader) { r.seek(13) }},
		{name: "bitAt past end", op: func(r *bitReader) { r.bitAt(12) }},
		{name: "negative bitAt", op: func(r *bitReader) { r.bitAt(-1) }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r, _ := newBitReader([]byte("AB")) // 12 bits
			tt.op(&r)
			if r.err == nil {
				t.Errorf("no error")
			}
		})
	}
}

func TestBitReaderFibonacci(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		give string // bits
		want int
	}{
		{name: "1", give: "11", want: 1},
		{name: "2", give: "011", want: 2},
		{name: "3", give: "0011", want: 3},
		{name: "4", give: "1011", want: 4},
		{name: "5", give: "00011", want: 5},
		{name: "6", give: "10011", want: 6},
		{name: "12", give: "101011", want: 12},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w := new(bitWriter)
			for _, c := range tt.give {
				w.flag(c == '1')
			}
			r, _ := newBitReader([]byte(w.String()))
			if got := r.fibonacci(); got != tt.want || r.err != nil {
				t.Errorf("fibonacci(%s) = %d, %v; want %d", tt.give, got, r.err, tt.want)
			}
			if r.pos != len(tt.give) {
				t.Errorf("consumed %d bits, want %d", r.pos, len(tt.give))
			}
		})
	}
}

func TestBitReaderFibonacciRoundTrip(t *testing.T) {
	t.Parallel()
	for v := 1; v < 5000; v += 7 {
		w := new(bitWriter).fibonacci(v).fibonacci(v + 1)
		r, _ := newBitReader([]byte(w.String()))
		if a, b := r.fibonacci(), r.fibonacci(); a != v || b != v+1 || r.err != nil {
			t.Fatalf("fibonacci round trip of %d, %d = %d, %d, %v", v, v+1, a, b, r.err)
		}
	}
}

func TestBitReaderFibonacciErrors(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		give string
	}{
		{name: "no terminator", give: "AAAA"},     // 24 zero bits
		{name: "too long", give: "VVVVVVVVVVVVV"}, // 0101… never "11", 78 bits
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r, _ := newBitReader([]byte(tt.give))
			if got := r.fibonacci(); got != 0 || r.err == nil {
				t.Errorf("fibonacci() = %d, %v; want 0 and an error", got, r.err)
			}
		})
	}
}

// TestBitReaderWidths reads values of every width 1..64 at every offset
// within a character back from what bitWriter wrote.
func TestBitReaderWidths(t *testing.T) {
	t.Parallel()
	const pattern = 0xF0E1D2C3B4A59687
	for offset := range 6 {
		for n := 1; n <= 64; n++ {
			want := uint64(pattern) >> (64 - n)
			w := new(bitWriter).add(0, offset).add(want, n).add(0b101, 3)
			r, _ := newBitReader([]byte(w.String()))
			r.skip(offset)
			if got := r.readUint(n); got != want || r.err != nil {
				t.Fatalf("offset %d: readUint(%d) = %#x, %v; want %#x", offset, n, got, r.err, want)
			}
			if got := r.readUint(3); got != 0b101 {
				t.Fatalf("offset %d, after %d bits: next 3 bits = %b, want 101", offset, n, got)
			}
		}
	}
}
