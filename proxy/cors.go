package proxy

import (
	"bytes"

	"github.com/valyala/fasthttp"

	"github.com/consentgate/consentgate/config"
)

// originAllowed reports whether origin is listed in cors.allowed_origins
// (compared without case).
func originAllowed(cfg *config.Config, origin []byte) bool {
	if len(cfg.CORSOrigins) == 0 || len(origin) > 256 {
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
	return cfg.CORSOrigins[string(low)]
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
