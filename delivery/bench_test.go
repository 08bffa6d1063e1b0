package delivery

import (
	"fmt"
	"net"
	"testing"
	"time"

	"github.com/VictoriaMetrics/metrics"
	"github.com/valyala/fasthttp"
)

func benchRequest() *fasthttp.Request {
	req := new(fasthttp.Request)
	req.Header.SetMethod("GET")
	req.Header.Set("User-Agent", "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/136.0.0.0 Safari/537.36")
	req.Header.Set("Accept-Language", "de-DE,de;q=0.9")
	req.Header.Set("X-Forwarded-For", "192.0.2.1")
	return req
}

var benchQuery = []byte("v=2&tid=G-F9XM71K45T&gtm=45he5641&_p=1749196701069&gcs=G100&gcd=13p3p3p2p5l1&npa=1&dma=1&cid=911708555.1749196701&ul=de-de&sr=1920x1080&_s=1&sid=1749196701&sct=1&seg=0&dl=https%3A%2F%2Fshop.example%2F&dt=Home&en=page_view&tfd=1523")

// The payload is built once, as the bytes that go on the wire: no
// allocation, and nothing to decode per attempt.
func BenchmarkAppendWire(b *testing.B) {
	req := benchRequest()
	var buf []byte
	b.ReportAllocs()
	for b.Loop() {
		buf = appendWire(buf[:0], 3, req, "region1.google-analytics.com", []byte("/g/collect"), benchQuery)
	}
}

// What version 1 cost per attempt: decode the payload into a request
// (and fasthttp then serialised it again).
func BenchmarkDecodePayloadV1(b *testing.B) {
	payload := appendPayload(nil, 3, benchRequest(), []byte("/g/collect"), benchQuery)
	var req fasthttp.Request
	b.ReportAllocs()
	for b.Loop() {
		if _, err := decodePayload(&req, payload, "https", "region1.google-analytics.com"); err != nil {
			b.Fatal(err)
		}
	}
}

// Accepting hits from many goroutines at once, with the spool on and a
// real upstream on loopback: allocations per hit, and how many hits share
// a spool write and an upstream write (the system calls that batching
// saves), reported as metrics.
func BenchmarkAcceptBatched(b *testing.B) {
	// A fasthttp upstream (no allocation per request of its own, unlike
	// the tests' net/http-based one).
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	srv := &fasthttp.Server{Handler: func(ctx *fasthttp.RequestCtx) { ctx.SetStatusCode(fasthttp.StatusNoContent) }}
	go func() { _ = srv.Serve(ln) }()
	defer func() { _ = srv.Shutdown() }()
	set := metrics.NewSet()
	d, err := Start(Options{MaxAge: time.Hour, QueueSize: 10000, QueueBytes: 32 << 20, Workers: 256, PipelineConns: 2,
		SpoolDir: b.TempDir(), SpoolSync: 50 * time.Millisecond, Timeout: 5 * time.Second, Metrics: NewMetrics(set, []string{"a"})})
	if err != nil {
		b.Fatal(err)
	}
	defer d.Shutdown(time.Minute)
	addr := ln.Addr().String()
	l, err := d.Lane(Upstream{Scheme: "http", Host: "collect.example", Client: &fasthttp.HostClient{Addr: addr}})
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	b.SetParallelism(32)
	b.RunParallel(func(pb *testing.PB) {
		req := benchRequest()
		for pb.Next() {
			if err := l.Accept(0, req, []byte("/g/collect"), benchQuery, time.Now()); err != nil {
				b.Error(err)
				return
			}
		}
	})
	b.StopTimer()
	d.Shutdown(time.Minute) // returns once every hit is settled (it waits on their signals)
	name := func(s string) string { return fmt.Sprintf("%s{upstream=%q}", s, "http://collect.example") }
	hits := float64(b.N)
	var spoolWrites float64
	set.WritePrometheus(metricsWriter(func(line string) {
		var v float64
		if _, err := fmt.Sscanf(line, name("consentgate_delivery_spool_writes")+" %g", &v); err == nil {
			spoolWrites = v
		}
	}))
	upWrites := float64(set.GetOrCreateCounter(name("consentgate_delivery_upstream_writes_total")).Get())
	b.ReportMetric(hits/max(spoolWrites, 1), "hits/spool-write")
	b.ReportMetric(hits/max(upWrites, 1), "hits/upstream-write")
}

// metricsWriter hands each line written to it to f.
type metricsWriter func(line string)

func (w metricsWriter) Write(p []byte) (int, error) {
	start := 0
	for i, c := range p {
		if c == '\n' {
			w(string(p[start:i]))
			start = i + 1
		}
	}
	return len(p), nil
}
