package proxy

import (
	"bufio"
	"bytes"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/valyala/fasthttp"
	"github.com/valyala/fasthttp/fasthttputil"
	"go.uber.org/goleak"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	"github.com/consentgate/consentgate/config"
	"github.com/consentgate/consentgate/declog"
)

func TestMain(m *testing.M) {
	// Every test config drains at once and writes no decision log of its
	// own, whatever the environment says. Set here rather than with
	// t.Setenv in loadConfig so that tests using it can run in parallel; a
	// test that sets more with t.Setenv stays sequential (and runs before
	// the parallel ones).
	_ = os.Setenv("CONSENTGATE_TIMEOUTS_DRAIN", "0s")
	_ = os.Setenv("CONSENTGATE_LOG_DECISIONS_OUTPUT", "off")
	goleak.VerifyTestMain(m,
		// fasthttp's own housekeeping goroutines sleep out their period
		// after Shutdown and CloseIdleConnections, then exit.
		goleak.IgnoreAnyFunction("github.com/valyala/fasthttp.(*workerPool).Start.func2"),
		goleak.IgnoreAnyFunction("github.com/valyala/fasthttp.(*HostClient).connsCleaner"),
		goleak.IgnoreAnyFunction("github.com/valyala/fasthttp.(*TCPDialer).tcpAddrEntryCleaner"),
		goleak.IgnoreAnyFunction("github.com/valyala/fasthttp.updateServerDate.func1"),
		// PipelineClient (delivery.pipeline_conns) has no Close: its
		// connection goroutines end after MaxIdleConnDuration idle.
		goleak.IgnoreAnyFunction("github.com/valyala/fasthttp.(*pipelineConnClient).worker"),
		goleak.IgnoreAnyFunction("github.com/valyala/fasthttp.(*pipelineConnClient).writer"),
		goleak.IgnoreAnyFunction("github.com/valyala/fasthttp.(*pipelineConnClient).reader"),
	)
}

// recorded is what the fake upstream received.
type recorded struct {
	Method, Host, URI string
	Header            map[string]string
	Body              string
}

// fakeUpstream is a fasthttp server on an in-memory listener that records
// every request and answers like Google (204, or what respond says).
type fakeUpstream struct {
	ln  *fasthttputil.InmemoryListener
	srv *fasthttp.Server
	mu  sync.Mutex
	got []recorded
	// more is closed (and replaced) when a request is recorded; under mu.
	more    chan struct{}
	respond func(ctx *fasthttp.RequestCtx)
	done    chan struct{}
}

func newFakeUpstream(t *testing.T) *fakeUpstream {
	u := &fakeUpstream{ln: fasthttputil.NewInmemoryListener(), done: make(chan struct{}), more: make(chan struct{})}
	u.srv = &fasthttp.Server{Logger: quiet{}, Handler: func(ctx *fasthttp.RequestCtx) {
		r := recorded{Method: string(ctx.Method()), Host: string(ctx.Host()), URI: string(ctx.RequestURI()), Header: map[string]string{}, Body: string(ctx.PostBody())}
		for k, v := range ctx.Request.Header.All() {
			r.Header[string(k)] = string(v)
		}
		u.mu.Lock()
		u.got = append(u.got, r)
		close(u.more)
		u.more = make(chan struct{})
		respond := u.respond
		u.mu.Unlock()
		if respond != nil {
			respond(ctx)
			return
		}
		ctx.SetStatusCode(fasthttp.StatusNoContent)
	}}
	go func() {
		defer close(u.done)
		_ = u.srv.Serve(u.ln)
	}()
	t.Cleanup(func() {
		_ = u.srv.Shutdown()
		_ = u.ln.Close() // Serve may not have started yet: make it return
		<-u.done
	})
	return u
}

func (u *fakeUpstream) requests() []recorded {
	u.mu.Lock()
	defer u.mu.Unlock()
	return append([]recorded(nil), u.got...)
}

func (u *fakeUpstream) setRespond(f func(ctx *fasthttp.RequestCtx)) {
	u.mu.Lock()
	u.respond = f
	u.mu.Unlock()
}

// gateway is a Handler served on an in-memory listener, in front of a fake upstream.
type gateway struct {
	t    *testing.T
	h    *Handler
	up   *fakeUpstream
	ln   *fasthttputil.InmemoryListener
	srv  *Server
	m    *Metrics
	dlog *declog.Log
	logs *syncBuffer
	done chan struct{}
	// clock is added to fixedNow: tests move time forward with advance.
	clock atomic.Int64
}

func (g *gateway) advance(d time.Duration) { g.clock.Add(int64(d)) }

// syncBuffer is a goroutine-safe buffer for the decision log.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
	// more is closed (and replaced) on each Write; under mu.
	more chan struct{}
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.more != nil {
		close(s.more)
		s.more = nil
	}
	return s.b.Write(p)
}

// lines returns the complete lines written so far and a channel closed
// at the next Write.
func (s *syncBuffer) lines() ([]string, <-chan struct{}) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.more == nil {
		s.more = make(chan struct{})
	}
	var lines []string
	if t := strings.TrimSpace(s.b.String()); t != "" {
		lines = strings.Split(t, "\n")
	}
	return lines, s.more
}
func (s *syncBuffer) Sync() error { return nil }
func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// testConfig is the base of every test config: the fake upstream's
// in-memory peer (0.0.0.0) is not trusted unless a test says so.
const testConfig = `
cookieless: {secret: "test-secret-0123456789"}
trusted_proxies: ["10.0.0.0/8"]
`

