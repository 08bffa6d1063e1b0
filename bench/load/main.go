// Command load is the fixed-rate (open-loop) load generator of the load
// benchmark (bench/run.sh). wrk only measures maximum throughput; this
// sends a fixed number of requests per second, whatever the server does,
// and measures latency without coordinated omission.
//
//	go run ./bench/load -url http://127.0.0.1:8080 -hits bench/hits.txt \
//	    -rate 10000 -duration 10s -conns 64
//
// It reads the same mix file as bench/mix.lua and sends its hits in turn
// over -conns keep-alive connections (one request at a time on each, as
// wrk and browsers do). Request i is due at start + i/rate. A connection
// takes the next due request when it is free; the latency of a request
// counts from when it was due if the connection was still busy then (the
// server was late: that wait is the server's), and from when it was sent
// otherwise (so the generator's own timer slack is not counted). It prints
// one JSON object with the achieved rate, errors and latency percentiles.
// With -split PREFIX it also gives the percentiles of the hits whose path
// starts with PREFIX (split_*) and of the others (rest_*), e.g. the queued
// GA4 hits apart from the Ads hits that wait for the upstream.
//
// It is a benchmark tool, not part of the gateway; it only targets
// loopback addresses.
package main

import (
	"bufio"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"net"
	"net/url"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/valyala/fasthttp"
)

func main() {
	rawURL := flag.String("url", "http://127.0.0.1:8080", "base `URL` of the server (loopback only); the mix's paths are sent to it")
	hitsFile := flag.String("hits", "bench/hits.txt", "mix `file` (format in bench/hits.txt)")
	rate := flag.Int("rate", 1000, "requests per second")
	duration := flag.Duration("duration", 10*time.Second, "how long to send")
	conns := flag.Int("conns", 64, "keep-alive connections")
	timeout := flag.Duration("timeout", 5*time.Second, "per-request timeout")
	split := flag.String("split", "", "also report the hits whose path starts with `prefix` apart from the others")
	flag.Parse()

	if err := run(*rawURL, *hitsFile, *rate, *duration, *conns, *timeout, *split); err != nil {
		fmt.Fprintln(os.Stderr, "load:", err)
		os.Exit(1)
	}
}

// result is what one run prints.
type result struct {
	TargetRate   int     `json:"target_rate"`
	AchievedRate float64 `json:"achieved_rate"`
	Requests     int     `json:"requests"`
	Due          int     `json:"due"`
	Errors       int     `json:"errors"`
	Non2xx       int     `json:"non_2xx"`
	Late         int     `json:"late"` // sent when the connection became free, after their due time
	P50us        int64   `json:"p50_us"`
	P90us        int64   `json:"p90_us"`
	P99us        int64   `json:"p99_us"`
	P999us       int64   `json:"p999_us"`
	MaxUs        int64   `json:"max_us"`
	FirstError   string  `json:"first_error,omitempty"`
	// With -split: the hits whose path starts with the prefix, and the rest.
	SplitPrefix   string `json:"split_prefix,omitempty"`
	SplitRequests int    `json:"split_requests,omitempty"`
	SplitP50us    int64  `json:"split_p50_us,omitempty"`
	SplitP99us    int64  `json:"split_p99_us,omitempty"`
	RestRequests  int    `json:"rest_requests,omitempty"`
	RestP50us     int64  `json:"rest_p50_us,omitempty"`
	RestP99us     int64  `json:"rest_p99_us,omitempty"`
}

// pctOf returns the p-th percentile of sorted latencies in microseconds.
func pctOf(lat []time.Duration, p float64) int64 {
	if len(lat) == 0 {
		return 0
	}
	k := int(p / 100 * float64(len(lat)))
	return lat[min(k, len(lat)-1)].Microseconds()
}

// pathOf returns the path of a serialized request (without the query).
func pathOf(req []byte) string {
	line, _, _ := strings.Cut(string(req), "\r\n")
	_, target, _ := strings.Cut(line, " ")
	target, _, _ = strings.Cut(target, " ")
	p, _, _ := strings.Cut(target, "?")
	return p
}

