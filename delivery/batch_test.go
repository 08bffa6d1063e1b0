package delivery

import (
	"bufio"
	"fmt"
	"net"
	"net/http"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/VictoriaMetrics/metrics"
	"github.com/valyala/fasthttp"
)

// rawUpstream is an HTTP/1.1 server on loopback written for these tests:
// it reads pipelined requests in order and answers each with the status
// that answer(conn, n) picks for the request's query parameter n, all the
// answers to what one read brought in one write, as a pipelining server
// may. A negative status closes the connection without answering.
type rawUpstream struct {
	ln     net.Listener
	answer func(conn, n int) int

	mu    sync.Mutex
	conns int
	got   [][]int // per connection: the n of each request, in order
}

func newRawUpstream(t testing.TB, answer func(conn, n int) int) *rawUpstream {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	u := &rawUpstream{ln: ln, answer: answer}
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			u.mu.Lock()
			id := u.conns
			u.conns++
			u.got = append(u.got, nil)
			u.mu.Unlock()
			wg.Add(1)
			go func() {
				defer wg.Done()
				u.serve(c, id)
			}()
		}
	}()
	t.Cleanup(func() {
		_ = ln.Close()
		wg.Wait()
	})
	return u
}

func (u *rawUpstream) serve(c net.Conn, id int) {
	defer c.Close()
	br := bufio.NewReader(c)
	var out []byte
	for {
		req, err := http.ReadRequest(br)
		if err != nil {
			return
		}
		_ = req.Body.Close()
		n, _ := strconv.Atoi(req.URL.Query().Get("n"))
		u.mu.Lock()
		u.got[id] = append(u.got[id], n)
		u.mu.Unlock()
		status := u.answer(id, n)
		if status < 0 {
			_, _ = c.Write(out)
			return
		}
		out = fmt.Appendf(out, "HTTP/1.1 %d X\r\nContent-Length: 0\r\n\r\n", status)
		if br.Buffered() == 0 {
			if _, err := c.Write(out); err != nil {
				return
			}
			out = out[:0]
		}
	}
}

func (u *rawUpstream) requests() [][]int {
	u.mu.Lock()
	defer u.mu.Unlock()
	out := make([][]int, len(u.got))
	for i, g := range u.got {
		out[i] = append([]int(nil), g...)
	}
	return out
}

// gatedDial dials addr once gate is closed (so that a test can queue hits
// before the first connection exists).
func gatedDial(addr string, gate chan struct{}) fasthttp.DialFunc {
	return func(string) (net.Conn, error) {
		<-gate
		return net.Dial("tcp", addr)
	}
}

type answer struct{ tag, status int }

// startPipelined starts delivery without a spool over conns pipelined
// connections of window hits each; every Observe call is sent on obs.
func startPipelined(t *testing.T, conns, window int, obs chan answer) (*Delivery, *metrics.Set) {
	t.Helper()
	set := metrics.NewSet()
	d, err := Start(Options{MaxAge: time.Minute, QueueSize: 1024, QueueBytes: 1 << 20, Workers: conns * window, PipelineConns: conns,
		Timeout: 5 * time.Second, Metrics: NewMetrics(set, []string{"a"}),
		Observe: func(tag int, _ time.Duration, status int, err error) {
			if err == nil {
				obs <- answer{tag, status}
			}
		}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d.Shutdown(0) })
	return d, set
}

func acceptN(t *testing.T, l *Lane, from, n int) {
	t.Helper()
	for i := from; i < from+n; i++ {
		if err := l.Accept(i, hit("/x"), []byte("/g/collect"), fmt.Appendf(nil, "n=%d", i), time.Now()); err != nil {
			t.Fatalf("Accept %d: %v", i, err)
		}
	}
}