func loadConfig(t *testing.T, yaml string) *config.Config {
	t.Helper()
	if !strings.Contains(yaml, "trusted_proxies") {
		yaml = testConfig + yaml
	} else {
		yaml = "cookieless: {secret: \"test-secret-0123456789\"}\n" + yaml
	}
	path := filepath.Join(t.TempDir(), "config.yaml")
	if err := os.WriteFile(path, []byte(yaml), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, err := config.Load(path)
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}

var fixedNow = func() time.Time { return time.Unix(20000*86400+3600, 0) }

func newGateway(t *testing.T, yaml string) *gateway {
	t.Helper()
	cfg := loadConfig(t, yaml)
	g := &gateway{t: t, up: newFakeUpstream(t), ln: fasthttputil.NewInmemoryListener(), m: NewMetrics("test"), logs: &syncBuffer{}, done: make(chan struct{})}
	g.dlog = declog.New(g.logs, nil, g.m.Set())
	var err error
	g.h, err = NewHandler(cfg, zap.NewNop(), g.m, g.dlog, Options{
		Dial:        func(string) (net.Conn, error) { return g.up.ln.Dial() },
		Now:         func() time.Time { return fixedNow().Add(time.Duration(g.clock.Load())) },
		RouteScheme: "http",
	})
	if err != nil {
		t.Fatal(err)
	}
	g.srv = NewServer(g.h, zap.NewNop())
	g.h.MarkReady(true)
	go func() {
		defer close(g.done)
		_ = g.srv.public.Serve(g.srv.Listener(g.ln))
	}()
	t.Cleanup(g.close)
	return g
}

func (g *gateway) close() {
	_ = g.srv.public.Shutdown()
	_ = g.ln.Close() // Serve may not have started yet: make it return
	<-g.done
	g.h.clients.closeIdle()
	g.h.Close()
	_ = g.dlog.Close()
}

// from is the address a request comes from.
var (
	fromVisitor = &net.TCPAddr{IP: net.IPv4(203, 0, 113, 77), Port: 40000}
	fromProxy   = &net.TCPAddr{IP: net.IPv4(10, 1, 2, 3), Port: 40000}
)

// response is a copy of what the browser got.
type response struct {
	Status int
	Header map[string][]string
	Body   string
}

func (r *response) get(k string) string {
	if v := r.Header[k]; len(v) > 0 {
		return v[0]
	}
	return ""
}

// do sends one request from addr and returns what came back. raw, when
// set, is the whole request written as it is.
func (g *gateway) do(from net.Addr, method, uri string, headers map[string]string, body string) *response {
	g.t.Helper()
	var raw strings.Builder
	raw.WriteString(method + " " + uri + " HTTP/1.1\r\n")
	if _, ok := headers["Host"]; !ok {
		raw.WriteString("Host: metrics.shop.example\r\n")
	}
	for k, v := range headers {
		raw.WriteString(k + ": " + v + "\r\n")
	}
	if body != "" || method == "POST" {
		raw.WriteString("Content-Length: " + itoa(len(body)) + "\r\n")
	}
	raw.WriteString("Connection: close\r\n\r\n" + body)
	return g.raw(from, raw.String())
}

func itoa(n int) string {
	return string(fasthttp.AppendUint(nil, n))
}

func (g *gateway) raw(from net.Addr, req string) *response {
	g.t.Helper()
	r, err := g.tryRaw(from, req)
	if err != nil {
		g.t.Fatal(err)
	}
	return r
}

// tryRaw is raw for goroutines other than the test's: it returns errors.
func (g *gateway) tryRaw(from net.Addr, req string) (*response, error) {
	c, err := g.ln.DialWithLocalAddr(from)
	if err != nil {
		return nil, err
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := c.Write([]byte(req)); err != nil {
		return nil, err
	}
	var resp fasthttp.Response
	if err := resp.Read(newReader(c)); err != nil {
		return nil, fmt.Errorf("reading response: %w", err)
	}
	r := &response{Status: resp.StatusCode(), Header: map[string][]string{}, Body: string(resp.Body())}
	for k, v := range resp.Header.All() {
		r.Header[string(k)] = append(r.Header[string(k)], string(v))
	}
	return r, nil
}

// waitLog waits until the decision log holds n lines and returns them;
// it fails the test if they are not there within 10 s. The log encodes
// lines on its own goroutine into a buffer it flushes every second; it
// tells no one when a line is encoded, so waitLog flushes it each time
// its flush ticker fires (every 5 ms) and wakes at once on any write.
func (g *gateway) waitLog(n int) []string {
	g.t.Helper()
	timeout := time.NewTimer(10 * time.Second)
	defer timeout.Stop()
	flush := time.NewTicker(5 * time.Millisecond)
	defer flush.Stop()
	for {
		_ = g.dlog.Flush()
		lines, more := g.logs.lines()
		if len(lines) >= n {
			return lines
		}
		select {
		case <-more:
		case <-flush.C:
		case <-timeout.C:
			g.t.Fatalf("the decision log holds %d lines after 10 s, want %d:\n%s", len(lines), n, strings.Join(lines, "\n"))
		}
	}
}

var _ zapcore.WriteSyncer = (*syncBuffer)(nil)

type quiet struct{}

func (quiet) Printf(string, ...any) {}

func newReader(c net.Conn) *bufio.Reader { return bufio.NewReader(c) }
