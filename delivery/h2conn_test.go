package delivery

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/VictoriaMetrics/metrics"
	"github.com/valyala/fasthttp"
	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"
)

// h2Upstream is Go's own HTTP/2 server over TLS, recording every request
// it receives: on which connection, the hit's n, and what came with it.
type h2Upstream struct {
	ts *httptest.Server

	mu          sync.Mutex
	conns       int
	got         []h2Req
	inFlight    int
	maxInFlight int
}

type h2Req struct {
	conn, n      int
	proto        string
	method, host string
	ua           string
	big          string
	path         string
	body         []byte
	length       int64
}

type connKey struct{}

// newH2Upstream starts the server; handle answers request r, the hit n
// (its query parameter n), after it is recorded and its body read.
func newH2Upstream(t *testing.T, conf *http.HTTP2Config, handle func(w http.ResponseWriter, r *http.Request, n int)) *h2Upstream {
	t.Helper()
	u := &h2Upstream{}
	u.ts = httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		n, _ := strconv.Atoi(r.URL.Query().Get("n"))
		u.mu.Lock()
		u.got = append(u.got, h2Req{conn: r.Context().Value(connKey{}).(int), n: n, proto: r.Proto, method: r.Method,
			host: r.Host, ua: r.Header.Get("User-Agent"), big: r.Header.Get("X-Big"), path: r.URL.Path, body: body, length: r.ContentLength})
		u.inFlight++
		u.maxInFlight = max(u.maxInFlight, u.inFlight)
		u.mu.Unlock()
		defer func() {
			u.mu.Lock()
			u.inFlight--
			u.mu.Unlock()
		}()
		handle(w, r, n)
	}))
	u.ts.Config.ConnContext = func(ctx context.Context, _ net.Conn) context.Context {
		u.mu.Lock()
		defer u.mu.Unlock()
		u.conns++
		return context.WithValue(ctx, connKey{}, u.conns-1)
	}
	u.ts.Config.ErrorLog = nil
	u.ts.Config.HTTP2 = conf
	u.ts.EnableHTTP2 = true
	u.ts.StartTLS()
	t.Cleanup(u.ts.Close)
	return u
}

// client is a HostClient for the server, its first dial waiting for gate.
func (u *h2Upstream) client(gate chan struct{}) *fasthttp.HostClient {
	return tlsClient(u.ts, gatedDial(u.ts.Listener.Addr().String(), gate))
}

// tlsClient trusts ts's certificate.
func tlsClient(ts *httptest.Server, dial fasthttp.DialFunc) *fasthttp.HostClient {
	pool := x509.NewCertPool()
	pool.AddCert(ts.Certificate())
	return &fasthttp.HostClient{Addr: ts.Listener.Addr().String(), IsTLS: true, Dial: dial,
		TLSConfig: &tls.Config{RootCAs: pool}}
}

func (u *h2Upstream) requests() []h2Req {
	u.mu.Lock()
	defer u.mu.Unlock()
	return slices.Clone(u.got)
}

// h2Obs is one call of Options.Observe.
type h2Obs struct {
	tag, status int
	err         error
}

// startH2 starts delivery without a spool, offering HTTP/2, over one
// connection of window hits; every Observe call is sent on obs.
func startH2(t *testing.T, window int, obs chan h2Obs) (*Delivery, *metrics.Set) {
	t.Helper()
	set := metrics.NewSet()
	d, err := Start(Options{MaxAge: time.Minute, QueueSize: 1024, QueueBytes: 16 << 20, Workers: window, PipelineConns: 1, HTTP2: true,
		Timeout: 5 * time.Second, Metrics: NewMetrics(set, []string{"a"}),
		Observe: func(tag int, _ time.Duration, status int, err error) { obs <- h2Obs{tag, status, err} }})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d.Shutdown(0) })
	return d, set
}

// awaitAnswers reads obs until n hits are answered; it returns the
// answers by tag and the errors seen on the way.
func awaitAnswers(t *testing.T, obs chan h2Obs, n int) (map[int][]int, []h2Obs) {
	t.Helper()
	answers := map[int][]int{}
	var errs []h2Obs
	timeout := time.After(30 * time.Second)
	for got := 0; got < n; {
		select {
		case o := <-obs:
			if o.err != nil {
				errs = append(errs, o)
				continue
			}
			answers[o.tag] = append(answers[o.tag], o.status)
			got++
		case <-timeout:
			t.Fatalf("%d of %d hits answered; errors %v", got, n, errs)
		}
	}
	return answers, errs
}

func counter(set *metrics.Set, name string) uint64 {
	return set.GetOrCreateCounter(name).Get()
}

