package delivery

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/VictoriaMetrics/metrics"
	"github.com/valyala/fasthttp"
)

// bodyUpstream records the body of each request it gets and answers with
// the status answer picks for it; while hold is open, it holds its first
// answer back, so that hits pile up behind the request in flight.
type bodyUpstream struct {
	ln     net.Listener
	answer func(body string) int
	reply  func(body string) string // the answer's body (nil: none)
	hold   chan struct{}
	mu     sync.Mutex
	got    []string
	more   chan struct{} // closed and replaced at each request
}

func newBodyUpstream(t *testing.T, answer func(string) int) *bodyUpstream {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	u := &bodyUpstream{ln: ln, answer: answer, hold: make(chan struct{}), more: make(chan struct{})}
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer c.Close()
				br := bufio.NewReader(c)
				for {
					req, err := http.ReadRequest(br)
					if err != nil {
						return
					}
					b, _ := io.ReadAll(req.Body)
					u.mu.Lock()
					first := len(u.got) == 0
					u.got = append(u.got, string(b))
					close(u.more)
					u.more = make(chan struct{})
					u.mu.Unlock()
					if first {
						<-u.hold
					}
					status, reply := u.answer(string(b)), ""
					if u.reply != nil {
						reply = u.reply(string(b))
					}
					fmt.Fprintf(c, "HTTP/1.1 %d X\r\nContent-Length: %d\r\n\r\n%s", status, len(reply), reply)
				}
			}()
		}
	}()
	t.Cleanup(func() {
		_ = ln.Close()
		wg.Wait()
	})
	return u
}

// waitRequests waits until n requests have arrived and returns their bodies.
func (u *bodyUpstream) waitRequests(t *testing.T, n int) []string {
	t.Helper()
	timeout := time.After(10 * time.Second)
	for {
		u.mu.Lock()
		got, more := append([]string(nil), u.got...), u.more
		u.mu.Unlock()
		if len(got) >= n {
			return got
		}
		select {
		case <-more:
		case <-timeout:
			t.Fatalf("%d requests, want %d: %q", len(got), n, got)
		}
	}
}

// joinBodies is a MergeFunc for these tests: one POST whose body is the
// bodies joined with ','.
func joinBodies(wires [][]byte, dst []byte) ([]byte, error) {
	var bodies [][]byte
	for _, w := range wires {
		_, body, ok := bytes.Cut(w, []byte("\r\n\r\n"))
		if !ok {
			return nil, errors.New("no body")
		}
		bodies = append(bodies, body)
	}
	body := bytes.Join(bodies, []byte(","))
	dst = fmt.Appendf(dst, "POST /e HTTP/1.1\r\nHost: api.example\r\nContent-Length: %d\r\n\r\n", len(body))
	return append(dst, body...), nil
}

// startCoalescing starts delivery with a spool and a coalescing lane of
// batch hits to u.
func startCoalescing(t *testing.T, u *bodyUpstream, batch int) (*Delivery, *Lane, *metrics.Set) {
	t.Helper()
	set := metrics.NewSet()
	d, err := Start(Options{MaxAge: time.Minute, QueueSize: 1024, QueueBytes: 1 << 20, Workers: 4, PipelineConns: 1,
		SpoolDir: t.TempDir(), SpoolMaxBytes: 1 << 20, SpoolSegmentBytes: 1 << 16, SpoolSync: 5 * time.Millisecond,
		Timeout: 5 * time.Second, Metrics: NewMetrics(set, []string{"vendor"})})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d.Shutdown(0) })
	hc := &fasthttp.HostClient{Addr: u.ln.Addr().String()}
	l, err := d.Lane(Upstream{Scheme: "http", Host: "api.example", Client: hc, Merge: joinBodies, Batch: batch})
	if err != nil {
		t.Fatal(err)
	}
	return d, l, set
}

func acceptBody(t *testing.T, l *Lane, body string) {
	t.Helper()
	acceptAt(t, l, "/e", body)
}

func acceptAt(t *testing.T, l *Lane, path, body string) {
	t.Helper()
	req := new(fasthttp.Request)
	req.Header.SetMethod("POST")
	req.SetBodyString(body)
	if err := l.Accept(0, req, []byte(path), nil, time.Now()); err != nil {
		t.Fatalf("Accept %s: %v", body, err)
	}
}

