// Command stub is the upstream of the load benchmark (bench/run.sh): a
// tiny fasthttp server that answers like Google's collection endpoints.
//
// Paths ending in /gtag/js, /gtag.js or /gtm.js get a fixed, deterministic
// JavaScript body of about 100 KB (Content-Type application/javascript,
// Cache-Control public, max-age=900); every other path gets 204 with an
// empty body, as a collect endpoint does. Request bodies are read and
// dropped.
//
//	go run ./bench/stub -listen 127.0.0.1:9100
//	go run ./bench/stub -dump script.js   # write the script body and exit
//
// It is a benchmark tool, not part of the gateway.
package main

import (
	"bytes"
	"flag"
	"fmt"
	"log"
	"os"
	"strconv"
	"time"

	"github.com/valyala/fasthttp"
)

// scriptSize is the approximate size of the script body in bytes.
const scriptSize = 100 << 10

func main() {
	listen := flag.String("listen", "127.0.0.1:9100", "listen `address`")
	dump := flag.String("dump", "", "write the script body to `file` and exit")
	flag.Parse()

	script := makeScript(scriptSize)
	if *dump != "" {
		if err := os.WriteFile(*dump, script, 0o644); err != nil {
			log.Fatal(err)
		}
		return
	}
	srv := &fasthttp.Server{
		Handler:                       handler(script),
		Name:                          "stub",
		ReadTimeout:                   30 * time.Second,
		WriteTimeout:                  30 * time.Second,
		IdleTimeout:                   120 * time.Second,
		NoDefaultDate:                 true,
		NoDefaultContentType:          true,
		DisableHeaderNamesNormalizing: true,
		Concurrency:                   1 << 20,
	}
	log.Printf("stub listening on %s (script %d bytes)", *listen, len(script))
	if err := srv.ListenAndServe(*listen); err != nil {
		log.Fatal(err)
	}
}

// handler answers scripts with script and everything else with 204.
func handler(script []byte) fasthttp.RequestHandler {
	return func(ctx *fasthttp.RequestCtx) {
		if isScript(ctx.Path()) {
			ctx.Response.Header.Set("Content-Type", "application/javascript; charset=utf-8")
			ctx.Response.Header.Set("Cache-Control", "public, max-age=900")
			ctx.Response.SetBodyRaw(script)
			return
		}
		ctx.SetStatusCode(fasthttp.StatusNoContent)
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