func run(rawURL, hitsFile string, rate int, duration time.Duration, conns int, timeout time.Duration, split string) error {
	if rate <= 0 || conns <= 0 || duration <= 0 {
		return errors.New("-rate, -conns and -duration must be positive")
	}
	u, err := url.Parse(rawURL)
	if err != nil {
		return err
	}
	if err := checkLoopback(u.Host); err != nil {
		return err
	}
	text, err := os.ReadFile(hitsFile)
	if err != nil {
		return err
	}
	hits, err := parseHits(string(text))
	if err != nil {
		return fmt.Errorf("%s: %w", hitsFile, err)
	}
	inSplit := make([]bool, len(hits))
	for i, h := range hits {
		inSplit[i] = split != "" && strings.HasPrefix(pathOf(h), split)
	}

	interval := float64(time.Second) / float64(rate)
	s := &schedule{start: time.Now().Add(50 * time.Millisecond), interval: interval, total: int64(float64(duration) / interval)}
	var mu sync.Mutex
	var all tally
	var wg sync.WaitGroup
	for range conns {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c := &client{addr: u.Host, timeout: timeout}
			defer c.close()
			t := send(c, s, hits, inSplit, split != "", int(s.total/int64(conns)+16))
			mu.Lock()
			all.merge(t)
			mu.Unlock()
		}()
	}
	wg.Wait()
	res := summarize(&all, rate, int(s.total), time.Since(s.start), split)
	enc := json.NewEncoder(os.Stdout)
	return enc.Encode(res)
}

// schedule is the fixed-rate plan: request i is due at start + i*interval,
// for i below total. The connections take requests from it in turn.
type schedule struct {
	start    time.Time
	interval float64 // nanoseconds between two due times
	total    int64
	next     atomic.Int64
}

// take returns the next request and its due time; ok is false when all
// are taken.
func (s *schedule) take() (i int64, due time.Time, ok bool) {
	i = s.next.Add(1) - 1
	if i >= s.total {
		return i, time.Time{}, false
	}
	return i, s.start.Add(time.Duration(float64(i) * s.interval)), true
}

// tally is what one connection measured, or all of them merged.
type tally struct {
	lat, latSplit, latRest []time.Duration // of the answered requests
	errs, non2xx, late     int
	firstErr               string
}

// merge adds o to t.
func (t *tally) merge(o *tally) {
	t.lat = append(t.lat, o.lat...)
	t.latSplit = append(t.latSplit, o.latSplit...)
	t.latRest = append(t.latRest, o.latRest...)
	t.errs += o.errs
	t.non2xx += o.non2xx
	t.late += o.late
	if t.firstErr == "" {
		t.firstErr = o.firstErr
	}
}

// send takes requests from s and sends them over c, one at a time, until
// none is left; split says whether to keep the latencies of the hits in
// inSplit apart. size is the expected number of requests, to size the
// latency list.
func send(c *client, s *schedule, hits [][]byte, inSplit []bool, split bool, size int) *tally {
	t := &tally{lat: make([]time.Duration, 0, size)}
	for {
		i, due, ok := s.take()
		if !ok {
			return t
		}
		from := due
		if d := time.Until(due); d > 0 {
			time.Sleep(d)
			from = time.Now() // idle until due: timer slack is ours, not the server's
		} else if -d > time.Millisecond {
			t.late++
		}
		h := int(i) % len(hits)
		status, err := c.do(hits[h])
		if err != nil {
			t.errs++
			if t.firstErr == "" {
				t.firstErr = err.Error()
			}
			continue
		}
		d := time.Since(from)
		t.lat = append(t.lat, d)
		if split {
			if inSplit[h] {
				t.latSplit = append(t.latSplit, d)
			} else {
				t.latRest = append(t.latRest, d)
			}
		}
		if status < 200 || status > 299 {
			t.non2xx++
		}
	}
}

