//go:build faults

package main

import (
	"fmt"
	"io"
	"net"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// loadSpec is an open-loop load: count requests at a fixed rate, each sent
// at its due time whatever the server does, each with its own timeout.
type loadSpec struct {
	target  string        // host:port of the gateway (loopback only)
	rate    int           // requests per second
	count   int           // requests in all
	timeout time.Duration // per request
	// postEvery: every Nth request is a batched POST of 3 hits (0: never).
	postEvery int
	// secretEvery: every Nth GET is a denied hit carrying identifiers
	// (uid, _ga cookie) that the gateway must strip before queueing (0: never).
	secretEvery int
	// pad adds an ep.pad parameter of this many bytes to every GET.
	pad int
	// query is appended to every request's query string ("&dl=...").
	query string
}

// reqResult is what happened to one request.
type reqResult struct {
	seqs       []int // the ep.seq of its hits
	sent, done time.Time
	status     int // 0: no answer (err)
	err        error
	retryAfter string
}

func (r reqResult) latency() time.Duration { return r.done.Sub(r.sent) }

// load is a running (or finished) load.
type load struct {
	spec  loadSpec
	start time.Time
	done  chan struct{}

	mu      sync.Mutex // results are written as requests finish
	results []reqResult
}

// startLoad starts sending in the background.
func startLoad(t *testing.T, spec loadSpec) *load {
	t.Helper()
	host, _, err := net.SplitHostPort(spec.target)
	if err != nil {
		t.Fatal(err)
	}
	if ip := net.ParseIP(host); ip == nil || !ip.IsLoopback() {
		t.Fatalf("load generator targets loopback only, not %q", spec.target)
	}
	if spec.rate <= 0 || spec.count <= 0 || spec.timeout <= 0 {
		t.Fatal("load: rate, count and timeout must be positive")
	}
	tr := &http.Transport{
		MaxIdleConnsPerHost: 1024,
		IdleConnTimeout:     30 * time.Second,
		DisableCompression:  true,
		Proxy:               nil,
	}
	client := &http.Client{Transport: tr, Timeout: spec.timeout}
	l := &load{spec: spec, results: make([]reqResult, spec.count), done: make(chan struct{})}
	reqs := make([]func() (*http.Request, error), spec.count)
	seq := 1
	pad := ""
	if spec.pad > 0 {
		pad = "&ep.pad=" + strings.Repeat("p", spec.pad)
	}
	base := "http://" + spec.target + "/g/collect?v=2&tid=G-TEST123" + spec.query
	for i := range spec.count {
		switch {
		case spec.postEvery > 0 && i%spec.postEvery == spec.postEvery-1:
			l.results[i].seqs = []int{seq, seq + 1, seq + 2}
			body := fmt.Sprintf("en=page_view&ep.seq=%d\nen=scroll&ep.seq=%d\nen=click&ep.seq=%d", seq, seq+1, seq+2)
			seq += 3
			reqs[i] = func() (*http.Request, error) {
				r, err := http.NewRequest(http.MethodPost, base+"&gcs=G111&cid=1.2", strings.NewReader(body))
				if err == nil {
					r.Header.Set("Content-Type", "text/plain;charset=UTF-8")
				}
				return r, err
			}
		case spec.secretEvery > 0 && i%spec.secretEvery == spec.secretEvery-1:
			l.results[i].seqs = []int{seq}
			u := base + "&gcs=G100&cid=1.2&uid=" + secretMarker + "UID&en=page_view&ep.seq=" + strconv.Itoa(seq) + pad
			seq++
			reqs[i] = func() (*http.Request, error) {
				r, err := http.NewRequest(http.MethodGet, u, nil)
				if err == nil {
					r.Header.Set("Cookie", "_ga=GA1.1."+secretMarker+"GA; _ga_TEST123=GS1.1."+secretMarker+"SESS")
				}
				return r, err
			}
		default:
			l.results[i].seqs = []int{seq}
			u := base + "&gcs=G111&cid=1.2&en=page_view&ep.seq=" + strconv.Itoa(seq) + pad
			seq++
			reqs[i] = func() (*http.Request, error) { return http.NewRequest(http.MethodGet, u, nil) }
		}
	}

	l.start = time.Now().Add(20 * time.Millisecond)
	interval := time.Second / time.Duration(spec.rate)
	go func() {
		defer close(l.done)
		defer tr.CloseIdleConnections()
		var wg sync.WaitGroup
		for i := range spec.count {
			time.Sleep(time.Until(l.start.Add(time.Duration(i) * interval)))
			wg.Add(1)
			go func() {
				defer wg.Done()
				var res reqResult
				defer func() {
					l.mu.Lock()
					res.seqs = l.results[i].seqs
					l.results[i] = res
					l.mu.Unlock()
				}()
				req, err := reqs[i]()
				if err != nil {
					res.err = err
					return
				}
				res.sent = time.Now()
				resp, err := client.Do(req)
				if err != nil {
					res.err, res.done = err, time.Now()
					return
				}
				_, _ = io.Copy(io.Discard, resp.Body)
				_ = resp.Body.Close()
				res.done = time.Now()
				res.status = resp.StatusCode
				res.retryAfter = resp.Header.Get("Retry-After")
			}()
		}
		wg.Wait()
	}()
	return l
}

// at sleeps until d after the load started: the scenario's schedule.
func (l *load) at(d time.Duration) { time.Sleep(time.Until(l.start.Add(d))) }

func (l *load) wait() { <-l.done }

// loadStats sums up a load. sent and accepted count requests (records
// of the gateway: a batched POST is one), as the gateway's metrics do.
type loadStats struct {
	sent, accepted       int     // requests sent, and answered 204
	hits, acceptedHits   int     // the same in hits (a batched POST carries 3)
	acceptedReqs         [][]int // the ep.seq of each accepted request
	status               map[int]int
	r503, r503RetryAfter int // 503 requests, and those with a valid Retry-After
	errors               int
	firstErr             string
	p50, p99, max        time.Duration // over requests that got an answer
}

func (l *load) stats() loadStats { return l.statsOf(func(reqResult) bool { return true }) }

// statsOf sums up the results so far that keep selects.
func (l *load) statsOf(keep func(reqResult) bool) loadStats {
	l.mu.Lock()
	defer l.mu.Unlock()
	return statsOf(l.results, keep)
}

// results returns a copy of the results so far.
func (l *load) snapshot() []reqResult {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]reqResult(nil), l.results...)
}

