package vendors

import (
	"bytes"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"net/url"
	"strconv"
	"strings"
)

// cutByte is bytes.Cut for one separator byte.
func cutByte(b []byte, sep byte) (before, after []byte, found bool) {
	if i := bytes.IndexByte(b, sep); i >= 0 {
		return b[:i], b[i+1:], true
	}
	return b, nil, false
}

// rawParam returns the raw (still escaped) value of key in the query
// string q: the first occurrence. The result refers to q.
func rawParam(q []byte, key string) ([]byte, bool) {
	for rest := q; len(rest) > 0; {
		var pair []byte
		pair, rest, _ = cutByte(rest, '&')
		k, v, _ := cutByte(pair, '=')
		if string(k) == key {
			return v, true
		}
	}
	return nil, false
}

// lines calls fn for each non-empty line of a batched GA4 body. It does
// not allocate.
func lines(body []byte, fn func(line []byte)) int {
	n := 0
	for rest := body; len(rest) > 0; {
		var line []byte
		line, rest, _ = cutByte(rest, '\n')
		line = bytes.TrimRight(line, "\r")
		if len(line) == 0 {
			continue
		}
		n++
		fn(line)
	}
	return n
}

// ga4Event is one event of a GA4 hit: its own line (nil for a hit
// without a body) over the hit's query.
type ga4Event struct {
	line, query []byte
}

// get returns the unescaped value of key, the line's over the query's.
func (e ga4Event) get(key string) string {
	v, ok := rawParam(e.line, key)
	if !ok {
		if v, ok = rawParam(e.query, key); !ok {
			return ""
		}
	}
	s, err := url.QueryUnescape(string(v))
	if err != nil {
		return "" // a bad escape: the value does not leave
	}
	return s
}

// events returns the events of a hit: one per body line, or the query
// alone when the body has none.
func events(query, body []byte) []ga4Event {
	var out []ga4Event
	lines(body, func(l []byte) { out = append(out, ga4Event{line: l, query: query}) })
	if len(out) == 0 {
		out = append(out, ga4Event{query: query})
	}
	return out
}

// item is one product of a GA4 hit (pr1..prN).
type item struct {
	ID, Name string
	Price    float64
	HasPrice bool
	Qty      int
}

// parseItem reads a GA4 product parameter, "idSKU~nmName~pr10.5~qt2"
// (already unescaped). Unknown keys are ignored.
func parseItem(s string) (item, bool) {
	var it item
	for _, f := range strings.Split(s, "~") {
		if len(f) < 2 {
			continue
		}
		k, v := f[:2], f[2:]
		switch k {
		case "id":
			it.ID = v
		case "nm":
			it.Name = v
		case "pr":
			if p, err := strconv.ParseFloat(v, 64); err == nil {
				it.Price, it.HasPrice = p, true
			}
		case "qt":
			if q, err := strconv.Atoi(v); err == nil && q > 0 {
				it.Qty = q
			}
		}
	}
	if it.ID == "" && it.Name == "" {
		return it, false
	}
	if it.ID == "" {
		it.ID = it.Name
	}
	return it, true
}

// maxItems bounds the products read from one event: GA4 sends at most
// 200 items per event.
const maxItems = 200

// items reads pr1..prN until the first missing index.
func (e ga4Event) items() []item {
	var out []item
	for i := 1; i <= maxItems; i++ {
		s := e.get("pr" + strconv.Itoa(i))
		if s == "" {
			break
		}
		if it, ok := parseItem(s); ok {
			out = append(out, it)
		}
	}
	return out
}

// userHashes reads Google's user-provided data parameter em
// ("tv.1~em.<hash>~ph.<hash>") and returns the SHA-256 hashes of e-mail
// and phone as lower-case hex. Google sends the hashes base64url
// encoded; they are re-encoded, never hashed here. A value that is not a
// SHA-256 hash (a plain e-mail, anything else) is dropped.
func userHashes(s string) (em, ph string) {
	if strings.IndexByte(s, '@') >= 0 {
		return "", "" // plain data: nothing of it leaves
	}
	for _, f := range strings.Split(s, "~") {
		k, v, ok := strings.Cut(f, ".")
		if !ok {
			continue
		}
		switch k {
		case "em":
			if em == "" {
				em = hashHex(v)
			}
		case "ph":
			if ph == "" {
				ph = hashHex(v)
			}
		}
	}
	return em, ph
}

// hashHex returns a SHA-256 hash given as hex or base64 (either
// alphabet, padded or not) as lower-case hex, or "" when v is not one.
func hashHex(v string) string {
	if len(v) == 64 {
		if b, err := hex.DecodeString(v); err == nil && len(b) == sha256.Size {
			return strings.ToLower(v)
		}
	}
	for _, enc := range []*base64.Encoding{base64.RawURLEncoding, base64.URLEncoding, base64.RawStdEncoding, base64.StdEncoding} {
		if b, err := enc.DecodeString(v); err == nil && len(b) == sha256.Size {
			return hex.EncodeToString(b)
		}
	}
	return ""
}

// sha256Hex hashes an identifier the vendors want hashed (external_id).
func sha256Hex(s string) string {
	h := sha256.Sum256([]byte(s))
	return hex.EncodeToString(h[:])
}

// cookie returns the value of the cookie named name in a Cookie header.
func cookie(h []byte, name string) string {
	for rest := h; len(rest) > 0; {
		var c []byte
		c, rest, _ = cutByte(rest, ';')
		c = bytes.TrimSpace(c)
		k, v, _ := cutByte(c, '=')
		if string(k) == name {
			return string(v)
		}
	}
	return ""
}

// urlParam returns the value of key in the query of the URL u.
func urlParam(u, key string) string {
	_, q, ok := strings.Cut(u, "?")
	if !ok {
		return ""
	}
	q, _, _ = strings.Cut(q, "#")
	v, ok := rawParam([]byte(q), key)
	if !ok {
		return ""
	}
	s, err := url.QueryUnescape(string(v))
	if err != nil {
		return ""
	}
	return s
}

// clickIDParams are the click ids stripped from URLs that leave without
// ids (FlagNoIDs): the three vendors' and Google's.
var clickIDParams = []string{"fbclid", "msclkid", "ttclid", "gclid", "gbraid", "wbraid", "dclid", "_gl"}

// stripClickIDs returns u without the click id parameters of its query.
func stripClickIDs(u string) string {
	base, rest, ok := strings.Cut(u, "?")
	if !ok {
		return u
	}
	q, frag, hasFrag := strings.Cut(rest, "#")
	var kept []string
	for _, p := range strings.Split(q, "&") {
		k, _, _ := strings.Cut(p, "=")
		drop := false
		for _, c := range clickIDParams {
			if strings.EqualFold(k, c) {
				drop = true
				break
			}
		}
		if !drop && p != "" {
			kept = append(kept, p)
		}
	}
	out := base
	if len(kept) > 0 {
		out += "?" + strings.Join(kept, "&")
	}
	if hasFrag {
		out += "#" + frag
	}
	return out
}