// summarize turns the merged tally of a run into its result.
func summarize(t *tally, rate, due int, elapsed time.Duration, split string) result {
	res := result{TargetRate: rate, Due: due, Errors: t.errs, Non2xx: t.non2xx, Late: t.late, FirstError: t.firstErr}
	lat := t.lat
	slices.Sort(lat)
	res.Requests = len(lat)
	res.AchievedRate = float64(len(lat)) / elapsed.Seconds()
	res.P50us, res.P90us, res.P99us, res.P999us = pctOf(lat, 50), pctOf(lat, 90), pctOf(lat, 99), pctOf(lat, 99.9)
	if split != "" {
		slices.Sort(t.latSplit)
		slices.Sort(t.latRest)
		res.SplitPrefix = split
		res.SplitRequests, res.SplitP50us, res.SplitP99us = len(t.latSplit), pctOf(t.latSplit, 50), pctOf(t.latSplit, 99)
		res.RestRequests, res.RestP50us, res.RestP99us = len(t.latRest), pctOf(t.latRest, 50), pctOf(t.latRest, 99)
	}
	if len(lat) > 0 {
		res.MaxUs = lat[len(lat)-1].Microseconds()
	}
	return res
}

// client is one keep-alive connection, dialled on first use and again
// after an error.
type client struct {
	addr    string
	timeout time.Duration
	conn    net.Conn
	br      *bufio.Reader
	resp    fasthttp.Response
}

// do sends one serialized request and reads the answer; it returns the
// status code.
func (c *client) do(req []byte) (int, error) {
	if c.conn == nil {
		conn, err := net.DialTimeout("tcp", c.addr, c.timeout)
		if err != nil {
			return 0, err
		}
		c.conn = conn
		if c.br == nil {
			c.br = bufio.NewReaderSize(conn, 64<<10)
		} else {
			c.br.Reset(conn)
		}
	}
	if err := c.conn.SetDeadline(time.Now().Add(c.timeout)); err != nil {
		c.close()
		return 0, err
	}
	if _, err := c.conn.Write(req); err != nil {
		c.close()
		return 0, err
	}
	c.resp.Reset()
	if err := c.resp.Read(c.br); err != nil {
		c.close()
		return 0, err
	}
	status := c.resp.StatusCode()
	if c.resp.ConnectionClose() {
		c.close()
	}
	return status, nil
}

func (c *client) close() {
	if c.conn != nil {
		_ = c.conn.Close()
		c.conn = nil
	}
}

// parseHits reads the mix file format (see bench/hits.txt) and returns
// each request serialized as HTTP/1.1 with keep-alive.
func parseHits(text string) ([][]byte, error) {
	var out [][]byte
	var b strings.Builder
	var body string
	open := false
	flush := func() {
		if !open {
			return
		}
		if body != "" {
			b.WriteString("Content-Length: " + strconv.Itoa(len(body)) + "\r\n")
		}
		b.WriteString("\r\n")
		b.WriteString(body)
		out = append(out, []byte(b.String()))
		b.Reset()
		body, open = "", false
	}
	for n, line := range strings.Split(text, "\n") {
		line = strings.TrimSuffix(line, "\r")
		switch {
		case strings.HasPrefix(line, "#"):
		case line == "":
			flush()
		case !open:
			method, path, ok := strings.Cut(line, " ")
			if !ok || method == "" || method != strings.ToUpper(method) {
				return nil, fmt.Errorf("line %d: want METHOD PATH, got %q", n+1, line)
			}
			fmt.Fprintf(&b, "%s %s HTTP/1.1\r\n", method, path)
			open = true
		case strings.HasPrefix(line, "body "):
			body = strings.NewReplacer(`\r`, "\r", `\n`, "\n").Replace(line[len("body "):])
		default:
			name, value, ok := strings.Cut(line, ":")
			if !ok {
				return nil, fmt.Errorf("line %d: want Name: value, got %q", n+1, line)
			}
			b.WriteString(name + ": " + strings.TrimSpace(value) + "\r\n")
		}
	}
	flush()
	if len(out) == 0 {
		return nil, errors.New("no requests")
	}
	return out, nil
}

// checkLoopback refuses any target that is not a loopback address.
func checkLoopback(hostport string) error {
	h, _, err := net.SplitHostPort(hostport)
	if err != nil {
		return err
	}
	ip := net.ParseIP(h)
	if h == "localhost" || (ip != nil && ip.IsLoopback()) {
		return nil
	}
	return fmt.Errorf("%s is not a loopback address", hostport)
}