// Many hits are streams of one HTTP/2 connection, written in far fewer
// writes than hits, and each is settled by the answer on its own stream:
// the server answers hit n with a status of its own.
func TestH2ManyStreamsFewWrites(t *testing.T) {
	const n = 100
	statusOf := func(n int) int { return 200 + n%7 }
	u := newH2Upstream(t, &http.HTTP2Config{}, func(w http.ResponseWriter, _ *http.Request, n int) {
		w.Header().Set("X-N", strconv.Itoa(n))
		w.WriteHeader(statusOf(n))
	})
	gate := make(chan struct{})
	obs := make(chan h2Obs, 2*n)
	d, set := startH2(t, n, obs)
	l, err := d.Lane(Upstream{Scheme: "https", Host: "collect.example", Client: u.client(gate)})
	if err != nil {
		t.Fatal(err)
	}
	acceptN(t, l, 0, n)
	close(gate)
	answers, errs := awaitAnswers(t, obs, n)
	if len(errs) > 0 {
		t.Errorf("errors: %v", errs)
	}
	for i := range n {
		if got := answers[i]; len(got) != 1 || got[0] != statusOf(i) {
			t.Errorf("hit %d settled with %v, its own answer was %d", i, got, statusOf(i))
		}
	}
	got := u.requests()
	if len(got) != n {
		t.Fatalf("server got %d requests, want %d", len(got), n)
	}
	seen := map[int]bool{}
	for _, r := range got {
		if r.conn != 0 || r.proto != "HTTP/2.0" || r.method != "GET" || r.host != "collect.example" || r.ua != "test" || r.path != "/g/collect" {
			t.Errorf("server got %+v, want GET /g/collect over HTTP/2.0 on connection 0, Host collect.example, User-Agent test", r)
		}
		if seen[r.n] {
			t.Errorf("hit %d received twice", r.n)
		}
		seen[r.n] = true
	}
	writes := counter(set, `consentgate_delivery_upstream_writes_total{upstream="https://collect.example"}`)
	if writes == 0 || writes > 8 {
		t.Errorf("%d hits took %d writes, want a few", n, writes)
	}
	t.Logf("%d hits, %d writes", n, writes)
	d.Shutdown(0) // its readers have ended: every answer is counted
	if got := counter(set, `consentgate_delivery_delivered_total{family="a"}`); got != n {
		t.Errorf("delivered %d, want %d", got, n)
	}
}

// postHit is a POST hit whose body is size bytes of a pattern of its own.
func postHit(i, size int) *fasthttp.Request {
	req := hit("/x")
	req.Header.SetMethod("POST")
	req.Header.Set("Content-Type", "text/plain")
	req.Header.Set("Connection", "keep-alive")
	req.SetBody(postBody(i, size))
	return req
}

func postBody(i, size int) []byte {
	b := make([]byte, size)
	for j := range b {
		b[j] = byte('a' + (i+j/1000)%26)
	}
	return b
}

// Request bodies larger than the server's flow-control windows (65535 on
// the stream and on the connection) arrive whole: the rest of each body
// waits for the server's WINDOW_UPDATE.
func TestH2BodyLargerThanWindow(t *testing.T) {
	const n, size = 3, 200_000
	u := newH2Upstream(t, &http.HTTP2Config{MaxReceiveBufferPerStream: 65535, MaxReceiveBufferPerConnection: 65535},
		func(w http.ResponseWriter, _ *http.Request, _ int) { w.WriteHeader(http.StatusNoContent) })
	gate := make(chan struct{})
	obs := make(chan h2Obs, 2*n)
	d, set := startH2(t, n, obs)
	l, err := d.Lane(Upstream{Scheme: "https", Host: "collect.example", Client: u.client(gate)})
	if err != nil {
		t.Fatal(err)
	}
	for i := range n {
		if err := l.Accept(i, postHit(i, size), []byte("/g/collect"), fmt.Appendf(nil, "n=%d", i), time.Now()); err != nil {
			t.Fatal(err)
		}
	}
	close(gate)
	if _, errs := awaitAnswers(t, obs, n); len(errs) > 0 {
		t.Errorf("errors: %v", errs)
	}
	got := u.requests()
	if len(got) != n {
		t.Fatalf("server got %d requests, want %d", len(got), n)
	}
	for _, r := range got {
		if r.method != "POST" || r.length != size || !bytes.Equal(r.body, postBody(r.n, size)) {
			t.Errorf("hit %d: server got %s with Content-Length %d and a body of %d bytes (intact: %v), want POST with its %d bytes",
				r.n, r.method, r.length, len(r.body), bytes.Equal(r.body, postBody(r.n, size)), size)
		}
	}
	d.Shutdown(0) // its readers have ended: every answer is counted
	if got := counter(set, `consentgate_delivery_delivered_total{family="a"}`); got != n {
		t.Errorf("delivered %d, want %d", got, n)
	}
}

// Answers with bodies larger than the client's windows flow: the reader
// discards them and opens its windows again. The server allows one
// stream at a time, so each next hit waits for the whole body before it;
// a stalled body would end the connection on its timeout instead.
func TestH2LargeResponseBodies(t *testing.T) {
	const n, size = 4, 3 << 20
	werrs := make(chan error, n)
	u := newH2Upstream(t, &http.HTTP2Config{MaxConcurrentStreams: 1}, func(w http.ResponseWriter, _ *http.Request, _ int) {
		w.WriteHeader(http.StatusOK)
		_, err := w.Write(make([]byte, size))
		werrs <- err
	})
	gate := make(chan struct{})
	obs := make(chan h2Obs, 2*n)
	d, set := startH2(t, n, obs)
	l, err := d.Lane(Upstream{Scheme: "https", Host: "collect.example", Client: u.client(gate)})
	if err != nil {
		t.Fatal(err)
	}
	acceptN(t, l, 0, n)
	close(gate)
	if _, errs := awaitAnswers(t, obs, n); len(errs) > 0 {
		t.Errorf("errors: %v", errs)
	}
	for range n {
		if err := <-werrs; err != nil {
			t.Errorf("server's body write: %v", err)
		}
	}
	d.Shutdown(0) // its readers have ended: every answer is counted
	u.mu.Lock()
	if u.conns != 1 || len(u.got) != n {
		t.Errorf("%d requests over %d connections, want %d over one", len(u.got), u.conns, n)
	}
	u.mu.Unlock()
	if got := counter(set, `consentgate_delivery_delivered_total{family="a"}`); got != n {
		t.Errorf("delivered %d, want %d", got, n)
	}
}

