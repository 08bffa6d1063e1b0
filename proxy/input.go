package proxy

import (
	"bytes"
	"unicode/utf8"

	"github.com/valyala/fasthttp"

	"github.com/consentgate/consentgate/consentmode"
)

// Checks on what a hostile client controls before anything is decided:
// the path (which an upstream might resolve to another route), the body
// encoding (an encoded body cannot be scrubbed) and headers sent twice
// (two copies must not let the friendlier one decide).

// cleanPath rejects paths an upstream could resolve differently from the
// route table, on every route and before routing:
//
//   - empty segments ("//"), backslashes, control and non-ASCII bytes,
//     malformed escapes;
//   - any segment whose name (the part before ';') is "." or "..", so
//     "/a/..;/b" and "/a/.;x/b" are dot-segments too;
//   - ';' parameters in any segment but the last (only Floodlight's
//     matrix carries them, and only at the end);
//   - escaped '.', '/', '\' and control bytes before the first ';' (after
//     it, Floodlight matrix values carry percent-encoded URLs);
//   - overlong or otherwise invalid UTF-8 escapes anywhere (%c0%ae is an
//     overlong '.'), whose decoding differs between servers.
//
// The path is borrowed, not kept.
func cleanPath(p []byte) bool {
	matrix := false // past the first ';'
	segStart := 0
	for i := 0; i <= len(p); i++ {
		if i == len(p) || p[i] == '/' {
			seg := p[segStart:i]
			name := seg
			if j := bytes.IndexByte(seg, ';'); j >= 0 {
				name = seg[:j]
				if i < len(p) {
					return false // ';' in a segment that is not the last
				}
			}
			if string(name) == "." || string(name) == ".." {
				return false
			}
			if i > 0 && i < len(p) && segStart == i {
				return false // empty segment
			}
			segStart = i + 1
			continue
		}
		switch c := p[i]; {
		case c == ';':
			matrix = true
		case c <= ' ' || c >= 0x7f || c == '\\':
			return false
		case c == '%':
			b, ok := unhex(p, i)
			if !ok {
				return false
			}
			if !matrix && (b == '.' || b == '/' || b == '\\' || b < ' ' || b == 0x7f) {
				return false
			}
			if b >= 0x80 && !validUTF8Escape(p, i, b) {
				return false
			}
			i += 2
		}
	}
	return true
}

// unhex decodes the escape "%XY" at p[i].
func unhex(p []byte, i int) (byte, bool) {
	if i+2 >= len(p) {
		return 0, false
	}
	hi, ok1 := consentmode.HexDigit(p[i+1])
	lo, ok2 := consentmode.HexDigit(p[i+2])
	return hi<<4 | lo, ok1 && ok2
}

// validUTF8Escape reports whether the escaped byte b at p[i] starts or
// continues valid UTF-8: lead bytes that can only start overlong or
// out-of-range sequences (C0, C1, F5–FF) are refused, and so are E0, ED
// and F0 followed by an escaped byte that makes the sequence overlong
// or a surrogate.
func validUTF8Escape(p []byte, i int, b byte) bool {
	switch {
	case b == 0xc0 || b == 0xc1 || b >= 0xf5:
		return false
	case b == 0xe0 || b == 0xed || b == 0xf0 || b == 0xf4:
		if i+3 >= len(p) || p[i+3] != '%' {
			return false // a lead byte must be followed by an escaped continuation
		}
		n, ok := unhex(p, i+3)
		if !ok {
			return false
		}
		switch b {
		case 0xe0:
			return n >= 0xa0 && n <= 0xbf
		case 0xed:
			return n >= 0x80 && n <= 0x9f
		case 0xf0:
			return n >= 0x90 && n <= 0xbf
		case 0xf4:
			return n >= 0x80 && n <= 0x8f
		}
	}
	return true
}

// checkBody refuses a body the gateway could not scrub: any
// Content-Encoding other than identity, in any copy of the header; a body
// that looks compressed or binary whatever the headers say (gzip or zstd
// magic, control bytes, invalid UTF-8: every body the routes rewrite is
// text); and two Content-Type headers that disagree.
func (h *Handler) checkBody(req *fasthttp.Request) error {
	encodings := req.Header.PeekAll(fasthttp.HeaderContentEncoding)
	for _, v := range encodings {
		for tok := range connectionTokens(v) {
			if !bytes.EqualFold(tok, []byte("identity")) {
				if len(encodings) > 1 {
					h.metrics.conflicting(conflictContentEncoding)
				}
				return errEncoding
			}
		}
	}
	body := req.Body()
	if len(body) == 0 {
		return nil
	}
	if looksEncoded(body) {
		return errEncoding
	}
	// fasthttp keeps only the last Content-Type; the raw header has all.
	if conflictingRaw(req.Header.RawHeaders(), []byte(fasthttp.HeaderContentType)) {
		h.metrics.conflicting(conflictContentType)
		return errContentType
	}
	return nil
}

// looksEncoded reports whether body is compressed or binary: gzip or
// zstd magic, a control byte other than tab, CR and LF, or invalid UTF-8
// (brotli has no magic; its output is not valid text).
func looksEncoded(body []byte) bool {
	if len(body) >= 2 && body[0] == 0x1f && body[1] == 0x8b {
		return true
	}
	if len(body) >= 4 && body[0] == 0x28 && body[1] == 0xb5 && body[2] == 0x2f && body[3] == 0xfd {
		return true
	}
	ascii := true
	for _, c := range body {
		if c < ' ' && c != '\t' && c != '\r' && c != '\n' || c == 0x7f {
			return true
		}
		if c >= 0x80 {
			ascii = false
		}
	}
	return !ascii && !utf8.Valid(body)
}

// conflictingRaw reports whether the raw request header block holds two
// header lines named name (compared without case) with different values.
func conflictingRaw(raw, name []byte) bool {
	var first []byte
	seen := false
	for len(raw) > 0 {
		line := raw
		if i := bytes.IndexByte(raw, '\n'); i >= 0 {
			line, raw = raw[:i], raw[i+1:]
		} else {
			raw = nil
		}
		k, v, ok := bytes.Cut(line, []byte(":"))
		if !ok || !bytes.EqualFold(trimSpace(k), name) {
			continue
		}
		v = trimSpace(bytes.TrimRight(v, "\r"))
		if seen && !bytes.EqualFold(v, first) {
			return true
		}
		first, seen = v, true
	}
	return false
}

// gpc reads Sec-GPC: any copy saying "1" turns it on (a second copy can
// only add an opt-out, never take one away).
func (h *Handler) gpc(hdr *fasthttp.RequestHeader) bool {
	values := hdr.PeekAll("Sec-GPC")
	on := false
	for _, v := range values {
		if string(trimSpace(v)) == "1" {
			on = true
		}
	}
	if on && len(values) > 1 {
		h.metrics.conflicting(conflictSecGPC)
	}
	return on
}