// acceptedBefore returns the requests accepted by t.
func (l *load) acceptedBefore(t time.Time) [][]int {
	return l.statsOf(func(r reqResult) bool { return r.status != 0 && r.done.Before(t) }).acceptedReqs
}

// statsOf sums up the results that keep selects.
func statsOf(results []reqResult, keep func(reqResult) bool) loadStats {
	s := loadStats{status: map[int]int{}}
	var lat []time.Duration
	for _, r := range results {
		if !keep(r) {
			continue
		}
		s.sent++
		s.hits += len(r.seqs)
		s.status[r.status]++
		if r.err != nil {
			s.errors++
			if s.firstErr == "" {
				s.firstErr = r.err.Error()
			}
			continue
		}
		lat = append(lat, r.latency())
		if r.status == http.StatusNoContent {
			s.accepted++
			s.acceptedHits += len(r.seqs)
			s.acceptedReqs = append(s.acceptedReqs, r.seqs)
		}
		if r.status == http.StatusServiceUnavailable {
			s.r503++
			if n, err := strconv.Atoi(r.retryAfter); err == nil && n > 0 {
				s.r503RetryAfter++
			}
		}
	}
	slices.Sort(lat)
	pct := func(p float64) time.Duration {
		if len(lat) == 0 {
			return 0
		}
		return lat[min(len(lat)-1, int(float64(len(lat))*p))]
	}
	s.p50, s.p99 = pct(0.50), pct(0.99)
	if len(lat) > 0 {
		s.max = lat[len(lat)-1]
	}
	return s
}

// statusString lists the answers as "204:5990 503:10 err:0".
func (s loadStats) statusString() string {
	codes := make([]int, 0, len(s.status))
	for c := range s.status {
		codes = append(codes, c)
	}
	slices.Sort(codes)
	var b strings.Builder
	for _, c := range codes {
		if b.Len() > 0 {
			b.WriteByte(' ')
		}
		if c == 0 {
			fmt.Fprintf(&b, "err:%d", s.status[c])
		} else {
			fmt.Fprintf(&b, "%d:%d", c, s.status[c])
		}
	}
	return b.String()
}