// An answer whose body is longer than the client's MaxResponseBodySize
// settles its hit by its status; the client cancels the rest of the body
// (RST_STREAM) and keeps the connection.
func TestH2ResponseBodyLimit(t *testing.T) {
	const n, size = 3, 4 << 20
	werrs := make(chan error, n)
	u := newH2Upstream(t, &http.HTTP2Config{}, func(w http.ResponseWriter, _ *http.Request, _ int) {
		w.WriteHeader(http.StatusOK)
		_, err := w.Write(make([]byte, size))
		werrs <- err
	})
	gate := make(chan struct{})
	obs := make(chan h2Obs, 2*n)
	d, set := startH2(t, n, obs)
	hc := u.client(gate)
	hc.MaxResponseBodySize = 1000
	l, err := d.Lane(Upstream{Scheme: "https", Host: "collect.example", Client: hc})
	if err != nil {
		t.Fatal(err)
	}
	acceptN(t, l, 0, n)
	close(gate)
	answers, errs := awaitAnswers(t, obs, n)
	if len(errs) > 0 {
		t.Errorf("errors: %v", errs)
	}
	for i := range n {
		if len(answers[i]) != 1 || answers[i][0] != http.StatusOK {
			t.Errorf("hit %d answered %v, want 200 once", i, answers[i])
		}
	}
	for range n {
		if err := <-werrs; err == nil {
			t.Errorf("the server wrote a %d-byte body in full, want it cancelled", size)
		}
	}
	d.Shutdown(0) // its readers have ended: every answer is counted
	u.mu.Lock()
	if u.conns != 1 {
		t.Errorf("%d connections, want one", u.conns)
	}
	u.mu.Unlock()
	if got := counter(set, `consentgate_delivery_delivered_total{family="a"}`); got != n {
		t.Errorf("delivered %d, want %d", got, n)
	}
}

// With HTTP/2 off, a TLS upstream that offers it is spoken to in
// HTTP/1.1 (ALPN).
func TestH2OffSpeaksHTTP1(t *testing.T) {
	const n = 5
	u := newH2Upstream(t, &http.HTTP2Config{}, func(w http.ResponseWriter, _ *http.Request, _ int) { w.WriteHeader(http.StatusNoContent) })
	gate := make(chan struct{})
	obs := make(chan answer, n)
	d, _ := startPipelined(t, 1, n, obs)
	l, err := d.Lane(Upstream{Scheme: "https", Host: "collect.example", Client: u.client(gate)})
	if err != nil {
		t.Fatal(err)
	}
	acceptN(t, l, 0, n)
	close(gate)
	for range n {
		<-obs
	}
	got := u.requests()
	if len(got) != n {
		t.Errorf("server got %d requests, want %d", len(got), n)
	}
	for _, r := range got {
		if r.proto != "HTTP/1.1" {
			t.Errorf("hit %d went over %s, want HTTP/1.1", r.n, r.proto)
		}
	}
}

// writeCounter counts the writes of a connection below TLS.
type writeCounter struct {
	net.Conn
	n *atomic.Int64
}

func (c writeCounter) Write(p []byte) (int, error) {
	c.n.Add(1)
	return c.Conn.Write(p)
}

// A batch is one write below TLS too: TLS's records of a write (here 100
// hits with 2,000-byte bodies, over 200 KB, a dozen records or more) go to
// the connection together, over HTTP/2 and over HTTP/1.1 alike.
func TestTLSBatchIsOneWrite(t *testing.T) {
	for _, h2 := range []bool{true, false} {
		t.Run(fmt.Sprintf("h2=%v", h2), func(t *testing.T) {
			const n = 100
			u := newH2Upstream(t, &http.HTTP2Config{}, func(w http.ResponseWriter, _ *http.Request, _ int) { w.WriteHeader(http.StatusNoContent) })
			gate := make(chan struct{})
			var raw atomic.Int64
			hc := tlsClient(u.ts, func(string) (net.Conn, error) {
				<-gate
				c, err := net.Dial("tcp", u.ts.Listener.Addr().String())
				return writeCounter{c, &raw}, err
			})
			obs := make(chan h2Obs, 2*n)
			d, set := startH2(t, n, obs)
			if !h2 {
				d.cfg.HTTP2 = false // before the lane's first dial
			}
			l, err := d.Lane(Upstream{Scheme: "https", Host: "collect.example", Client: hc})
			if err != nil {
				t.Fatal(err)
			}
			for i := range n {
				if err := l.Accept(i, postHit(i, 2000), []byte("/g/collect"), fmt.Appendf(nil, "n=%d", i), time.Now()); err != nil {
					t.Fatal(err)
				}
			}
			close(gate)
			awaitAnswers(t, obs, n)
			below := uint64(raw.Load())
			writes := counter(set, `consentgate_delivery_upstream_writes_total{upstream="https://collect.example"}`)
			d.Shutdown(0)
			// The handshake's client writes: ClientHello and Finished.
			const handshake = 2
			if below > writes+handshake {
				t.Errorf("%d writes below TLS for %d batch writes, want at most %d", below, writes, writes+handshake)
			}
			t.Logf("%d hits: %d writes, %d below TLS", n, writes, below)
			for _, r := range u.requests() {
				if len(r.body) != 2000 {
					t.Errorf("hit %d arrived with %d body bytes", r.n, len(r.body))
				}
			}
		})
	}
}