// N queued hits go out over one connection in far fewer writes than hits,
// and each is settled by its own answer: the upstream answers hit n with
// a status of its own, and Observe must see that status for that tag.
func TestBatchSharesWritesAndMatchesAnswers(t *testing.T) {
	const n = 100
	statusOf := func(n int) int { return 200 + n%7 } // 200..206, all success
	u := newRawUpstream(t, func(_, n int) int { return statusOf(n) })
	gate := make(chan struct{})
	obs := make(chan answer, n)
	d, set := startPipelined(t, 1, n, obs)
	hc := &fasthttp.HostClient{Addr: u.ln.Addr().String(), Dial: gatedDial(u.ln.Addr().String(), gate)}
	l, err := d.Lane(Upstream{Scheme: "http", Host: "collect.example", Client: hc})
	if err != nil {
		t.Fatal(err)
	}
	acceptN(t, l, 0, n)
	close(gate)
	seen := map[int]bool{}
	for range n {
		a := <-obs
		if a.status != statusOf(a.tag) {
			t.Errorf("hit %d settled with status %d, its own answer was %d", a.tag, a.status, statusOf(a.tag))
		}
		if seen[a.tag] {
			t.Errorf("hit %d settled twice", a.tag)
		}
		seen[a.tag] = true
	}
	got := u.requests()
	if len(got) != 1 || len(got[0]) != n {
		t.Fatalf("upstream connections and requests: %v, want %d requests on one connection", got, n)
	}
	writes := set.GetOrCreateCounter(`consentgate_delivery_upstream_writes_total{upstream="http://collect.example"}`).Get()
	if writes == 0 || writes > 4 {
		t.Errorf("%d hits took %d writes, want a few", n, writes)
	}
	t.Logf("%d hits, %d writes", n, writes)
	d.Shutdown(0) // its readers have ended: every answer is counted (Observe comes first)
	if got := set.GetOrCreateCounter(`consentgate_delivery_delivered_total{family="a"}`).Get(); got != n {
		t.Errorf("delivered %d, want %d", got, n)
	}
}

// A connection that breaks mid-batch: the hits it answered are settled,
// exactly the unanswered ones are sent again on a new connection, and
// each hit is delivered once.
func TestBatchRetriesExactlyTheUnanswered(t *testing.T) {
	const n, answered = 40, 15
	u := newRawUpstream(t, func(conn, n int) int {
		if conn == 0 && n >= answered {
			return -1 // the first connection breaks after 15 answers
		}
		return 204
	})
	gate := make(chan struct{})
	obs := make(chan answer, 2*n)
	d, set := startPipelined(t, 1, n, obs)
	hc := &fasthttp.HostClient{Addr: u.ln.Addr().String(), Dial: gatedDial(u.ln.Addr().String(), gate)}
	l, err := d.Lane(Upstream{Scheme: "http", Host: "collect.example", Client: hc})
	if err != nil {
		t.Fatal(err)
	}
	acceptN(t, l, 0, n)
	close(gate)
	for range n {
		<-obs
	}
	got := u.requests()
	if len(got) < 2 {
		t.Fatalf("connections %v: want the hits retried on a second one", got)
	}
	// The server reads (and records) what arrived before it broke the
	// connection: 0..15, of which 0..14 were answered.
	again := map[int]int{}
	for _, x := range got[len(got)-1] {
		again[x]++
	}
	for i := range n {
		switch {
		case i < answered && again[i] != 0:
			t.Errorf("hit %d was answered on the broken connection and sent again", i)
		case i >= answered && again[i] != 1:
			t.Errorf("unanswered hit %d sent %d times on the new connection, want 1 (connections %v)", i, again[i], got)
		}
	}
	d.Shutdown(0) // its readers have ended: every answer is counted (Observe comes first)
	if got := set.GetOrCreateCounter(`consentgate_delivery_delivered_total{family="a"}`).Get(); got != n {
		t.Errorf("delivered %d, want %d", got, n)
	}
}

// An answer with Connection: close ends the connection after it: the
// hits behind it are sent again on a new one, none is lost.
func TestBatchConnectionCloseAnswer(t *testing.T) {
	const n = 10
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				br := bufio.NewReader(c)
				// One answer per connection, then close (a server that does
				// not keep connections alive).
				if req, err := http.ReadRequest(br); err == nil {
					_ = req.Body.Close()
					_, _ = c.Write([]byte("HTTP/1.1 204 No Content\r\nConnection: close\r\n\r\n"))
				}
			}()
		}
	}()
	gate := make(chan struct{})
	obs := make(chan answer, n)
	d, set := startPipelined(t, 1, n, obs)
	hc := &fasthttp.HostClient{Addr: ln.Addr().String(), Dial: gatedDial(ln.Addr().String(), gate)}
	l, err := d.Lane(Upstream{Scheme: "http", Host: "collect.example", Client: hc})
	if err != nil {
		t.Fatal(err)
	}
	acceptN(t, l, 0, n)
	close(gate)
	seen := map[int]bool{}
	for range n {
		a := <-obs
		if seen[a.tag] {
			t.Errorf("hit %d settled twice", a.tag)
		}
		seen[a.tag] = true
	}
	d.Shutdown(0) // its readers have ended: every answer is counted (Observe comes first)
	if got := set.GetOrCreateCounter(`consentgate_delivery_delivered_total{family="a"}`).Get(); got != n {
		t.Errorf("delivered %d, want %d", got, n)
	}
}
