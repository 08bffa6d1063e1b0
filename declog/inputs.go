package declog

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strings"
	"sync"

	"go.uber.org/zap/zapcore"

	"github.com/consentgate/consentgate/consentmode"
)

// Hit is what the decision log reads of a hit to record its consent
// inputs (Inputs). Its bytes are borrowed for the call to Log.Add only.
type Hit struct {
	Query   []byte // the raw query string, without '?'
	Matrix  []byte // Floodlight's ';' path parameters
	PathTag []byte // the tag id in the path (Ads conversions)
	Cookie  []byte // the raw Cookie header
	GPC     bool   // Sec-GPC: 1
}

// Input indexes the consent inputs a record holds: the values Decide
// reads to decide consent, the tag id, and the TCF cookie.
type Input uint8

// The recorded inputs, in the order the log writes them.
const (
	InputTag Input = iota // tid, id or src, or the tag id in the path
	InputGCS
	InputGCD
	InputNPA
	InputDMA
	InputDMACPS
	InputGDPR
	InputGDPRConsent
	InputGPP
	InputGPPSID
	InputUSPrivacy
	InputTCFCookie // the euconsent-v2 cookie
	NumInputs
)

// inputNames are the JSON keys of the inputs; inputLimits the longest
// value recorded. A value that is empty or longer, or holds a byte outside
// [A-Za-z0-9._~,-], is recorded as "?": it could carry anything, even an
// identifier, and a replay reads "?" as malformed, so it fails closed.
var (
	inputNames  = [NumInputs]string{"tag", "gcs", "gcd", "npa", "dma", "dma_cps", "gdpr", "gdpr_consent", "gpp", "gpp_sid", "us_privacy", "euconsent-v2"}
	inputLimits = [NumInputs]int{64, 8, 32, 2, 2, 16, 2, 4096, 4096, 64, 8, 4096}
)

// Name is the input's key in a record ("gcs", "euconsent-v2", ...).
func (i Input) Name() string { return inputNames[i] }

// Inputs is what a record holds of the hit's consent inputs: enough to
// decide it again under another policy (consentgate replay), never an
// identifier. Values are as the hit sent them (still URL-escaped); Present
// names the parameters and cookies of the rule catalogue the hit carried,
// without their values.
type Inputs struct {
	Values  [NumInputs]string
	GPC     bool
	Present consentmode.FieldSet
}

// IsZero reports whether nothing was recorded.
func (in *Inputs) IsZero() bool { return *in == Inputs{} }

// MarshalLogObject writes in for the decision log: the inputs present in
// order, "gpc" when true, then "params" (the names present).
func (in *Inputs) MarshalLogObject(enc zapcore.ObjectEncoder) error {
	for i, v := range in.Values {
		if v != "" {
			enc.AddString(inputNames[i], v)
		}
	}
	if in.GPC {
		enc.AddBool("gpc", true)
	}
	return enc.AddArray("params", fieldList(in.Present))
}

type fieldList consentmode.FieldSet

func (l fieldList) MarshalLogArray(enc zapcore.ArrayEncoder) error {
	s := consentmode.FieldSet(l)
	for f := range s.All {
		enc.AppendString(f.String())
	}
	return nil
}

// MarshalJSON writes in as the log does.
func (in Inputs) MarshalJSON() ([]byte, error) {
	var b bytes.Buffer
	b.WriteByte('{')
	for i, v := range in.Values {
		if v != "" {
			q, _ := json.Marshal(v) // a string always marshals
			fmt.Fprintf(&b, "%q:%s,", inputNames[i], q)
		}
	}
	if in.GPC {
		b.WriteString(`"gpc":true,`)
	}
	names, _ := json.Marshal(in.Present.Names())
	b.WriteString(`"params":`)
	b.Write(names)
	b.WriteByte('}')
	return b.Bytes(), nil
}

// UnmarshalJSON reads what MarshalJSON writes; unknown keys and field
// names are errors.
func (in *Inputs) UnmarshalJSON(data []byte) error {
	var m map[string]json.RawMessage
	if err := json.Unmarshal(data, &m); err != nil {
		return err
	}
	*in = Inputs{}
	for k, raw := range m {
		switch k {
		case "gpc":
			if err := json.Unmarshal(raw, &in.GPC); err != nil {
				return err
			}
			continue
		case "params":
			var names []string
			if err := json.Unmarshal(raw, &names); err != nil {
				return err
			}
			for _, n := range names {
				f, ok := consentmode.LookupField(n)
				if !ok {
					return fmt.Errorf("declog: %q is not a field of the rule catalogue", n)
				}
				in.Present.Add(f)
			}
			continue
		}
		i := inputByName(k)
		if i == NumInputs {
			return fmt.Errorf("declog: %q is not a recorded input", k)
		}
		if err := json.Unmarshal(raw, &in.Values[i]); err != nil {
			return err
		}
	}
	return nil
}

func inputByName(name string) Input {
	for i, n := range inputNames {
		if n == name {
			return Input(i)
		}
	}
	return NumInputs
}

