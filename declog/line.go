package declog

import (
	"math"
	"strconv"
	"time"
	"unicode/utf8"

	"github.com/consentgate/consentgate/consentmode"
)

// The decision log writes its lines with the appenders below, into a
// buffer the writer reuses, instead of through zap's JSON encoder: the same
// bytes (TestLineMatchesZap and FuzzRecordEncoding compare them with zap's
// output for the same record), without an allocation per line.

// appendLine appends r as one decision-log line, newline included: every
// field but the explain-only ones (PolicyRegion, Said), the consent maps
// in type order.
func (r *Record) appendLine(b []byte) []byte {
	b = r.appendFields(b)
	if r.Inputs != nil {
		b = appendInputs(b, &r.Inputs.Values, r.Inputs.GPC, &r.Inputs.Present)
	}
	if r.Seq != 0 {
		b = append(b, `,"seq":`...)
		b = strconv.AppendUint(b, r.Seq, 10)
		b = append(b, `,"prev":`...)
		b = appendJSONString(b, r.Prev)
	}
	return append(b, '}', '\n')
}

// appendFields opens a line and appends the fields of r up to
// policy_version; the inputs, the chain fields and the closing brace
// follow.
func (r *Record) appendFields(b []byte) []byte {
	b = append(b, `{"ts":"`...)
	b = r.Time.AppendFormat(b, time.RFC3339Nano) // zap's RFC3339NanoTimeEncoder, in the time's own location
	b = append(b, `","hit":`...)
	b = strconv.AppendUint(b, r.Hit, 10)
	b = append(b, `,"route":`...)
	b = appendJSONString(b, r.Route)
	b = append(b, `,"family":`...)
	b = appendJSONString(b, r.Family)
	b = append(b, `,"region":`...)
	b = appendJSONString(b, r.Region)
	b = append(b, `,"action":`...)
	b = appendJSONString(b, r.Action)
	b = append(b, `,"enforced":`...)
	b = strconv.AppendBool(b, r.Enforced)
	b = append(b, `,"consent":`...)
	b = r.Consent.appendJSON(b)
	b = append(b, `,"sources":`...)
	b = r.Sources.appendJSON(b)
	b = append(b, `,"claimed":`...)
	b = r.Claimed.appendJSON(b)
	b = append(b, `,"reasons":`...)
	b = appendStrings(b, r.Reasons)
	b = append(b, `,"removed":`...)
	b = appendStrings(b, r.Removed)
	b = append(b, `,"status":`...)
	b = strconv.AppendInt(b, int64(r.Status), 10)
	b = append(b, `,"delivery":`...)
	b = appendJSONString(b, r.Delivery)
	b = append(b, `,"upstream_ms":`...)
	b = appendFloat(b, r.UpstreamMS)
	b = append(b, `,"error":`...)
	b = appendJSONString(b, r.Error)
	b = append(b, `,"policy_version":`...)
	b = appendJSONString(b, r.PolicyVersion)
	if !r.Vendors.IsZero() {
		b = append(b, `,"vendors":`...)
		b = r.Vendors.appendJSON(b)
	}
	return b
}

// appendJSON appends v as an object keyed by vendor name, in vendor
// order, empty values left out.
func (v *VendorValues) appendJSON(b []byte) []byte {
	b = append(b, '{')
	for x, s := range v {
		if s != "" {
			b = appendKey(b, consentmode.Vendor(x).String())
			b = appendJSONString(b, s)
		}
	}
	return append(b, '}')
}

// appendJSON appends v as an object keyed by type name, in type order,
// empty values left out.
func (v *TypeValues) appendJSON(b []byte) []byte {
	b = append(b, '{')
	for t, s := range v {
		if s != "" {
			b = appendKey(b, consentmode.Type(t).String())
			b = appendJSONString(b, s)
		}
	}
	return append(b, '}')
}

// appendInputs appends ,"inputs":{...}: the inputs present in order, "gpc"
// when true, then "params" (the names present).
func appendInputs[S string | []byte](b []byte, values *[NumInputs]S, gpc bool, present *consentmode.FieldSet) []byte {
	b = append(b, `,"inputs":{`...)
	for i, v := range values {
		if len(v) != 0 {
			b = appendKey(b, inputNames[i])
			b = appendJSONString(b, v)
		}
	}
	if gpc {
		b = appendKey(b, "gpc")
		b = append(b, "true"...)
	}
	b = appendKey(b, "params")
	b = append(b, '[')
	for f := range present.All {
		b = appendElem(b)
		b = appendJSONString(b, f.String())
	}
	return append(b, ']', '}')
}

// appendStrings appends ss as a JSON array.
func appendStrings(b []byte, ss []string) []byte {
	b = append(b, '[')
	for i, s := range ss {
		if i > 0 {
			b = append(b, ',')
		}
		b = appendJSONString(b, s)
	}
	return append(b, ']')
}

// appendKey appends "key": after a comma unless it opens an object.
func appendKey(b []byte, key string) []byte {
	b = appendJSONString(appendElem(b), key)
	return append(b, ':')
}

// appendElem appends the comma before an object's or array's element
// unless it is the first.
func appendElem(b []byte) []byte {
	if n := len(b); n > 0 && b[n-1] != '{' && b[n-1] != '[' {
		b = append(b, ',')
	}
	return b
}

// appendFloat appends f as zap writes a float64: shortest decimal without
// exponent, and NaN and the infinities as strings.
func appendFloat(b []byte, f float64) []byte {
	switch {
	case math.IsNaN(f):
		return append(b, `"NaN"`...)
	case math.IsInf(f, 1):
		return append(b, `"+Inf"`...)
	case math.IsInf(f, -1):
		return append(b, `"-Inf"`...)
	}
	return strconv.AppendFloat(b, f, 'f', -1, 64)
}

// appendJSONString appends s quoted as zap's JSON encoder quotes a string:
// '"' and '\\' escaped with a backslash, \n, \r and \t as such, the other
// bytes below 0x20 as \u00XX (lower-case hex), each byte of invalid UTF-8
// as \ufffd, and everything else (DEL, U+2028, '<', ...) as it is.
func appendJSONString[S string | []byte](b []byte, s S) []byte {
	b = append(b, '"')
	last := 0
	for i := 0; i < len(s); {
		c := s[i]
		if jsonSafe[c] {
			i++
			continue
		}
		if c >= utf8.RuneSelf {
			// At most UTFMax bytes decide the rune; copying them keeps one
			// decoder for both string and []byte.
			var rb [utf8.UTFMax]byte
			r, size := utf8.DecodeRune(rb[:copy(rb[:], s[i:])])
			if r != utf8.RuneError || size != 1 {
				i += size
				continue
			}
			b = append(append(b, s[last:i]...), `\ufffd`...)
			i++
			last = i
			continue
		}
		b = append(b, s[last:i]...)
		switch c {
		case '\\', '"':
			b = append(b, '\\', c)
		case '\n':
			b = append(b, '\\', 'n')
		case '\r':
			b = append(b, '\\', 'r')
		case '\t':
			b = append(b, '\\', 't')
		default:
			b = append(b, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xf])
		}
		i++
		last = i
	}
	b = append(b, s[last:]...)
	return append(b, '"')
}

const hexDigits = "0123456789abcdef"

// jsonSafe marks the bytes a JSON string holds as they are: ASCII from
// 0x20 on, but '"' and '\\'.
var jsonSafe = func() (t [256]bool) {
	for c := 0x20; c < utf8.RuneSelf; c++ {
		t[c] = c != '"' && c != '\\'
	}
	return t
}()