// A server that allows few streams at once (SETTINGS_MAX_CONCURRENT_STREAMS
// 2) gets every hit, never more than 2 at a time: none is refused or reset
// on the way, although the sender's window is far larger.
func TestH2StreamLimit(t *testing.T) {
	const n, limit = 40, 2
	u := newH2Upstream(t, &http.HTTP2Config{MaxConcurrentStreams: limit},
		func(w http.ResponseWriter, _ *http.Request, _ int) { w.WriteHeader(http.StatusNoContent) })
	gate := make(chan struct{})
	obs := make(chan h2Obs, 2*n)
	d, set := startH2(t, n, obs)
	l, err := d.Lane(Upstream{Scheme: "https", Host: "collect.example", Client: u.client(gate)})
	if err != nil {
		t.Fatal(err)
	}
	acceptN(t, l, 0, n)
	close(gate)
	answers, errs := awaitAnswers(t, obs, n)
	if len(errs) > 0 {
		t.Errorf("streams refused or reset: %v", errs)
	}
	for i := range n {
		if len(answers[i]) != 1 {
			t.Errorf("hit %d answered %d times", i, len(answers[i]))
		}
	}
	got := u.requests()
	if len(got) != n {
		t.Errorf("server got %d requests, want %d", len(got), n)
	}
	u.mu.Lock()
	if u.maxInFlight > limit || u.conns != 1 {
		t.Errorf("%d requests in flight at once over %d connections, want at most %d over one", u.maxInFlight, u.conns, limit)
	}
	u.mu.Unlock()
	d.Shutdown(0) // its readers have ended: every answer is counted
	if got := counter(set, `consentgate_delivery_delivered_total{family="a"}`); got != n {
		t.Errorf("delivered %d, want %d", got, n)
	}
}

// A stream the server resets (a handler aborting: RST_STREAM) is sent
// again; the other streams of its connection are answered once, and the
// connection stays.
func TestH2ResetStreamRetried(t *testing.T) {
	const n, reset = 10, 3
	var once sync.Once
	u := newH2Upstream(t, &http.HTTP2Config{}, func(w http.ResponseWriter, _ *http.Request, n int) {
		if n == reset {
			aborted := false
			once.Do(func() { aborted = true })
			if aborted {
				panic(http.ErrAbortHandler)
			}
		}
		w.WriteHeader(http.StatusNoContent)
	})
	gate := make(chan struct{})
	obs := make(chan h2Obs, 2*n)
	d, set := startH2(t, n, obs)
	l, err := d.Lane(Upstream{Scheme: "https", Host: "collect.example", Client: u.client(gate)})
	if err != nil {
		t.Fatal(err)
	}
	acceptN(t, l, 0, n)
	close(gate)
	answers, errs := awaitAnswers(t, obs, n)
	if len(errs) != 1 || errs[0].tag != reset {
		t.Errorf("errors %v, want one, of the reset hit %d", errs, reset)
	}
	for i := range n {
		if len(answers[i]) != 1 {
			t.Errorf("hit %d answered %d times", i, len(answers[i]))
		}
	}
	times := map[int]int{}
	for _, r := range u.requests() {
		times[r.n]++
	}
	for i := range n {
		want := 1
		if i == reset {
			want = 2
		}
		if times[i] != want {
			t.Errorf("server got hit %d %d times, want %d", i, times[i], want)
		}
	}
	u.mu.Lock()
	if u.conns != 1 {
		t.Errorf("%d connections, want the one", u.conns)
	}
	u.mu.Unlock()
	d.Shutdown(0) // its readers have ended: every answer is counted
	if got := counter(set, `consentgate_delivery_delivered_total{family="a"}`); got != n {
		t.Errorf("delivered %d, want %d", got, n)
	}
}

// A server shutting down sends GOAWAY while streams are in flight: they
// are answered on the old connection, the hits not yet sent go out on a
// new one (to a second server here), and no hit is sent twice.
func TestH2GoAwayFromShutdown(t *testing.T) {
	const n, limit = 20, 4
	var (
		blockedMu sync.Mutex
		blocked   int
	)
	full := make(chan struct{}) // limit handlers of server a are waiting
	release := make(chan struct{})
	a := newH2Upstream(t, &http.HTTP2Config{MaxConcurrentStreams: limit}, func(w http.ResponseWriter, _ *http.Request, n int) {
		if n >= 2 {
			blockedMu.Lock()
			blocked++
			if blocked == limit {
				close(full)
			}
			blockedMu.Unlock()
			<-release
		}
		w.WriteHeader(http.StatusNoContent)
	})
	b := newH2Upstream(t, &http.HTTP2Config{}, func(w http.ResponseWriter, _ *http.Request, _ int) { w.WriteHeader(http.StatusNoContent) })
	gate := make(chan struct{})
	redial := make(chan struct{})
	dials := 0
	hc := tlsClient(a.ts, func(string) (net.Conn, error) {
		<-gate
		dials++ // one sender dials: no lock needed
		if dials == 1 {
			return net.Dial("tcp", a.ts.Listener.Addr().String())
		}
		if dials == 2 {
			close(redial)
		}
		return net.Dial("tcp", b.ts.Listener.Addr().String())
	})
	obs := make(chan h2Obs, 2*n)
	d, set := startH2(t, n, obs)
	l, err := d.Lane(Upstream{Scheme: "https", Host: "collect.example", Client: hc})
	if err != nil {
		t.Fatal(err)
	}
	acceptN(t, l, 0, n)
	close(gate)
	<-full
	shut := make(chan error, 1)
	go func() { shut <- a.ts.Config.Shutdown(context.Background()) }()
	<-redial // the client took the GOAWAY: no new streams on a
	close(release)
	answers, errs := awaitAnswers(t, obs, n)
	if len(errs) > 0 {
		t.Errorf("errors: %v", errs)
	}
	if err := <-shut; err != nil {
		t.Errorf("shutdown: %v", err)
	}
	for i := range n {
		if len(answers[i]) != 1 {
			t.Errorf("hit %d answered %d times", i, len(answers[i]))
		}
	}
	on := map[int]string{}
	for name, u := range map[string]*h2Upstream{"a": a, "b": b} {
		for _, r := range u.requests() {
			if on[r.n] != "" {
				t.Errorf("hit %d sent to %s and %s", r.n, on[r.n], name)
			}
			on[r.n] = name
		}
	}
	onA, onB := 0, 0
	for i := range n {
		switch on[i] {
		case "a":
			onA++
		case "b":
			onB++
		default:
			t.Errorf("hit %d never received", i)
		}
	}
	if onA != 2+limit || onB != n-2-limit {
		t.Errorf("%d hits on the server that went away, %d on the next, want %d and %d", onA, onB, 2+limit, n-2-limit)
	}
	d.Shutdown(0) // its readers have ended: every answer is counted
	if got := counter(set, `consentgate_delivery_delivered_total{family="a"}`); got != n {
		t.Errorf("delivered %d, want %d", got, n)
	}
}

