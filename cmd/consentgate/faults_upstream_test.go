//go:build faults

package main

import (
	"bytes"
	"errors"
	"io"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// upMode is how the fake upstream behaves at the moment.
type upMode int

const (
	upOK     upMode = iota // 204, the hit counts as delivered
	upRefuse               // listener closed, open connections closed: connection refused
	upHang                 // requests are read and never answered (aborted when the mode changes)
	up503                  // 503 Service Unavailable
	up429                  // 429 Too Many Requests with Retry-After
	up400                  // 400 Bad Request (must not be retried)
	upBreak                // every breakEvery-th request closes its connection unanswered, with what was pipelined behind it; the rest get 204
)

// breakEvery is how often upBreak breaks a connection.
const breakEvery = 4

func (m upMode) String() string {
	return [...]string{"ok", "refuse", "hang", "503", "429", "400", "break"}[m]
}

// secretMarker is in every identifier the gateway must strip from denied
// hits; neither the upstream nor the spool may ever see it.
const secretMarker = "FAULTSECRET"

// fakeUpstream is a recording upstream on a real TCP listener on
// 127.0.0.1 whose behaviour can be switched at run time. It counts, per
// ep.seq, how often a hit was accepted with 204 (delivered) and how often
// it was answered 400.
type fakeUpstream struct {
	t    *testing.T
	addr string

	mu         sync.Mutex
	mode       upMode
	retryAfter int               // seconds, for up429
	srv        *http.Server      // nil while refusing
	release    chan struct{}     // closed when the hang ends
	delivered  map[int]int       // seq -> 204 answers
	firstAt    map[int]time.Time // seq -> first 204
	rejected   map[int]int       // seq -> 400 answers
	requests   int               // every request read, whatever the answer
	byMode     map[upMode]int
	secrets    int // requests that carried secretMarker
	lastReq    time.Time
}

func newFakeUpstream(t *testing.T) *fakeUpstream {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	u := &fakeUpstream{
		t: t, addr: ln.Addr().String(), retryAfter: 1,
		release:   make(chan struct{}),
		delivered: map[int]int{}, firstAt: map[int]time.Time{}, rejected: map[int]int{}, byMode: map[upMode]int{},
	}
	u.serve(ln)
	t.Cleanup(func() {
		u.mu.Lock()
		defer u.mu.Unlock()
		if u.srv != nil {
			_ = u.srv.Close()
			u.srv = nil
		}
		if u.mode == upHang {
			close(u.release)
			u.mode = upOK
		}
	})
	return u
}

func (u *fakeUpstream) serve(ln net.Listener) {
	srv := &http.Server{Handler: u, ReadHeaderTimeout: 10 * time.Second, ErrorLog: nil}
	u.srv = srv
	go func() { _ = srv.Serve(ln) }()
}

// URL is the base URL to configure as the gateway's upstream.
func (u *fakeUpstream) URL() string { return "http://" + u.addr }

// set switches the behaviour. Leaving "refuse" listens again on the same
// port; entering it closes the listener and every open connection, so
// pooled keep-alive connections fail too. Leaving "hang" aborts the hung
// requests without an answer.
func (u *fakeUpstream) set(m upMode) {
	u.t.Helper()
	u.mu.Lock()
	defer u.mu.Unlock()
	if m == u.mode {
		return
	}
	if u.mode == upHang {
		close(u.release)
		u.release = make(chan struct{})
	}
	if m == upRefuse && u.srv != nil {
		_ = u.srv.Close()
		u.srv = nil
	}
	if u.mode == upRefuse && m != upRefuse {
		var ln net.Listener
		var err error
		for range 50 { // the port stays ours in practice; tolerate a slow release
			if ln, err = net.Listen("tcp", u.addr); err == nil || !errors.Is(err, syscall.EADDRINUSE) {
				break
			}
			time.Sleep(20 * time.Millisecond)
		}
		if err != nil {
			u.t.Errorf("fake upstream: listen again on %s: %v", u.addr, err)
			return
		}
		u.serve(ln)
	}
	u.mode = m
}

func (u *fakeUpstream) set429(retryAfter int) {
	u.mu.Lock()
	u.retryAfter = retryAfter
	u.mu.Unlock()
	u.set(up429)
}

func (u *fakeUpstream) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(r.Body)
	if err != nil {
		panic(http.ErrAbortHandler)
	}
	seqs := hitSeqs(r.URL.RawQuery, body)
	secret := strings.Contains(r.URL.RawQuery, secretMarker) || bytes.Contains(body, []byte(secretMarker)) ||
		strings.Contains(r.Header.Get("Cookie"), secretMarker)

	u.mu.Lock()
	mode, release, retryAfter := u.mode, u.release, u.retryAfter
	u.requests++
	u.byMode[mode]++
	broken := mode == upBreak && u.byMode[mode]%breakEvery == 0
	u.lastReq = time.Now()
	if secret {
		u.secrets++
	}
	switch {
	case broken:
	case mode == upOK, mode == upRefuse, mode == upBreak: // upRefuse: a request that raced the close
		now := time.Now()
		for _, s := range seqs {
			if u.delivered[s] == 0 {
				u.firstAt[s] = now
			}
			u.delivered[s]++
		}
	case mode == up400:
		for _, s := range seqs {
			u.rejected[s]++
		}
	}
	u.mu.Unlock()

	if broken {
		panic(http.ErrAbortHandler) // the connection closes; what was pipelined behind is never answered
	}
	switch mode {
	case upHang:
		select {
		case <-release:
		case <-r.Context().Done():
		}
		panic(http.ErrAbortHandler) // close without an answer
	case up503:
		w.WriteHeader(http.StatusServiceUnavailable)
	case up429:
		w.Header().Set("Retry-After", strconv.Itoa(retryAfter))
		w.WriteHeader(http.StatusTooManyRequests)
	case up400:
		w.WriteHeader(http.StatusBadRequest)
	default:
		w.WriteHeader(http.StatusNoContent)
	}
}

