// Command stub is the upstream of the load benchmark (bench/run.sh): a
// tiny fasthttp server that answers like Google's collection endpoints.
//
// Paths ending in /gtag/js, /gtag.js or /gtm.js get a fixed, deterministic
// JavaScript body of about 100 KB (Content-Type application/javascript,
// Cache-Control public, max-age=900); every other path gets 204 with an
// empty body, as a collect endpoint does. Request bodies are read and
// dropped.
//
// With -delay D every non-script answer leaves the stub D after its
// request was read, like an upstream D of network latency away (Google
// seen from a data centre). The delay is a delay line on each connection,
// not a sleep in the handler: the stub reads and answers the next request
// at once and only the bytes of the answers wait. So concurrent requests
// overlap (fasthttp serves each connection in its own goroutine), and so
// do requests pipelined on one connection, as they would over a real
// network path; answers keep their order on their connection.
//
//	go run ./bench/stub -listen 127.0.0.1:9100
//	go run ./bench/stub -listen 127.0.0.1:9101 -delay 40ms
//	go run ./bench/stub -dump script.js   # write the script body and exit
//
// It is a benchmark tool, not part of the gateway.
package main

import (
	"bytes"
	"flag"
	"fmt"
	"log"
	"net"
	"os"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/valyala/fasthttp"
)

// scriptSize is the approximate size of the script body in bytes.
const scriptSize = 100 << 10

func main() {
	listen := flag.String("listen", "127.0.0.1:9100", "listen `address`")
	dump := flag.String("dump", "", "write the script body to `file` and exit")
	delay := flag.Duration("delay", 0, "send every non-script answer this `long` after its request was read (upstream latency)")
	flag.Parse()
	if *delay < 0 {
		log.Fatal("-delay must not be negative")
	}

	script := makeScript(scriptSize)
	if *dump != "" {
		if err := os.WriteFile(*dump, script, 0o644); err != nil {
			log.Fatal(err)
		}
		return
	}
	srv := &fasthttp.Server{
		Handler:                       handler(script, *delay),
		Name:                          "stub",
		ReadTimeout:                   30 * time.Second,
		WriteTimeout:                  30 * time.Second,
		IdleTimeout:                   120 * time.Second,
		NoDefaultDate:                 true,
		NoDefaultContentType:          true,
		DisableHeaderNamesNormalizing: true,
		Concurrency:                   1 << 20,
	}
	ln, err := net.Listen("tcp4", *listen)
	if err != nil {
		log.Fatal(err)
	}
	if *delay > 0 {
		ln = delayListener{ln}
	}
	log.Printf("stub listening on %s (script %d bytes, delay %s)", *listen, len(script), *delay)
	if err := srv.Serve(ln); err != nil {
		log.Fatal(err)
	}
}

// handler answers scripts with script and everything else with 204, the
// latter delay after the request was read.
func handler(script []byte, delay time.Duration) fasthttp.RequestHandler {
	return func(ctx *fasthttp.RequestCtx) {
		if isScript(ctx.Path()) {
			ctx.Response.Header.Set("Content-Type", "application/javascript; charset=utf-8")
			ctx.Response.Header.Set("Cache-Control", "public, max-age=900")
			ctx.Response.SetBodyRaw(script)
			return
		}
		if delay > 0 {
			if dc, ok := ctx.Conn().(*delayConn); ok {
				dc.holdUntil(time.Now().Add(delay))
			}
		}
		ctx.SetStatusCode(fasthttp.StatusNoContent)
	}
}

// delayListener hands out delayConns.
type delayListener struct{ net.Listener }

func (l delayListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	dc := &delayConn{Conn: c, q: make(chan chunk, 1024)}
	go dc.writer()
	return dc, nil
}

// delayConn is a connection whose written bytes leave no earlier than the
// time the handler set with holdUntil for the latest answer among them.
// Write copies the bytes and returns at once, so the server goes on to
// the next request; a goroutine per connection writes them when due, in
// order.
type delayConn struct {
	net.Conn
	due atomic.Int64 // Unix nanoseconds: the latest answer's send time
	q   chan chunk
	err atomic.Pointer[error] // the writer's first error

	mu     sync.Mutex // orders Write against Close
	closed bool
}

// chunk is one Write, held until due.
type chunk struct {
	b   []byte
	due int64
}

func (c *delayConn) holdUntil(t time.Time) { c.due.Store(t.UnixNano()) }

func (c *delayConn) Write(b []byte) (int, error) {
	if e := c.err.Load(); e != nil {
		return 0, *e
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return 0, net.ErrClosed
	}
	c.q <- chunk{b: append([]byte(nil), b...), due: c.due.Load()}
	return len(b), nil
}

// Close lets the writer send what is queued, then closes the connection.
func (c *delayConn) Close() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.closed {
		c.closed = true
		close(c.q)
	}
	return nil
}

func (c *delayConn) writer() {
	defer func() { _ = c.Conn.Close() }()
	for ch := range c.q {
		if d := time.Until(time.Unix(0, ch.due)); d > 0 {
			time.Sleep(d)
		}
		if c.err.Load() != nil {
			continue // drop the rest; Close ends the loop
		}
		if _, err := c.Conn.Write(ch.b); err != nil {
			c.err.Store(&err)
		}
	}
}

// isScript reports whether path names a tag script.
func isScript(path []byte) bool {
	return bytes.HasSuffix(path, []byte("/gtag/js")) ||
		bytes.HasSuffix(path, []byte("/gtag.js")) ||
		bytes.HasSuffix(path, []byte("/gtm.js"))
}

// makeScript returns about size bytes of JavaScript-looking text. The
// content is deterministic (a fixed-seed generator), so every run and the
// copy nginx serves from disk are byte for byte the same, and it
// compresses roughly like minified tag code.
func makeScript(size int) []byte {
	var b bytes.Buffer
	b.Grow(size + 256)
	b.WriteString("/* consentgate load-benchmark stub script; not Google's code */\n(function(){var w=window,d=document;")
	x := uint32(2463534242)
	next := func() uint32 { // xorshift32
		x ^= x << 13
		x ^= x >> 17
		x ^= x << 5
		return x
	}
	words := []string{"push", "dataLayer", "consent", "update", "analytics_storage", "ad_storage", "granted", "denied",
		"config", "event", "page_view", "send_to", "value", "currency", "items", "gtag", "function", "return", "length"}
	for i := 0; b.Len() < size; i++ {
		n := next()
		fmt.Fprintf(&b, "function f%d(a,b){var %s=%q,%s=%d;if(a&&a.%s){return b[%d]+%s+%s}return %s^%d}",
			i, ident(next()), words[n%uint32(len(words))], ident(next()), next()%1000000, words[(n>>8)%uint32(len(words))],
			n%97, ident(next()), strconv.Quote(words[(n>>16)%uint32(len(words))]), ident(next()), n>>20)
		if i%8 == 7 {
			b.WriteByte('\n')
		}
	}
	b.WriteString("})();\n")
	return b.Bytes()
}

// ident returns a short identifier made from n, like a minifier's names.
func ident(n uint32) string {
	const letters = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ_$"
	var s [3]byte
	for i := range s {
		s[i] = letters[n%uint32(len(letters))]
		n /= uint32(len(letters))
	}
	return string(s[:])
}
