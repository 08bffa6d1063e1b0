package proxy

import (
	"bufio"
	"strings"
	"testing"
	"time"

	"github.com/valyala/fasthttp"
)

// statusLine sends one request and returns the status line of the answer
// as it came over the wire.
func (g *gateway) statusLine(uri string) string {
	g.t.Helper()
	c, err := g.ln.DialWithLocalAddr(fromVisitor)
	if err != nil {
		g.t.Fatal(err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := c.Write([]byte("GET " + uri + " HTTP/1.1\r\nHost: metrics.shop.example\r\nConnection: close\r\n\r\n")); err != nil {
		g.t.Fatal(err)
	}
	line, err := bufio.NewReader(c).ReadString('\n')
	if err != nil {
		g.t.Fatal(err)
	}
	return strings.TrimRight(line, "\r\n")
}

// TestWithheldRedirectStatusLine: an off-site redirect withheld on a
// cookieless hit is answered "204 No Content", not with the reason phrase
// of Google's 302.
func TestWithheldRedirectStatusLine(t *testing.T) {
	g := newGateway(t, "")
	g.up.setRespond(func(ctx *fasthttp.RequestCtx) {
		ctx.Response.Header.Set("Location", "https://www.google.com/pagead/1p-conversion/123/?x=1")
		ctx.SetStatusCode(fasthttp.StatusFound)
	})
	if got := g.statusLine("/pagead/conversion/123/?gcs=G100&label=x"); got != "HTTP/1.1 204 No Content" {
		t.Errorf("status line %q, want HTTP/1.1 204 No Content", got)
	}
	// Granted: the redirect is relayed as Google sent it.
	if got := g.statusLine("/pagead/conversion/123/?gcs=G111&gcd=13r3r3r2r5l1&label=x"); got != "HTTP/1.1 302 Found" {
		t.Errorf("status line %q, want HTTP/1.1 302 Found", got)
	}
	if n := len(g.up.requests()); n != 2 {
		t.Errorf("upstream got %d requests, want 2", n)
	}
}
