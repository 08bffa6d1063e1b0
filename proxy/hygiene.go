package proxy

import (
	"bytes"
	"iter"
	"strings"

	"github.com/valyala/fasthttp"

	"github.com/consentgate/consentgate/consentmode"
)

// requestHeaders is consentmode.RequestHeaders indexed for the hot path.
var requestHeaders = indexHeaders(consentmode.RequestHeaders)

// headerIndex finds the row of consentmode.RequestHeaders for a header.
type headerIndex struct {
	exact    map[string]*headerRow // by fasthttp's canonical spelling
	prefixes []*headerRow
	geo      *headerRow
	listed   *headerRow
	other    *headerRow
}

// headerRow is one row of the table with its field resolved.
type headerRow struct {
	prefix string // canonical, without the '*'; empty for exact rows
	op     consentmode.HeaderOp
	field  consentmode.Field
}

func indexHeaders(rules []consentmode.HeaderRule) *headerIndex {
	x := &headerIndex{exact: map[string]*headerRow{}}
	for _, r := range rules {
		row := &headerRow{op: r.Op}
		if r.Field != "" {
			row.field, _ = consentmode.LookupField(r.Field) // the catalogue holds every field of the table
		}
		switch name := r.Name; {
		case name == consentmode.HeaderGeo:
			x.geo = row
		case name == consentmode.HeaderListed:
			x.listed = row
		case name == consentmode.HeaderOther:
			x.other = row
		case strings.HasSuffix(name, "*"):
			row.prefix = canonicalHeader(strings.TrimSuffix(name, "*"))
			x.prefixes = append(x.prefixes, row)
		default:
			x.exact[canonicalHeader(name)] = row
		}
	}
	if x.geo == nil || x.listed == nil || x.other == nil {
		panic("proxy: the header table lacks the geo, listed or other row") // a static table
	}
	return x
}

// canonicalHeader spells a header name as fasthttp hands it over: upper
// case after each '-', lower case elsewhere ("Sec-Gpc", "X-Real-Ip").
func canonicalHeader(name string) string {
	b := []byte(strings.ToLower(name))
	for i := range b {
		if (i == 0 || b[i-1] == '-') && 'a' <= b[i] && b[i] <= 'z' {
			b[i] -= 'a' - 'A'
		}
	}
	return string(b)
}

// lookup returns the row for header k (canonical spelling); geo lists
// the configured geo headers.
func (x *headerIndex) lookup(k []byte, geo []string) *headerRow {
	if r, ok := x.exact[string(k)]; ok {
		return r
	}
	if isGeo(k, geo) {
		return x.geo
	}
	for _, r := range x.prefixes {
		if len(k) >= len(r.prefix) && bytes.EqualFold(k[:len(r.prefix)], []byte(r.prefix)) {
			return r
		}
	}
	return x.other
}

// copyHeaders copies the request headers that may travel from src to dst
// as consentmode.RequestHeaders says, and reports in hf what it left out.
// geo lists the configured geo headers (consumed, never forwarded). w and
// buf are working space.
func copyHeaders(dst, src *fasthttp.RequestHeader, geo []string, hf *consentmode.HeaderFindings, w *consentmode.Work, buf *[]byte) {
	conn := src.Peek("Connection")
	for k, v := range src.All() {
		switch r := requestHeaders.lookup(k, geo); r.op {
		case consentmode.HeaderForward:
			if len(conn) > 0 && listsToken(conn, k) {
				hf.Removed.Add(requestHeaders.listed.field)
				continue
			}
			var found bool
			*buf, found = w.RedactEmails((*buf)[:0], v)
			hf.EmailRedacted = hf.EmailRedacted || found
			dst.AddBytesKV(k, *buf)
		case consentmode.HeaderOrigin:
			copyReferer(dst, v, r.field, hf, w, buf)
		case consentmode.HeaderDrop:
			hf.Removed.Add(r.field)
		case consentmode.HeaderCookies, consentmode.HeaderTransport:
			// Decide rebuilds Cookie; the upstream client writes the rest.
		}
	}
}