// hitSeqs returns the ep.seq of every hit in a GA4 request: the query
// string's, and one per line of a batched POST body.
func hitSeqs(rawQuery string, body []byte) []int {
	var seqs []int
	add := func(q string) {
		v, err := url.ParseQuery(q)
		if err != nil {
			return
		}
		for _, s := range v["ep.seq"] {
			if n, err := strconv.Atoi(s); err == nil {
				seqs = append(seqs, n)
			}
		}
	}
	add(rawQuery)
	for line := range strings.SplitSeq(string(body), "\n") {
		if line = strings.TrimSpace(line); line != "" {
			add(line)
		}
	}
	return seqs
}

// upCounts is a snapshot of what the upstream saw for a set of accepted
// requests. A request is delivered when each of its hits was.
type upCounts struct {
	delivered  int // accepted requests delivered at least once
	duplicated int // extra deliveries of accepted requests
	missing    int // accepted requests not delivered nor answered 400 (lost, once waited for)
	rejected   int // accepted requests the upstream answered 400
	rejectedX  int // 400 answers beyond the first per request (retried 4xx)
	unaccepted int // hits delivered that the client never saw accepted (no answer, error)
	requests   int // upstream requests, whatever the answer
	byMode     map[upMode]int
	secrets    int
}

func (u *fakeUpstream) counts(accepted [][]int) upCounts {
	u.mu.Lock()
	defer u.mu.Unlock()
	c := upCounts{requests: u.requests, secrets: u.secrets, byMode: map[upMode]int{}}
	for m, n := range u.byMode {
		c.byMode[m] = n
	}
	seen := make(map[int]bool, len(accepted))
	for _, seqs := range accepted {
		dMin, dMax, rMax := -1, 0, 0
		for _, s := range seqs {
			seen[s] = true
			d := u.delivered[s]
			if dMin < 0 || d < dMin {
				dMin = d
			}
			dMax, rMax = max(dMax, d), max(rMax, u.rejected[s])
		}
		switch {
		case dMin > 0:
			c.delivered++
			c.duplicated += dMax - 1
		case rMax > 0:
		default:
			c.missing++
		}
		if rMax > 0 {
			c.rejected++
			c.rejectedX += rMax - 1
		}
	}
	for s := range u.delivered {
		if !seen[s] {
			c.unaccepted++
		}
	}
	return c
}

// lastFirstDelivery returns when the last hit of the accepted requests was
// first delivered (zero if one never was).
func (u *fakeUpstream) lastFirstDelivery(accepted [][]int) time.Time {
	u.mu.Lock()
	defer u.mu.Unlock()
	var last time.Time
	for _, seqs := range accepted {
		for _, s := range seqs {
			at, ok := u.firstAt[s]
			if !ok {
				return time.Time{}
			}
			if at.After(last) {
				last = at
			}
		}
	}
	return last
}

// firstDelivery returns when seq was first delivered.
func (u *fakeUpstream) firstDelivery(seq int) (time.Time, bool) {
	u.mu.Lock()
	defer u.mu.Unlock()
	at, ok := u.firstAt[seq]
	return at, ok
}

// waitDelivered polls until every accepted request was delivered (or
// answered 400) or the deadline passes, and returns the final counts and
// how long it waited.
func (u *fakeUpstream) waitDelivered(accepted [][]int, deadline time.Duration) (upCounts, time.Duration) {
	start := time.Now()
	for {
		c := u.counts(accepted)
		if c.missing == 0 || time.Since(start) > deadline {
			return c, time.Since(start)
		}
		time.Sleep(100 * time.Millisecond)
	}
}