// TestCoalescingMergesWhatWaits: while a request is in flight, the hits
// that arrive wait and leave together in one merged request (up to
// Batch); every hit is delivered once and its spool record acknowledged.
func TestCoalescingMergesWhatWaits(t *testing.T) {
	u := newBodyUpstream(t, func(string) int { return 204 })
	d, l, set := startCoalescing(t, u, 4)
	acceptBody(t, l, "1")
	u.waitRequests(t, 1) // in flight, held
	for _, b := range []string{"2", "3", "4", "5", "6"} {
		acceptBody(t, l, b)
	}
	close(u.hold)
	got := u.waitRequests(t, 3)
	want := []string{"1", "2,3,4,5", "6"}
	if strings.Join(got, " ") != strings.Join(want, " ") {
		t.Errorf("requests %q, want %q: one in flight at a time, the rest merged up to Batch", got, want)
	}
	d.Shutdown(5 * time.Second)
	if n := counter(set, `consentgate_delivery_delivered_total{family="vendor"}`); n != 6 {
		t.Errorf("delivered_total %d, want 6: each hit counts", n)
	}
	if st := l.sp.Stats(); st.Records != 0 {
		t.Errorf("%d spool records left: merged hits must be acknowledged", st.Records)
	}
}

// TestCoalescingRefusalSplits: a merged request the upstream refuses is
// not dropped whole: its hits go again one by one, and only the one the
// upstream refuses by itself is dropped.
func TestCoalescingRefusalSplits(t *testing.T) {
	u := newBodyUpstream(t, func(b string) int {
		if strings.Contains(b, "bad") {
			return 400
		}
		return 204
	})
	d, l, set := startCoalescing(t, u, 10)
	acceptBody(t, l, "first")
	u.waitRequests(t, 1)
	for _, b := range []string{"a", "bad", "c"} {
		acceptBody(t, l, b)
	}
	close(u.hold)
	got := u.waitRequests(t, 5)
	if got[1] != "a,bad,c" || strings.Join(got[2:], " ") != "a bad c" {
		t.Errorf("requests %q: the refused merged request must be split", got)
	}
	d.Shutdown(5 * time.Second)
	if n := counter(set, `consentgate_delivery_delivered_total{family="vendor"}`); n != 3 {
		t.Errorf("delivered_total %d, want 3", n)
	}
	if n := counter(set, `consentgate_delivery_dropped_total{cause="rejected_4xx"}`); n != 1 {
		t.Errorf("dropped rejected_4xx %d, want 1 (the bad hit only)", n)
	}
}

// TestCoalescingRetriesTogether: a merged request that fails (503) is
// retried, its hits merged again; none is lost or delivered twice.
func TestCoalescingRetriesTogether(t *testing.T) {
	var mu sync.Mutex
	failures := 1
	u := newBodyUpstream(t, func(b string) int {
		mu.Lock()
		defer mu.Unlock()
		if b == "x,y" && failures > 0 {
			failures--
			return 503
		}
		return 204
	})
	d, l, set := startCoalescing(t, u, 10)
	acceptBody(t, l, "w")
	u.waitRequests(t, 1)
	acceptBody(t, l, "x")
	acceptBody(t, l, "y")
	close(u.hold)
	got := u.waitRequests(t, 3)
	if strings.Join(got, " ") != "w x,y x,y" {
		t.Errorf("requests %q, want the merged request retried whole", got)
	}
	d.Shutdown(5 * time.Second)
	if n := counter(set, `consentgate_delivery_delivered_total{family="vendor"}`); n != 3 {
		t.Errorf("delivered_total %d, want 3", n)
	}
	if n := counter(set, `consentgate_delivery_retried_total{cause="5xx"}`); n != 2 {
		t.Errorf("retried 5xx %d, want 2 (each hit of the merged request)", n)
	}
}

