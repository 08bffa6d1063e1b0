package vendors

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"

	"github.com/consentgate/consentgate/consentmode"
)

// maxCallEvents bounds a merged call: the three APIs take up to 1,000
// events per call.
const maxCallEvents = 1000

var errMerge = errors.New("vendors: calls cannot be merged")

// Merge is the vendors' lanes' merge (delivery.MergeFunc): it appends to
// dst one call carrying the events of the calls wires, HTTP/1.1 requests
// as the lane queued them, each a JSON object with a "data" array. They
// must be calls of one vendor, endpoint and account: the same request line
// and headers (but Content-Length) and the same fields besides data (the
// token, the pixel id, test_event_code); otherwise, or beyond 1,000
// events, it fails and the lane sends them one by one.
func Merge(wires [][]byte, dst []byte) ([]byte, error) {
	var head []byte
	var top map[string]json.RawMessage
	var data []json.RawMessage
	for i, w := range wires {
		h, body, ok := bytes.Cut(w, []byte("\r\n\r\n"))
		if !ok {
			return nil, fmt.Errorf("%w: a request without a body", errMerge)
		}
		h = withoutContentLength(h)
		var t map[string]json.RawMessage
		if err := json.Unmarshal(body, &t); err != nil {
			return nil, fmt.Errorf("%w: a body that is not a JSON object", errMerge)
		}
		var evs []json.RawMessage
		if err := json.Unmarshal(t["data"], &evs); err != nil {
			return nil, fmt.Errorf("%w: a body without a data array", errMerge)
		}
		delete(t, "data")
		if i == 0 {
			head, top = h, t
		} else if !bytes.Equal(h, head) || !sameFields(t, top) {
			return nil, fmt.Errorf("%w: calls of different endpoints or accounts", errMerge)
		}
		if data = append(data, evs...); len(data) > maxCallEvents {
			return nil, fmt.Errorf("%w: more than %d events", errMerge, maxCallEvents)
		}
	}
	raw, err := json.Marshal(data)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", errMerge, err)
	}
	top["data"] = raw
	body, err := json.Marshal(top) // keys sorted, values as they were
	if err != nil {
		return nil, fmt.Errorf("%w: %w", errMerge, err)
	}
	dst = append(dst, head...)
	dst = append(dst, "\r\nContent-Length: "...)
	dst = strconv.AppendInt(dst, int64(len(body)), 10)
	dst = append(dst, "\r\n\r\n"...)
	return append(dst, body...), nil
}

// withoutContentLength returns a request head (request line and headers,
// without the blank line) without its Content-Length header.
func withoutContentLength(h []byte) []byte {
	var out []byte
	for len(h) > 0 {
		line, rest, _ := bytes.Cut(h, []byte("\r\n"))
		h = rest
		if name, _, ok := bytes.Cut(line, []byte(":")); ok && bytes.EqualFold(bytes.TrimSpace(name), []byte("Content-Length")) {
			continue
		}
		if len(out) > 0 {
			out = append(out, "\r\n"...)
		}
		out = append(out, line...)
	}
	return out
}

// sameFields reports whether two calls' fields besides data are the same.
func sameFields(a, b map[string]json.RawMessage) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if w, ok := b[k]; !ok || !bytes.Equal(v, w) {
			return false
		}
	}
	return true
}

// Refused returns how vendor v's API says, in the body of a 2xx answer,
// that it refused a call (nil when its status says it all). TikTok's
// Business API answers errors with HTTP 200 and a JSON "code" other than
// 0 (docs/vendors-sources.md); such a call is dropped and counted as
// refused (rejected_4xx) rather than counted delivered.
func Refused(v consentmode.Vendor) func(body []byte) bool {
	if v != consentmode.VendorTikTok {
		return nil
	}
	return func(body []byte) bool {
		var r struct {
			Code *json.Number `json:"code"`
		}
		if err := json.Unmarshal(body, &r); err != nil || r.Code == nil {
			return true // not the API's answer: fail loud, not silent
		}
		return r.Code.String() != "0"
	}
}
