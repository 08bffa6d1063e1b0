package proxy

import (
	"bytes"
	"iter"

	"github.com/valyala/fasthttp"

	"github.com/consentgate/consentgate/consentmode"
)

// forwardHeaders are the request headers that travel upstream: what a
// browser sends passively and Google needs to process a hit. Everything
// else stays behind (an allowlist: new proxy or CDN headers carrying the
// client IP or location cannot slip through). Cookie (rewritten by
// consentmode) and Referer (cut to its origin) are handled apart. Keys are
// canonical header names.
var forwardHeaders = map[string]bool{
	"User-Agent": true, "Accept": true, "Accept-Language": true, "Accept-Encoding": true,
	"Content-Type": true, "Origin": true, "Sec-Gpc": true, "Dnt": true,
	"Cache-Control": true, "Pragma": true,
	"Attribution-Reporting-Eligible": true, "Attribution-Reporting-Support": true,
}

// forwardPrefixes extend forwardHeaders: client hints and fetch metadata.
var forwardPrefixes = []string{"Sec-Ch-Ua", "Sec-Fetch-"}

// droppedAs names, for Removed, the headers that are dropped for a
// reason worth telling; any other dropped header is "header:other".
var droppedAs = map[string]consentmode.Field{
	"Authorization":       mustField("header:Authorization"),
	"Proxy-Authorization": mustField("header:Proxy-Authorization"),
	"X-Api-Key":           mustField("header:X-Api-Key"),
	"Keep-Alive":          mustField("header:hop-by-hop"),
	"Proxy-Connection":    mustField("header:hop-by-hop"),
	"Te":                  mustField("header:hop-by-hop"),
	"Trailer":             mustField("header:hop-by-hop"),
	"Upgrade":             mustField("header:hop-by-hop"),
	"Forwarded":           mustField("header:X-Forwarded-For"),
	"X-Real-Ip":           mustField("header:X-Forwarded-For"),
	"True-Client-Ip":      mustField("header:X-Forwarded-For"),
	"Cf-Connecting-Ip":    mustField("header:X-Forwarded-For"),
	"X-Client-Ip":         mustField("header:X-Forwarded-For"),
	"Fastly-Client-Ip":    mustField("header:X-Forwarded-For"),
}

// silent are headers fasthttp sets itself or the proxy handles apart.
var silent = map[string]bool{"Host": true, "Content-Length": true, "Transfer-Encoding": true, "Connection": true, "Cookie": true}

func mustField(name string) consentmode.Field {
	f, _ := consentmode.LookupField(name)
	return f
}

var (
	fieldReferer     = mustField("header:Referer")
	fieldGeo         = mustField("header:geo")
	fieldHopByHop    = mustField("header:hop-by-hop")
	fieldXFF         = mustField("header:X-Forwarded-For")
	fieldCookieHdr   = mustField("header:Cookie")
	fieldHeaderOther = mustField("header:other")
	fieldEmail       = mustField("email")
)

// copyHeaders copies the request headers that may travel from src to dst,
// and records what it left out in d. geo lists the configured geo
// headers (consumed, never forwarded). E-mail addresses in a forwarded
// value (a User-Agent, Accept-Language or client hint a script or
// extension filled in) are redacted; w and buf are working space.
func copyHeaders(dst, src *fasthttp.RequestHeader, geo []string, d *consentmode.Decision, w *consentmode.Work, buf *[]byte) {
	removed := &d.Removed
	conn := src.Peek("Connection")
	for k, v := range src.All() {
		name := string(k)
		switch {
		case silent[name]:
		case name == "Referer":
			copyReferer(dst, v, d, w, buf)
		case forwardHeaders[name] || hasPrefix(k, forwardPrefixes):
			if len(conn) > 0 && listsToken(conn, k) {
				removed.Add(fieldHopByHop)
				continue
			}
			var found bool
			*buf, found = w.RedactEmails((*buf)[:0], v)
			if found {
				removed.Add(fieldEmail)
				d.Reasons.Add(consentmode.ReasonEmailRedacted)
			}
			dst.AddBytesKV(k, *buf)
		case droppedAs[name] != 0:
			removed.Add(droppedAs[name])
		case isGeo(k, geo):
			removed.Add(fieldGeo)
		case len(k) > 12 && bytes.EqualFold(k[:12], []byte("X-Forwarded-")):
			removed.Add(fieldXFF)
		default:
			removed.Add(fieldHeaderOther)
		}
	}
}

func hasPrefix(k []byte, prefixes []string) bool {
	for _, p := range prefixes {
		if len(k) >= len(p) && bytes.EqualFold(k[:len(p)], []byte(p)) {
			return true
		}
	}
	return false
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
// an e-mail address.
func copyReferer(dst *fasthttp.RequestHeader, v []byte, d *consentmode.Decision, w *consentmode.Work, buf *[]byte) {
	removed := &d.Removed
	rest, ok := bytes.CutPrefix(v, []byte("https://"))
	scheme := len("https://")
	if !ok {
		rest, ok = bytes.CutPrefix(v, []byte("http://"))
		scheme = len("http://")
	}
	if !ok {
		removed.Add(fieldReferer)
		return
	}
	end := bytes.IndexAny(rest, "/?#")
	if end < 0 {
		end = len(rest)
	}
	if at := bytes.IndexByte(rest[:end], '@'); at >= 0 { // userinfo never travels
		removed.Add(fieldReferer)
		return
	}
	origin := v[:scheme+end]
	if len(v) > len(origin)+1 {
		removed.Add(fieldReferer)
	}
	if _, found := w.RedactEmails((*buf)[:0], origin); found {
		removed.Add(fieldReferer)
		removed.Add(fieldEmail)
		d.Reasons.Add(consentmode.ReasonEmailRedacted)
		return
	}
	var ob [256]byte
	if len(origin) >= len(ob) {
		removed.Add(fieldReferer)
		return
	}
	dst.SetBytesKV([]byte("Referer"), append(append(ob[:0], origin...), '/'))
}

// responseHopByHop are response headers that never reach the browser.
var responseHopByHop = []string{"Keep-Alive", "Proxy-Connection", "Proxy-Authenticate", "Te", "Trailer", "Upgrade",
	"Access-Control-Allow-Origin", "Access-Control-Allow-Credentials", "Access-Control-Allow-Methods",
	"Access-Control-Allow-Headers", "Access-Control-Expose-Headers", "Access-Control-Max-Age", "Alt-Svc"}

// cleanResponse removes hop-by-hop headers (and those named in
// Connection), upstream CORS headers and every Set-Cookie the decision
// does not allow: none for cookieless or blocked hits, only Google cookies
// whose storage type is granted otherwise.
func cleanResponse(resp *fasthttp.Response, d *consentmode.Decision) {
	h := &resp.Header
	if conn := h.Peek("Connection"); len(conn) > 0 {
		// Copy the names first: deleting headers moves the bytes conn points into.
		var names [256]byte
		list := append(names[:0], conn...)
		for t := range connectionTokens(list) {
			if !bytes.EqualFold(t, []byte("close")) && !bytes.EqualFold(t, []byte("keep-alive")) {
				h.DelBytes(t)
			}
		}
	}
	for _, k := range responseHopByHop {
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
