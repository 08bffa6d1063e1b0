package proxy

import (
	"bytes"
	"net"
	"net/netip"

	"github.com/valyala/fasthttp"

	"github.com/consentgate/consentgate/consentmode"
)

// trusted reports whether addr is one of the configured trusted proxies.
func trusted(prefixes []netip.Prefix, addr netip.Addr) bool {
	addr = addr.Unmap()
	for _, p := range prefixes {
		if p.Contains(addr) {
			return true
		}
	}
	return false
}

// remoteAddr returns the peer address of the connection.
func remoteAddr(ctx *fasthttp.RequestCtx) netip.Addr {
	if a, ok := ctx.RemoteAddr().(*net.TCPAddr); ok {
		ip, _ := netip.AddrFromSlice(a.IP)
		return ip.Unmap()
	}
	return netip.Addr{}
}

// clientIP works out the visitor's address: the peer itself, or, when the
// peer is a trusted proxy, the right-most X-Forwarded-For entry that is
// not a trusted proxy. A malformed entry stops the walk at the last good
// address.
func clientIP(h *fasthttp.RequestHeader, peer netip.Addr, prefixes []netip.Prefix) netip.Addr {
	if !trusted(prefixes, peer) {
		return peer
	}
	client := peer
	values := h.PeekAll("X-Forwarded-For")
	for i := len(values) - 1; i >= 0; i-- {
		list := values[i]
		for len(list) > 0 {
			j := len(list) - 1
			for j >= 0 && list[j] != ',' {
				j--
			}
			entry := trimSpace(list[j+1:])
			if j >= 0 {
				list = list[:j]
			} else {
				list = nil
			}
			ip, err := netip.ParseAddr(string(entry))
			if err != nil {
				return client
			}
			ip = ip.Unmap()
			client = ip
			if !trusted(prefixes, ip) {
				return client
			}
		}
	}
	return client
}

func trimSpace(b []byte) []byte {
	for len(b) > 0 && (b[0] == ' ' || b[0] == '\t') {
		b = b[1:]
	}
	for len(b) > 0 && (b[len(b)-1] == ' ' || b[len(b)-1] == '\t') {
		b = b[:len(b)-1]
	}
	return b
}

// subdivisionHeader names, for a country header, the header some CDNs
// send the ISO 3166-2 subdivision in.
var subdivisionHeader = map[string]string{
	"CloudFront-Viewer-Country": "CloudFront-Viewer-Country-Region",
	"X-Appengine-Country":       "X-Appengine-Region",
	"X-Gclb-Country":            "X-Gclb-Region",
	"X-Vercel-Ip-Country":       "X-Vercel-Ip-Country-Region",
}

// region reads the visitor's region from the configured geo headers.
// Only trusted peers' headers count. The first header present decides; an
// invalid value there (Cloudflare's XX, say) means unknown, and so does a
// second present header naming another country, or a second copy of the
// same header with another value: an edge that sets one header may pass
// the others (or another copy) through from the browser, and a spoofed
// header must never turn a denied region into a granted one. conflict
// reports that copies disagreed.
func region(h *fasthttp.RequestHeader, peerTrusted bool, headers []string) (r consentmode.Region, conflict bool) {
	if !peerTrusted {
		return consentmode.Region{}, false
	}
	var found consentmode.Region
	seen := false
	for _, name := range headers {
		v, ok := single(h, name)
		if !ok {
			return consentmode.Region{}, true
		}
		if len(v) == 0 {
			continue
		}
		r, ok := consentmode.ParseRegion(v)
		if seen {
			if !ok || r.Country() != found.Country() {
				return consentmode.Region{}, true
			}
			continue
		}
		seen = true
		if !ok {
			return consentmode.Region{}, false
		}
		if !r.HasSubdivision() {
			if sub, ok := subdivisionHeader[name]; ok {
				s, ok := single(h, sub)
				if !ok {
					return consentmode.Region{}, true
				}
				if s = trimSpace(s); len(s) > 0 && len(s) <= 3 {
					var buf [6]byte
					full := append(append(append(buf[:0], r[0], r[1]), '-'), s...)
					if rs, ok := consentmode.ParseRegion(full); ok {
						r = rs
					}
				}
			}
		}
		found = r
	}
	return found, false
}

// single returns the value of header name, or ok false when it appears
// more than once with values that differ (compared trimmed, without
// case). The value aliases h.
func single(h *fasthttp.RequestHeader, name string) (v []byte, ok bool) {
	values := h.PeekAll(name)
	if len(values) == 0 {
		return nil, true
	}
	v = values[0]
	for _, o := range values[1:] {
		if !bytes.EqualFold(trimSpace(o), trimSpace(v)) {
			return nil, false
		}
	}
	return v, true
}