// rawH2 is an HTTP/2 server written for these tests with the Framer, for
// what Go's server does not do on demand: on each connection it reads the
// HEADERS of batch(conn) streams, then plays script(conn, fr, ids), ids
// being the streams in the order they came; the connection is dropped
// when script returns false.
type rawH2 struct {
	ts     *httptest.Server
	batch  func(conn int) int
	script func(conn int, fr *http2.Framer, ids []uint32) bool
	late   func(conn int, fr *http2.Framer, id uint32)
	// settings are the server's first SETTINGS.
	settings []http2.Setting

	mu    sync.Mutex
	got   [][]int             // per connection: the n of each stream, in order
	paths []hpack.HeaderField // every :path as decoded
}

func newRawH2(t *testing.T, batch func(conn int) int, script func(conn int, fr *http2.Framer, ids []uint32) bool) *rawH2 {
	t.Helper()
	u := &rawH2{batch: batch, script: script}
	u.ts = httptest.NewUnstartedServer(http.NotFoundHandler())
	u.ts.TLS = &tls.Config{NextProtos: []string{"h2"}}
	u.ts.Config.TLSNextProto = map[string]func(*http.Server, *tls.Conn, http.Handler){
		"h2": func(_ *http.Server, c *tls.Conn, _ http.Handler) { u.serve(c) },
	}
	u.ts.StartTLS()
	t.Cleanup(u.ts.Close)
	return u
}

func (u *rawH2) serve(c *tls.Conn) {
	defer c.Close()
	preface := make([]byte, len(http2.ClientPreface))
	if _, err := io.ReadFull(c, preface); err != nil || string(preface) != http2.ClientPreface {
		return
	}
	fr := http2.NewFramer(c, c)
	fr.ReadMetaHeaders = hpack.NewDecoder(4096, nil)
	if err := fr.WriteSettings(u.settings...); err != nil {
		return
	}
	u.mu.Lock()
	conn := len(u.got)
	u.got = append(u.got, nil)
	u.mu.Unlock()
	var ids []uint32
	for len(ids) < u.batch(conn) {
		f, err := fr.ReadFrame()
		if err != nil {
			return
		}
		switch f := f.(type) {
		case *http2.SettingsFrame:
			if !f.IsAck() {
				_ = fr.WriteSettingsAck()
			}
		case *http2.MetaHeadersFrame:
			ids = append(ids, u.record(conn, f))
		}
	}
	if !u.script(conn, fr, ids) {
		return
	}
	// Read until the client closes, so that what was written arrives;
	// streams opened now are recorded, and answered when late says so.
	for {
		f, err := fr.ReadFrame()
		if err != nil {
			return
		}
		if f, ok := f.(*http2.MetaHeadersFrame); ok {
			u.record(conn, f)
			if u.late != nil {
				u.late(conn, fr, f.StreamID)
			}
		}
	}
}

// record notes the hit n of a request's HEADERS.
func (u *rawH2) record(conn int, f *http2.MetaHeadersFrame) uint32 {
	_, q, _ := strings.Cut(f.PseudoValue("path"), "n=")
	n, _ := strconv.Atoi(q)
	u.mu.Lock()
	u.got[conn] = append(u.got[conn], n)
	for _, hf := range f.Fields {
		if hf.Name == ":path" {
			u.paths = append(u.paths, hf)
		}
	}
	u.mu.Unlock()
	return f.StreamID
}

// requests is the n of each stream per connection, each connection's
// sorted (retries come back in the order of their jittered backoff).
func (u *rawH2) requests() [][]int {
	u.mu.Lock()
	defer u.mu.Unlock()
	out := make([][]int, len(u.got))
	for i, g := range u.got {
		out[i] = slices.Sorted(slices.Values(g))
	}
	return out
}