func isGeo(k []byte, geo []string) bool {
	for _, g := range geo {
		if len(g) == len(k) && bytes.EqualFold(k, []byte(g)) {
			return true
		}
		if sub, ok := subdivisionHeader[g]; ok && len(sub) == len(k) && bytes.EqualFold(k, []byte(sub)) {
			return true
		}
	}
	return false
}

// connectionTokens yields the comma-separated tokens of a Connection
// header value, trimmed. The slices alias list.
func connectionTokens(list []byte) iter.Seq[[]byte] {
	return func(yield func([]byte) bool) {
		for len(list) > 0 {
			tok := list
			if i := bytes.IndexByte(list, ','); i >= 0 {
				tok, list = list[:i], list[i+1:]
			} else {
				list = nil
			}
			if t := trimSpace(tok); len(t) > 0 && !yield(t) {
				return
			}
		}
	}
}

// listsToken reports whether the Connection header value names header k.
func listsToken(conn, k []byte) bool {
	for tok := range connectionTokens(conn) {
		if bytes.EqualFold(tok, k) {
			return true
		}
	}
	return false
}

// copyReferer sets Referer to the origin of v ("https://shop.example/"),
// or drops it when v is not an absolute http(s) URL or its origin holds
// userinfo or an e-mail address. field is header:Referer, reported
// whenever the value does not travel whole.
func copyReferer(dst *fasthttp.RequestHeader, v []byte, field consentmode.Field, hf *consentmode.HeaderFindings, w *consentmode.Work, buf *[]byte) {
	rest, ok := bytes.CutPrefix(v, []byte("https://"))
	scheme := len("https://")
	if !ok {
		rest, ok = bytes.CutPrefix(v, []byte("http://"))
		scheme = len("http://")
	}
	if !ok {
		hf.Removed.Add(field)
		return
	}
	end := bytes.IndexAny(rest, "/?#")
	if end < 0 {
		end = len(rest)
	}
	if at := bytes.IndexByte(rest[:end], '@'); at >= 0 { // userinfo never travels
		hf.Removed.Add(field)
		return
	}
	origin := v[:scheme+end]
	if len(v) > len(origin)+1 {
		hf.Removed.Add(field)
	}
	if _, found := w.RedactEmails((*buf)[:0], origin); found {
		hf.Removed.Add(field)
		hf.EmailRedacted = true
		return
	}
	// An origin this long is no browser's: dropped rather than truncated.
	var ob [256]byte
	if len(origin) >= len(ob) {
		hf.Removed.Add(field)
		return
	}
	dst.SetBytesKV([]byte("Referer"), append(append(ob[:0], origin...), '/'))
}

// cleanResponse removes hop-by-hop headers (and those named in
// Connection), upstream CORS headers and every Set-Cookie the decision
// does not allow: none for cookieless or blocked hits, only Google cookies
// whose storage type is granted otherwise.
func cleanResponse(resp *fasthttp.Response, d *consentmode.Decision) {
	h := &resp.Header
	if conn := h.Peek("Connection"); len(conn) > 0 {
		// Copy the names first: deleting headers moves the bytes conn
		// points into. A list longer than names spills to the heap.
		var names [256]byte
		list := append(names[:0], conn...)
		for t := range connectionTokens(list) {
			if !bytes.EqualFold(t, []byte("close")) && !bytes.EqualFold(t, []byte("keep-alive")) {
				h.DelBytes(t)
			}
		}
	}
	for _, k := range consentmode.ResponseHeaders {
		h.Del(k)
	}
	if d.Action == consentmode.ActionCookieless || d.Action == consentmode.ActionBlock {
		h.DelAllCookies()
		return
	}
	var drop [8][64]byte
	var n [8]int
	count, overflow := 0, false
	for name := range h.Cookies() {
		if consentmode.CookieAllowed(name, &d.Consent) {
			continue
		}
		if count == len(drop) || len(name) > len(drop[0]) {
			overflow = true
			break
		}
		n[count] = copy(drop[count][:], name)
		count++
	}
	if overflow { // more or longer foreign cookies than tracked: none at all
		h.DelAllCookies()
		return
	}
	for i := 0; i < count; i++ {
		h.DelCookieBytes(drop[i][:n[i]])
	}
}
