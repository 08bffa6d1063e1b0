// Command bareproxy is the reference row of the load benchmark
// (bench/run.sh): the smallest fasthttp reverse proxy, one HostClient.Do
// per request with no consent logic, no header hygiene and no metrics.
// It shows what the Go runtime and fasthttp cost on their own, so that the
// gap between consentgate and nginx can be split into "the platform" and
// "consentgate's own work".
//
//	go run ./bench/bareproxy -listen 127.0.0.1:8081 -upstream 127.0.0.1:9100
//
// It is a benchmark tool, not part of the gateway.
package main

import (
	"flag"
	"log"
	"time"

	"github.com/valyala/fasthttp"
)

func main() {
	listen := flag.String("listen", "127.0.0.1:8081", "listen `address`")
	upstream := flag.String("upstream", "127.0.0.1:9100", "upstream `host:port` (plain HTTP)")
	flag.Parse()

	hc := &fasthttp.HostClient{
		Addr:                          *upstream,
		MaxConns:                      1024,
		ReadTimeout:                   5 * time.Second,
		WriteTimeout:                  5 * time.Second,
		MaxIdleConnDuration:           15 * time.Second,
		DisablePathNormalizing:        true,
		NoDefaultUserAgentHeader:      true,
		DisableHeaderNamesNormalizing: false,
	}
	srv := &fasthttp.Server{
		Handler: func(ctx *fasthttp.RequestCtx) {
			ctx.Request.Header.Del("Connection")
			if err := hc.Do(&ctx.Request, &ctx.Response); err != nil {
				ctx.Response.Reset()
				ctx.SetStatusCode(fasthttp.StatusBadGateway)
			}
		},
		Name:         "bareproxy",
		ReadTimeout:  10 * time.Second,
		WriteTimeout: 10 * time.Second,
		IdleTimeout:  60 * time.Second,
	}
	log.Printf("bareproxy listening on %s, upstream %s", *listen, *upstream)
	if err := srv.ListenAndServe(*listen); err != nil {
		log.Fatal(err)
	}
}
