package proxy

import (
	"bytes"
	"strings"
	"sync/atomic"

	"github.com/valyala/fasthttp"
	"golang.org/x/net/publicsuffix"

	"github.com/consentgate/consentgate/config"
)

// originAllowed reports whether origin may get CORS headers: listed in
// cors.allowed_origins (compared without case), or, with the list empty,
// an http(s) origin of the same registrable domain as host, the request's
// Host (sameSite).
func originAllowed(cfg *config.Config, origin, host []byte, sites *siteCache) bool {
	if len(origin) > 256 { // no browser's origin is this long: not allowed
		return false
	}
	var buf [256]byte
	low := buf[:len(origin)]
	for i, c := range origin {
		if 'A' <= c && c <= 'Z' {
			c += 'a' - 'A'
		}
		low[i] = c
	}
	if len(cfg.CORSOrigins) > 0 {
		return cfg.CORSOrigins[string(low)]
	}
	return sites.sameSite(low, host)
}

// siteCache remembers the registrable domain (eTLD+1, from the public
// suffix list) of the last request Host, so that the usual single Host
// costs one lookup per process, not one allocation per hit.
type siteCache struct {
	last atomic.Pointer[site]
}

type site struct {
	host, domain string // domain is "" when host has no registrable domain (an IP, localhost)
}

// registrable returns the registrable domain of host (lower case, no port).
func (c *siteCache) registrable(host []byte) string {
	if s := c.last.Load(); s != nil && s.host == string(host) {
		return s.domain
	}
	h := string(bytes.ToLower(stripPort(host)))
	domain, err := publicsuffix.EffectiveTLDPlusOne(h)
	if err != nil || strings.IndexByte(h, ':') >= 0 {
		domain = ""
	}
	c.last.Store(&site{host: string(host), domain: domain})
	return domain
}

// sameSite reports whether origin (lower case) is http(s)://<host>[:port]
// where host is the registrable domain of the request's Host or a name
// under it.
func (c *siteCache) sameSite(origin, host []byte) bool {
	rest, ok := bytes.CutPrefix(origin, []byte("https://"))
	if !ok {
		if rest, ok = bytes.CutPrefix(origin, []byte("http://")); !ok {
			return false
		}
	}
	oh := stripPort(rest)
	domain := c.registrable(host)
	if domain == "" || len(oh) < len(domain) || string(oh[len(oh)-len(domain):]) != domain {
		return false
	}
	return len(oh) == len(domain) || oh[len(oh)-len(domain)-1] == '.'
}

// stripPort cuts a trailing ":port" from a host (IPv6 literals in
// brackets are kept whole and have no registrable domain anyway).
func stripPort(h []byte) []byte {
	if i := bytes.LastIndexByte(h, ':'); i >= 0 && bytes.IndexByte(h[i:], ']') < 0 {
		return h[:i]
	}
	return h
}

// sameOrigin reports whether Origin names the host the request came to
// (tag-gateway style: the site's own host).
func sameOrigin(ctx *fasthttp.RequestCtx, origin []byte) bool {
	_, host, ok := bytes.Cut(origin, []byte("://"))
	return ok && bytes.EqualFold(host, ctx.Host())
}

// setCORS echoes an allowed origin, with credentials. Never "*": gtag's
// requests carry cookies.
func setCORS(h *fasthttp.ResponseHeader, origin []byte) {
	h.SetBytesV("Access-Control-Allow-Origin", origin)
	h.Set("Access-Control-Allow-Credentials", "true")
	h.Add("Vary", "Origin")
}

// preflight answers an OPTIONS request locally; nothing is forwarded.
func (h *Handler) preflight(ctx *fasthttp.RequestCtx, origin []byte, allowed bool) {
	if !allowed {
		if len(origin) == 0 {
			ctx.SetStatusCode(fasthttp.StatusNoContent)
			ctx.Response.Header.Set("Allow", "GET, HEAD, POST, OPTIONS")
			return
		}
		h.writeError(ctx, errOriginNotAllowed, -1)
		return
	}
	rh := &ctx.Response.Header
	setCORS(rh, origin)
	rh.Set("Access-Control-Allow-Methods", "GET, POST, OPTIONS")
	// Only Content-Type: a page script must not be able to set geo or
	// forwarding headers on a hit.
	rh.Set("Access-Control-Allow-Headers", "Content-Type")
	rh.Set("Access-Control-Max-Age", "86400")
	ctx.SetStatusCode(fasthttp.StatusNoContent)
}