// answer204 writes a 204 answer ending stream id.
func answer204(fr *http2.Framer, id uint32) {
	var b bytes.Buffer
	_ = hpack.NewEncoder(&b).WriteField(hpack.HeaderField{Name: ":status", Value: "204"})
	_ = fr.WriteHeaders(http2.HeadersFrameParam{StreamID: id, BlockFragment: b.Bytes(), EndStream: true, EndHeaders: true})
}

// runRaw delivers n hits to u over one HTTP/2 connection at a time and
// checks that each is answered once; it returns what the server got and
// the errors observed.
func runRaw(t *testing.T, u *rawH2, n int) ([][]int, []h2Obs) {
	t.Helper()
	gate := make(chan struct{})
	obs := make(chan h2Obs, 4*n)
	d, set := startH2(t, n, obs)
	hc := tlsClient(u.ts, gatedDial(u.ts.Listener.Addr().String(), gate))
	l, err := d.Lane(Upstream{Scheme: "https", Host: "collect.example", Client: hc})
	if err != nil {
		t.Fatal(err)
	}
	acceptN(t, l, 0, n)
	close(gate)
	answers, errs := awaitAnswers(t, obs, n)
	for i := range n {
		if len(answers[i]) != 1 {
			t.Errorf("hit %d answered %d times", i, len(answers[i]))
		}
	}
	d.Shutdown(0) // its readers have ended: every answer is counted
	if got := counter(set, `consentgate_delivery_delivered_total{family="a"}`); got != uint64(n) {
		t.Errorf("delivered %d, want %d", got, n)
	}
	return u.requests(), errs
}

// A GOAWAY whose last stream is in the middle of a batch: the streams
// above it come back at once and are sent again on a new connection,
// the stream it kept is answered on the old one after the GOAWAY, and
// the streams answered before are not sent again.
func TestH2GoAwayRetriesStreamsAboveLast(t *testing.T) {
	const n, kept = 10, 3 // hits 0..2 answered, 3 kept and answered after the GOAWAY, 4..9 refused
	u := newRawH2(t, func(conn int) int {
		if conn == 0 {
			return n
		}
		return n - kept - 1
	}, func(conn int, fr *http2.Framer, ids []uint32) bool {
		if conn > 0 {
			for _, id := range ids {
				answer204(fr, id)
			}
			return true
		}
		for _, id := range ids[:kept] {
			answer204(fr, id)
		}
		_ = fr.WriteGoAway(ids[kept], http2.ErrCodeNo, nil)
		answer204(fr, ids[kept])
		return true // and the connection stays open
	})
	got, errs := runRaw(t, u, n)
	// The refused streams come back when the GOAWAY arrives, not when
	// their answers time out.
	if len(errs) != 1 || !errors.Is(errs[0].err, errH2GoAway) {
		t.Errorf("errors %v, want the GOAWAY once", errs)
	}
	want := [][]int{{0, 1, 2, 3, 4, 5, 6, 7, 8, 9}, {4, 5, 6, 7, 8, 9}}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("server got %v, want %v", got, want)
	}
}

// A connection that breaks mid-batch, after a stream was refused: the
// streams answered are settled, exactly the refused and the unanswered
// ones are sent again on a new connection.
func TestH2BrokenConnectionRetriesTheUnanswered(t *testing.T) {
	const n, answered = 10, 4
	u := newRawH2(t, func(conn int) int {
		if conn == 0 {
			return n
		}
		return n - answered
	}, func(conn int, fr *http2.Framer, ids []uint32) bool {
		if conn > 0 {
			for _, id := range ids {
				answer204(fr, id)
			}
			return true
		}
		for _, id := range ids[:answered] {
			answer204(fr, id)
		}
		_ = fr.WriteRSTStream(ids[answered], http2.ErrCodeRefusedStream)
		return false // and the connection drops
	})
	got, errs := runRaw(t, u, n)
	for _, o := range errs {
		if classifyUpstream(o.err) == upErrTimeout {
			t.Errorf("hit %d came back on a timeout: %v", o.tag, o.err)
		}
	}
	want := [][]int{{0, 1, 2, 3, 4, 5, 6, 7, 8, 9}, {4, 5, 6, 7, 8, 9}}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("server got %v, want %v", got, want)
	}
}

// h2Fields is what parseWire and fields make of a request text, as one
// string per header: "name: value".
func h2Fields(r *wireRequest) []string {
	var out []string
	r.fields(func(name, value []byte) { out = append(out, string(name)+": "+string(value)) })
	return out
}