// TestCoalescingGroupsByEndpoint: hits for two endpoints of one host
// (two vendors' paths) are merged per endpoint, never together.
func TestCoalescingGroupsByEndpoint(t *testing.T) {
	var mu sync.Mutex
	paths := map[string][]string{}
	u := newBodyUpstream(t, func(string) int { return 204 })
	merge := func(wires [][]byte, dst []byte) ([]byte, error) {
		line, _, _ := bytes.Cut(wires[0], []byte("\r\n"))
		for _, w := range wires[1:] {
			if !bytes.HasPrefix(w, line) {
				t.Errorf("merged across endpoints: %q and %q", line, w)
			}
		}
		mu.Lock()
		paths[string(line)] = append(paths[string(line)], fmt.Sprint(len(wires)))
		mu.Unlock()
		return joinBodies(wires, dst)
	}
	set := metrics.NewSet()
	d, err := Start(Options{MaxAge: time.Minute, QueueSize: 64, QueueBytes: 1 << 20, Workers: 2, PipelineConns: 1, Timeout: 5 * time.Second,
		Metrics: NewMetrics(set, []string{"vendor"}), Tune: func(up *Upstream) { up.Merge, up.Batch = merge, 10 }})
	if err != nil {
		t.Fatal(err)
	}
	defer d.Shutdown(0)
	l, err := d.Lane(Upstream{Scheme: "http", Host: "api.example", Client: &fasthttp.HostClient{Addr: u.ln.Addr().String()}})
	if err != nil {
		t.Fatal(err)
	}
	acceptAt(t, l, "/a", "0")
	u.waitRequests(t, 1)
	for i := range 3 {
		acceptAt(t, l, "/a", fmt.Sprint(i+1))
		acceptAt(t, l, "/b", fmt.Sprint(i+1))
	}
	close(u.hold)
	got := u.waitRequests(t, 3)
	mu.Lock()
	defer mu.Unlock()
	if len(got) != 3 || paths["POST /a HTTP/1.1"] == nil || paths["POST /b HTTP/1.1"] == nil {
		t.Errorf("requests %q, merges %v: want one merged request per endpoint (Tune made the lane coalesce)", got, paths)
	}
}

// TestCoalescingOffWithBatchOne: a batch of one merges nothing; the lane
// is an ordinary one.
func TestCoalescingOffWithBatchOne(t *testing.T) {
	u := newBodyUpstream(t, func(string) int { return 204 })
	close(u.hold)
	merged := false
	set := metrics.NewSet()
	d, err := Start(Options{MaxAge: time.Minute, QueueSize: 64, QueueBytes: 1 << 20, Workers: 4, PipelineConns: 1, Timeout: 5 * time.Second,
		Metrics: NewMetrics(set, []string{"vendor"}), Tune: func(up *Upstream) {
			up.Merge = func(w [][]byte, dst []byte) ([]byte, error) { merged = true; return joinBodies(w, dst) }
			up.Batch = 1
		}})
	if err != nil {
		t.Fatal(err)
	}
	l, err := d.Lane(Upstream{Scheme: "http", Host: "api.example", Client: &fasthttp.HostClient{Addr: u.ln.Addr().String()}})
	if err != nil {
		t.Fatal(err)
	}
	for i := range 20 {
		acceptBody(t, l, fmt.Sprint(i))
	}
	u.waitRequests(t, 20)
	d.Shutdown(5 * time.Second)
	if merged || l.up.Merge != nil {
		t.Error("a lane with a batch of one merged")
	}
}

// TestRefusedInBody: an upstream that says a refusal in a 200's body
// (Upstream.Refused, as TikTok's API does): the refused hit is dropped
// and counted as rejected_4xx, not counted delivered; a merged request
// with it is split, so that the others are delivered.
func TestRefusedInBody(t *testing.T) {
	u := newBodyUpstream(t, func(string) int { return 200 })
	u.reply = func(b string) string {
		if strings.Contains(b, "bad") {
			return `{"code":40002}`
		}
		return `{"code":0}`
	}
	set := metrics.NewSet()
	d, err := Start(Options{MaxAge: time.Minute, QueueSize: 64, QueueBytes: 1 << 20, Workers: 2, PipelineConns: 1, Timeout: 5 * time.Second,
		Metrics: NewMetrics(set, []string{"vendor"}), Tune: func(up *Upstream) {
			up.Merge, up.Batch = joinBodies, 10
			up.Refused = func(b []byte) bool { return !bytes.Contains(b, []byte(`"code":0`)) }
		}})
	if err != nil {
		t.Fatal(err)
	}
	l, err := d.Lane(Upstream{Scheme: "http", Host: "api.example", Client: &fasthttp.HostClient{Addr: u.ln.Addr().String()}})
	if err != nil {
		t.Fatal(err)
	}
	acceptBody(t, l, "first")
	u.waitRequests(t, 1)
	for _, b := range []string{"a", "bad", "c"} {
		acceptBody(t, l, b)
	}
	close(u.hold)
	got := u.waitRequests(t, 5)
	d.Shutdown(5 * time.Second)
	if got[1] != "a,bad,c" {
		t.Errorf("requests %q", got)
	}
	if n := counter(set, `consentgate_delivery_delivered_total{family="vendor"}`); n != 3 {
		t.Errorf("delivered_total %d, want 3 (first, a, c)", n)
	}
	if n := counter(set, `consentgate_delivery_dropped_total{cause="rejected_4xx"}`); n != 1 {
		t.Errorf("dropped rejected_4xx %d, want 1", n)
	}
}
