package declog

import (
	"bytes"

	"github.com/consentgate/consentgate/consentmode"
)

// This file keeps readHit as it was before its name index, as the
// reference TestReadHitMatchesOld compares it with.

const oldMaxName = 32

// readHit copies the consent inputs of h into a pooled hitInputs.
func oldReadHit(h *Hit) *hitInputs {
	x := hitInputsPool.Get().(*hitInputs)
	x.buf, x.span, x.gpc, x.present = x.buf[:0], [NumInputs][2]int32{}, h.GPC, consentmode.FieldSet{}
	x.oldParams(h.Query, '&')
	x.oldParams(h.Matrix, ';')
	if len(h.PathTag) > 0 && x.span[InputTag][1] == 0 {
		x.oldSet(InputTag, h.PathTag)
	}
	for rest := h.Cookie; len(rest) > 0; {
		var piece []byte
		piece, rest = cut(rest, ';')
		name, value, _ := bytes.Cut(bytes.TrimSpace(piece), []byte{'='})
		if len(name) == 0 {
			continue
		}
		if string(name) == "euconsent-v2" {
			x.oldSet(InputTCFCookie, value)
			continue
		}
		if f, ok := oldCookieField(name); ok {
			x.present.Add(f)
		}
	}
	return x
}

// params records the inputs and the catalogue names among the key=value
// pairs of s, separated by sep.
func (x *hitInputs) oldParams(s []byte, sep byte) {
	for len(s) > 0 {
		var pair []byte
		pair, s = cut(s, sep)
		k, v, _ := bytes.Cut(pair, []byte{'='})
		if len(k) == 0 {
			continue
		}
		switch string(k) {
		case "tid", "id", "src", "measurement_id":
			if x.span[InputTag][1] == 0 {
				x.oldSet(InputTag, v)
			}
			continue
		}
		if i := oldInputByKey(k); i < InputTCFCookie {
			if x.span[i][1] == 0 {
				x.oldSet(i, v)
			}
			continue
		}
		if f, ok := oldParamField(k); ok {
			x.present.Add(f)
		}
	}
}

// set records v as input i, or "?" when it is too long or holds a byte
// that no consent string does.
func (x *hitInputs) oldSet(i Input, v []byte) {
	ok := len(v) > 0 && len(v) <= inputLimits[i]
	for _, c := range v {
		if !ok {
			break
		}
		ok = 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '.' || c == '_' || c == '~' || c == '-' || c == ','
	}
	if !ok {
		x.span[i] = [2]int32{-1, 1}
		return
	}
	start := len(x.buf)
	x.buf = append(x.buf, v...)
	x.span[i] = [2]int32{int32(start), int32(len(x.buf))}
}

// paramField finds the catalogue field of a parameter name.
func oldParamField(k []byte) (consentmode.Field, bool) {
	if len(k) <= oldMaxName {
		if f, ok := consentmode.LookupField(string(k)); ok {
			return f, true
		}
	}
	for _, p := range paramPatterns {
		if matchPattern(p.name, k) {
			return p.field, true
		}
	}
	return 0, false
}

// cookieField finds the catalogue field of a cookie name: its rule, or
// cookie:other.
func oldCookieField(name []byte) (consentmode.Field, bool) {
	var key [oldMaxName]byte
	if len(name) <= len(key)-len("cookie:") {
		k := append(append(key[:0], "cookie:"...), name...)
		if f, ok := consentmode.LookupField(string(k)); ok {
			return f, true
		}
	}
	for _, p := range cookiePatterns {
		if matchPattern(p.name, name) {
			return p.field, true
		}
	}
	return fieldCookieOther, true
}

// inputByKey is inputByName for a query key, without allocating.
func oldInputByKey(k []byte) Input {
	for i, n := range inputNames {
		if n == string(k) {
			return Input(i)
		}
	}
	return NumInputs
}