func TestParseWire(t *testing.T) {
	for _, tc := range []struct {
		name                    string
		wire                    string
		method, path, authority string
		fields                  []string
		body                    string
		err                     bool
	}{
		{name: "get", wire: "GET /g/collect?v=2&n=1 HTTP/1.1\r\nHost: collect.example\r\nUser-Agent: test\r\n\r\n",
			method: "GET", path: "/g/collect?v=2&n=1", authority: "collect.example", fields: []string{"user-agent: test"}},
		{name: "post with body", wire: "POST /g/collect HTTP/1.1\r\nHost: h\r\nContent-Type: text/plain\r\nContent-Length: 5\r\n\r\nab\r\nc",
			method: "POST", path: "/g/collect", authority: "h", fields: []string{"content-type: text/plain", "content-length: 5"}, body: "ab\r\nc"},
		{name: "connection-specific headers dropped",
			wire:   "GET / HTTP/1.1\r\nHost: h\r\nConnection: keep-alive\r\nKeep-Alive: 5\r\nProxy-Connection: x\r\nTransfer-Encoding: chunked\r\nUpgrade: h2c\r\nTE: gzip\r\nX-A: 1\r\n\r\n",
			method: "GET", path: "/", authority: "h", fields: []string{"x-a: 1"}},
		{name: "te trailers kept", wire: "GET / HTTP/1.1\r\nHost: h\r\nTE: trailers\r\n\r\n",
			method: "GET", path: "/", authority: "h", fields: []string{"te: trailers"}},
		{name: "names lower-cased, values trimmed", wire: "GET / HTTP/1.1\r\nHost: h\r\nX-Forwarded-For:  203.0.113.1 \r\nACCEPT-Language:\tde\r\n\r\n",
			method: "GET", path: "/", authority: "h", fields: []string{"x-forwarded-for: 203.0.113.1", "accept-language: de"}},
		{name: "lines that are not headers left out", wire: "GET / HTTP/1.1\r\nHost: h\r\nno colon\r\nBad Name: x\r\n: empty\r\nX-Ok: y\r\n\r\n",
			method: "GET", path: "/", authority: "h", fields: []string{"x-ok: y"}},
		{name: "no host", wire: "GET /a HTTP/1.1\r\nUser-Agent: u\r\n\r\n", method: "GET", path: "/a", fields: []string{"user-agent: u"}},
		{name: "no version", wire: "GET /a\r\nHost: h\r\n\r\n", method: "GET", path: "/a", authority: "h"},
		{name: "no end of headers", wire: "GET / HTTP/1.1\r\nHost: h\r\n", err: true},
		{name: "no target", wire: "GET\r\n\r\n", err: true},
		{name: "target not a path", wire: "GET http://h/ HTTP/1.1\r\n\r\n", err: true},
		{name: "empty method", wire: " / HTTP/1.1\r\n\r\n", err: true},
		{name: "empty", wire: "", err: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r, err := parseWire([]byte(tc.wire))
			if tc.err {
				if err == nil {
					t.Fatalf("parseWire(%q) = %+v, want an error", tc.wire, r)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if string(r.method) != tc.method || string(r.path) != tc.path || string(r.authority) != tc.authority || string(r.body) != tc.body {
				t.Errorf("method %q path %q authority %q body %q, want %q %q %q %q", r.method, r.path, r.authority, r.body, tc.method, tc.path, tc.authority, tc.body)
			}
			if got := h2Fields(&r); !slices.Equal(got, tc.fields) {
				t.Errorf("fields %q, want %q", got, tc.fields)
			}
		})
	}
}

// FuzzParseWire: any request text is taken apart without a panic, and
// what is taken out may go into an HTTP/2 header block: lower-case
// token names, none connection-specific, values without control bytes,
// the path a path, the body the text's tail.
func FuzzParseWire(f *testing.F) {
	out := hit("/x")
	out.Header.Set("Connection", "close")
	f.Add(appendWire(nil, 0, out, "collect.example", []byte("/g/collect"), []byte("v=2"))[payloadHead:])
	f.Add(appendWire(nil, 0, postHit(1, 10), "h", []byte("/p"), nil)[payloadHead:])
	f.Add([]byte("GET / HTTP/1.1\r\nTE: trailers\r\nX: \x7f\r\n\r\n"))
	f.Fuzz(func(t *testing.T, wire []byte) {
		r, err := parseWire(wire)
		if err != nil {
			return
		}
		if len(r.method) == 0 || len(r.path) == 0 || r.path[0] != '/' || !validFieldValue(r.path) || !validFieldValue(r.authority) {
			t.Fatalf("method %q path %q authority %q", r.method, r.path, r.authority)
		}
		if !bytes.HasSuffix(wire, r.body) {
			t.Fatalf("body %q is not the tail of %q", r.body, wire)
		}
		r.fields(func(name, value []byte) {
			if string(name) != strings.ToLower(string(name)) || !validFieldValue(value) || slices.Contains(h2Dropped, string(name)) || len(name) == 0 {
				t.Fatalf("field %q: %q", name, value)
			}
			for _, b := range name {
				if b <= ' ' || b == ':' || b >= 0x7f {
					t.Fatalf("field name %q", name)
				}
			}
			if string(name) == "te" && !strings.EqualFold(string(value), "trailers") {
				t.Fatalf("te: %q", value)
			}
		})
	})
}

// The server's PING is acknowledged: this server answers nothing until
// it has its PING back.
func TestH2PingAnswered(t *testing.T) {
	const n = 3
	u := newRawH2(t, func(int) int { return n }, func(_ int, fr *http2.Framer, ids []uint32) bool {
		data := [8]byte{'c', 'g'}
		if err := fr.WritePing(false, data); err != nil {
			return false
		}
		for {
			f, err := fr.ReadFrame()
			if err != nil {
				return false
			}
			if p, ok := f.(*http2.PingFrame); ok && p.IsAck() && p.Data == data {
				break
			}
		}
		for _, id := range ids {
			answer204(fr, id)
		}
		return true
	})
	got, errs := runRaw(t, u, n)
	if len(got) != 1 || len(errs) > 0 {
		t.Errorf("server got %v, errors %v: want one connection, no error", got, errs)
	}
}

// A hit's :path (with its query, different for every hit) is sent as a
// literal never indexed, so that it does not push the headers that repeat
// out of the HPACK tables.
func TestH2PathNotIndexed(t *testing.T) {
	const n = 3
	u := newRawH2(t, func(int) int { return n }, func(_ int, fr *http2.Framer, ids []uint32) bool {
		for _, id := range ids {
			answer204(fr, id)
		}
		return true
	})
	runRaw(t, u, n)
	u.mu.Lock()
	defer u.mu.Unlock()
	if len(u.paths) != n {
		t.Fatalf("paths %v, want %d", u.paths, n)
	}
	for _, hf := range u.paths {
		if !hf.Sensitive || !strings.HasPrefix(hf.Value, "/g/collect?n=") {
			t.Errorf("path %+v, want /g/collect?n=… never indexed", hf)
		}
	}
}

// An answer without a status is no answer: its hit is sent again (on
// the same connection: a stream failed, not the connection); the others
// of the batch are settled by theirs.
func TestH2AnswerWithoutStatus(t *testing.T) {
	const n = 4
	u := newRawH2(t, func(int) int { return n }, func(_ int, fr *http2.Framer, ids []uint32) bool {
		var b bytes.Buffer
		_ = hpack.NewEncoder(&b).WriteField(hpack.HeaderField{Name: "x-a", Value: "1"})
		_ = fr.WriteHeaders(http2.HeadersFrameParam{StreamID: ids[1], BlockFragment: b.Bytes(), EndStream: true, EndHeaders: true})
		for _, id := range ids {
			if id != ids[1] {
				answer204(fr, id)
			}
		}
		return true
	})
	u.late = func(_ int, fr *http2.Framer, id uint32) { answer204(fr, id) }
	got, errs := runRaw(t, u, n)
	want := [][]int{{0, 1, 1, 2, 3}}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("server got %v, want %v", got, want)
	}
	if len(errs) != 1 || errs[0].tag != 1 || !errors.Is(errs[0].err, errH2Status) {
		t.Errorf("errors %v, want hit 1's missing status", errs)
	}
}