// inputByKey is inputByName for a query key, without allocating.
func inputByKey(k []byte) Input {
	for i, n := range inputNames {
		if n == string(k) {
			return Input(i)
		}
	}
	return NumInputs
}

// hitInputs is Inputs as the hit path copies it: one buffer, pooled, so
// that Add allocates nothing once the pool is warm. The log's goroutine
// turns it into Inputs and puts it back.
type hitInputs struct {
	buf     []byte
	span    [NumInputs][2]int32 // [start, end) in buf; end 0: absent, start -1: "?"
	gpc     bool
	present consentmode.FieldSet
}

var hitInputsPool = sync.Pool{New: func() any { return new(hitInputs) }}

// readHit copies the consent inputs of h into a pooled hitInputs.
func readHit(h *Hit) *hitInputs {
	x := hitInputsPool.Get().(*hitInputs)
	x.buf, x.span, x.gpc, x.present = x.buf[:0], [NumInputs][2]int32{}, h.GPC, consentmode.FieldSet{}
	x.params(h.Query, '&')
	x.params(h.Matrix, ';')
	if len(h.PathTag) > 0 && x.span[InputTag][1] == 0 {
		x.set(InputTag, h.PathTag)
	}
	for rest := h.Cookie; len(rest) > 0; {
		var piece []byte
		piece, rest = cut(rest, ';')
		name, value, _ := bytes.Cut(bytes.TrimSpace(piece), []byte{'='})
		if len(name) == 0 {
			continue
		}
		if string(name) == "euconsent-v2" {
			x.set(InputTCFCookie, value)
			continue
		}
		if f, ok := cookieField(name); ok {
			x.present.Add(f)
		}
	}
	return x
}

// params records the inputs and the catalogue names among the key=value
// pairs of s, separated by sep.
func (x *hitInputs) params(s []byte, sep byte) {
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
				x.set(InputTag, v)
			}
			continue
		}
		if i := inputByKey(k); i < InputTCFCookie {
			if x.span[i][1] == 0 {
				x.set(i, v)
			}
			continue
		}
		if f, ok := paramField(k); ok {
			x.present.Add(f)
		}
	}
}

// cut returns s up to the first sep and what follows it (nil when there
// is no sep). A loop over bytes.SplitSeq would let s escape.
func cut(s []byte, sep byte) (before, after []byte) {
	if i := bytes.IndexByte(s, sep); i >= 0 {
		return s[:i], s[i+1:]
	}
	return s, nil
}

// set records v as input i, or "?" when it is too long or holds a byte
// that no consent string does.
func (x *hitInputs) set(i Input, v []byte) {
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

// inputs converts x (off the hit path) and returns it to the pool.
func (x *hitInputs) inputs() *Inputs {
	in := &Inputs{GPC: x.gpc, Present: x.present}
	for i, s := range x.span {
		switch {
		case s[1] == 0:
		case s[0] < 0:
			in.Values[i] = "?"
		default:
			in.Values[i] = string(x.buf[s[0]:s[1]])
		}
	}
	hitInputsPool.Put(x)
	return in
}

// pattern is a pattern name of the catalogue ("up.*", "u#", "_ga_*") and
// its field.
type pattern struct {
	name  string
	field consentmode.Field
}

// paramPatterns and cookiePatterns are the catalogue's pattern names,
// read-only after start-up; fieldCookieOther is cookie:other.
var (
	paramPatterns, cookiePatterns = catalogPatterns()
	fieldCookieOther, _           = consentmode.LookupField("cookie:other")
)

func catalogPatterns() (params, cookies []pattern) {
	for _, n := range consentmode.FieldNames() {
		if !strings.HasSuffix(n, "*") && !strings.HasSuffix(n, "#") {
			continue
		}
		f, _ := consentmode.LookupField(n)
		if c, ok := strings.CutPrefix(n, "cookie:"); ok {
			cookies = append(cookies, pattern{c, f})
		} else if !strings.Contains(n, ":") {
			params = append(params, pattern{n, f})
		}
	}
	return params, cookies
}

// maxName is the longest name looked up in the catalogue (no name there is
// longer); the lookup's key then lives on the stack.
const maxName = 32

// paramField finds the catalogue field of a parameter name.
func paramField(k []byte) (consentmode.Field, bool) {
	if len(k) <= maxName {
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
func cookieField(name []byte) (consentmode.Field, bool) {
	var key [maxName]byte
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

// matchPattern matches a catalogue pattern: a prefix and '*' (anything) or
// '#' (one or more digits).
func matchPattern(p string, k []byte) bool {
	pre := p[:len(p)-1]
	if len(k) <= len(pre) && p[len(p)-1] == '#' || len(k) < len(pre) || string(k[:len(pre)]) != pre {
		return false
	}
	if p[len(p)-1] == '*' {
		return true
	}
	for _, c := range k[len(pre):] {
		if c < '0' || c > '9' {
			return false
		}
	}
	return true
}
