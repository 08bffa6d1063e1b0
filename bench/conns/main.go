// Command conns opens many keep-alive connections to one HTTP/1.1 server,
// sends one request on each, reads the answer and then holds them all
// idle, so that the server's memory with that many idle clients can be
// read (bench/run.sh reads VmRSS from /proc).
//
//	go run ./bench/conns -addr 127.0.0.1:8080 -n 10000 -hold 30s \
//	    -path '/g/collect?v=2&tid=G-ABC123&en=page_view' -H 'CF-IPCountry: DE'
//
// It prints "ready N" once N connections are open and answered, then
// holds them until -hold has passed or it is interrupted. It is a
// benchmark tool, not part of the gateway.
package main

import (
	"bufio"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// headers collects repeated -H flags.
type headers []string

func (h *headers) String() string     { return strings.Join(*h, ", ") }
func (h *headers) Set(v string) error { *h = append(*h, v); return nil }

func main() {
	addr := flag.String("addr", "127.0.0.1:8080", "server `host:port` (loopback only)")
	n := flag.Int("n", 10000, "number of connections")
	path := flag.String("path", "/", "request `URI` sent once on each connection")
	host := flag.String("host", "metrics.shop.example", "Host header")
	hold := flag.Duration("hold", 30*time.Second, "how long to hold the idle connections")
	par := flag.Int("parallel", 64, "connections opened at once")
	var hdrs headers
	flag.Var(&hdrs, "H", "extra request header `Name: value` (repeatable)")
	flag.Parse()

	if err := checkLoopback(*addr); err != nil {
		fmt.Fprintln(os.Stderr, "conns:", err)
		os.Exit(2)
	}
	req := buildRequest(*path, *host, hdrs)

	conns := make([]net.Conn, *n)
	var failed atomic.Int64
	var firstErr atomic.Value
	var wg sync.WaitGroup
	sem := make(chan struct{}, max(*par, 1))
	for i := range conns {
		wg.Add(1)
		sem <- struct{}{}
		go func(i int) {
			defer wg.Done()
			defer func() { <-sem }()
			c, err := open(*addr, req)
			if err != nil {
				failed.Add(1)
				firstErr.CompareAndSwap(nil, err.Error())
				return
			}
			conns[i] = c
		}(i)
	}
	wg.Wait()
	ok := *n - int(failed.Load())
	if f := failed.Load(); f > 0 {
		fmt.Fprintf(os.Stderr, "conns: %d of %d connections failed; first error: %v\n", f, *n, firstErr.Load())
	}
	fmt.Printf("ready %d\n", ok)

	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGTERM, os.Interrupt)
	select {
	case <-sig:
	case <-time.After(*hold):
	}
	for _, c := range conns {
		if c != nil {
			_ = c.Close()
		}
	}
	if ok == 0 {
		os.Exit(1)
	}
}

// buildRequest returns one GET request with keep-alive.
func buildRequest(path, host string, hdrs headers) []byte {
	var b strings.Builder
	fmt.Fprintf(&b, "GET %s HTTP/1.1\r\nHost: %s\r\nUser-Agent: consentgate-bench-conns\r\nAccept: */*\r\n", path, host)
	for _, h := range hdrs {
		b.WriteString(h)
		b.WriteString("\r\n")
	}
	b.WriteString("\r\n")
	return []byte(b.String())
}

// open dials addr, sends req and reads the whole answer, leaving the
// connection open and idle.
func open(addr string, req []byte) (net.Conn, error) {
	c, err := net.DialTimeout("tcp", addr, 10*time.Second)
	if err != nil {
		return nil, err
	}
	_ = c.SetDeadline(time.Now().Add(30 * time.Second))
	if _, err := c.Write(req); err != nil {
		_ = c.Close()
		return nil, err
	}
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		_ = c.Close()
		return nil, err
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	_ = resp.Body.Close()
	if resp.Close {
		_ = c.Close()
		return nil, errors.New("server closed the connection after the request")
	}
	_ = c.SetDeadline(time.Time{})
	return c, nil
}

// checkLoopback refuses any target that is not a loopback address.
func checkLoopback(addr string) error {
	h, _, err := net.SplitHostPort(addr)
	if err != nil {
		return err
	}
	ip := net.ParseIP(h)
	if h == "localhost" || (ip != nil && ip.IsLoopback()) {
		return nil
	}
	return fmt.Errorf("%s is not a loopback address", addr)
}