// A server that starts with a stream window of 0 gets the request bodies
// when a later SETTINGS opens the windows (no WINDOW_UPDATE at all).
func TestH2BodyWaitsForSettings(t *testing.T) {
	const n, size = 3, 1000
	bodies := map[int][]byte{}
	u := newRawH2(t, func(int) int { return n }, func(_ int, fr *http2.Framer, ids []uint32) bool {
		// Nothing of the bodies may have come yet: they come after this.
		if err := fr.WriteSettings(http2.Setting{ID: http2.SettingInitialWindowSize, Val: 65535}); err != nil {
			return false
		}
		for ended := 0; ended < n; {
			f, err := fr.ReadFrame()
			if err != nil {
				return false
			}
			if d, ok := f.(*http2.DataFrame); ok {
				i := slices.Index(ids, d.StreamID)
				bodies[i] = append(bodies[i], d.Data()...)
				if d.StreamEnded() {
					ended++
					answer204(fr, d.StreamID)
				}
			}
		}
		return true
	})
	u.settings = []http2.Setting{{ID: http2.SettingInitialWindowSize, Val: 0}}
	gate := make(chan struct{})
	obs := make(chan h2Obs, 2*n)
	d, _ := startH2(t, n, obs)
	hc := tlsClient(u.ts, gatedDial(u.ts.Listener.Addr().String(), gate))
	l, err := d.Lane(Upstream{Scheme: "https", Host: "collect.example", Client: hc})
	if err != nil {
		t.Fatal(err)
	}
	for i := range n {
		if err := l.Accept(i, postHit(i, size), []byte("/g/collect"), fmt.Appendf(nil, "n=%d", i), time.Now()); err != nil {
			t.Fatal(err)
		}
	}
	close(gate)
	if _, errs := awaitAnswers(t, obs, n); len(errs) > 0 {
		t.Errorf("errors: %v", errs)
	}
	d.Shutdown(0)
	got := u.requests()
	if len(got) != 1 {
		t.Fatalf("server got %v, want one connection", got)
	}
	// Streams are opened in the order of the hits.
	for i := range n {
		if !bytes.Equal(bodies[i], postBody(i, size)) {
			t.Errorf("hit %d: body of %d bytes, want its %d", i, len(bodies[i]), size)
		}
	}
}

// A header block larger than a frame goes out as HEADERS and
// CONTINUATION frames.
func TestH2LargeHeaderBlock(t *testing.T) {
	const n = 2
	big := strings.Repeat("abcdefghij", 4000) // 40 KB: three frames of 16 KB
	u := newH2Upstream(t, &http.HTTP2Config{}, func(w http.ResponseWriter, _ *http.Request, _ int) { w.WriteHeader(http.StatusNoContent) })
	gate := make(chan struct{})
	obs := make(chan h2Obs, 2*n)
	d, _ := startH2(t, n, obs)
	l, err := d.Lane(Upstream{Scheme: "https", Host: "collect.example", Client: u.client(gate)})
	if err != nil {
		t.Fatal(err)
	}
	for i := range n {
		req := hit("/x")
		req.Header.Set("X-Big", big)
		if err := l.Accept(i, req, []byte("/g/collect"), fmt.Appendf(nil, "n=%d", i), time.Now()); err != nil {
			t.Fatal(err)
		}
	}
	close(gate)
	if _, errs := awaitAnswers(t, obs, n); len(errs) > 0 {
		t.Errorf("errors: %v", errs)
	}
	got := u.requests()
	if len(got) != n {
		t.Fatalf("server got %d requests, want %d", len(got), n)
	}
	for _, r := range got {
		if r.big != big {
			t.Errorf("hit %d: X-Big of %d bytes, want %d", r.n, len(r.big), len(big))
		}
	}
}
