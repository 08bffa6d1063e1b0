package proxy

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/VictoriaMetrics/metrics"
	"github.com/valyala/fasthttp"
	"go.uber.org/zap"

	"github.com/consentgate/consentgate/config"
	"github.com/consentgate/consentgate/consentmode"
	"github.com/consentgate/consentgate/proxy/spool"
)

// Delivery sends queued hits to their upstreams in the background. There
// is one lane per upstream (scheme and host): its memory queue, its
// workers, its retry circuit and its spool directory, so that a dead
// upstream never holds up another.
//
// With a spool, every accepted hit is appended to the lane's spool before
// the browser is answered and acknowledged there once delivered (or
// dropped for a counted cause); the memory queue only saves reading it
// back. When the memory queue is full the hit stays on disk alone and the
// lane's reader feeds it to the workers later, oldest first. Without a
// spool the memory queue is all there is, and a full queue refuses hits.
type Delivery struct {
	stopOnce sync.Once
	cfg      config.Delivery
	timeout  time.Duration // one upstream attempt
	log      *zap.Logger
	m        *deliveryMetrics
	pm       *Metrics
	now      func() time.Time // the handler's clock: accept times come from it
	clients  *clients
	base     *config.Config // upstream client settings for new lanes
	lock     *os.File       // the spool directory's lock

	mu    sync.Mutex
	lanes map[string]*lane

	ctx    context.Context // cancelled when delivery stops
	cancel context.CancelFunc
	wg     sync.WaitGroup
}

// Errors of accept, answered 503 with Retry-After.
var (
	errQueueFull = &Error{Status: fasthttp.StatusServiceUnavailable, Reason: rejectQueueFull, RetryAfter: time.Second}
	errSpool     = &Error{Status: fasthttp.StatusServiceUnavailable, Reason: rejectSpool, RetryAfter: time.Second}
)

// dropCause labels consentgate_delivery_dropped_total: why a queued hit
// was given up.
type dropCause uint8

const (
	dropMaxAge       dropCause = iota // older than delivery.max_age
	dropRejected4xx                   // the upstream refused it for good
	dropSpoolCorrupt                  // unreadable in the spool
	dropShutdown                      // still queued when the drain ended
	dropMalformed                     // a spooled record that is not a hit
	numDropCauses
)

var dropCauseNames = [numDropCauses]string{"max_age", "rejected_4xx", "spool_corrupt", "shutdown", "malformed"}

func (c dropCause) String() string { return dropCauseNames[c] }

// retryCause labels consentgate_delivery_retried_total: why an attempt
// will be repeated.
type retryCause uint8

const (
	retryRefused retryCause = iota
	retryTimeout
	retry5xx
	retry429
	retryOther
	numRetryCauses
)

var retryCauseNames = [numRetryCauses]string{"refused", "timeout", "5xx", "429", "other"}

func (c retryCause) String() string { return retryCauseNames[c] }

type deliveryMetrics struct {
	set       *metrics.Set
	accepted  []*metrics.Counter // [family]
	delivered []*metrics.Counter // [family]
	retried   counterVec[retryCause]
	dropped   counterVec[dropCause]
}

func newDeliveryMetrics(s *metrics.Set) *deliveryMetrics {
	dm := &deliveryMetrics{set: s, accepted: make([]*metrics.Counter, len(consentmode.Families())+1),
		delivered: make([]*metrics.Counter, len(consentmode.Families())+1),
		retried:   newCounterVec(s, `consentgate_delivery_retried_total{cause=`, numRetryCauses),
		dropped:   newCounterVec(s, `consentgate_delivery_dropped_total{cause=`, numDropCauses)}
	for _, f := range consentmode.Families() {
		dm.accepted[f] = s.NewCounter(fmt.Sprintf(`consentgate_delivery_accepted_total{family=%q}`, f))
		dm.delivered[f] = s.NewCounter(fmt.Sprintf(`consentgate_delivery_delivered_total{family=%q}`, f))
	}
	return dm
}

func (dm *deliveryMetrics) family(cs []*metrics.Counter, route int) *metrics.Counter {
	if route >= 0 && route < len(consentmode.Routes) {
		if c := cs[consentmode.Routes[route].Family]; c != nil {
			return c
		}
	}
	return cs[consentmode.FamilyGA4]
}

// StartDelivery opens the spool (when configured), replays what it holds
// and starts the workers. Until it is called, every hit is proxied
// synchronously (explain and tests need no spool). The delivery settings
// are read once, here: changing them needs a restart.
func (h *Handler) StartDelivery() error {
	cfg := h.Config()
	d := &Delivery{cfg: cfg.Delivery, timeout: cfg.Timeouts.Upstream, log: h.log, m: h.metrics.delivery, pm: h.metrics, now: h.now,
		clients: h.clients, base: cfg, lanes: map[string]*lane{}}
	d.ctx, d.cancel = context.WithCancel(context.Background())
	if dir := cfg.Delivery.SpoolDir; dir != "" {
		lock, err := spool.Lock(dir)
		if err != nil {
			return fmt.Errorf("delivery.spool.dir: %w", err)
		}
		d.lock = lock
		if err := d.openExisting(); err != nil {
			_ = lock.Close()
			return err
		}
	}
	h.delivery = d
	h.SetConfig(cfg) // attach lanes to the queued routes
	return nil
}

// openExisting starts a lane for every upstream with a spool left by an
// earlier run, so that its hits are delivered even if the configuration
// no longer sends there.
func (d *Delivery) openExisting() error {
	dirs, err := os.ReadDir(d.cfg.SpoolDir)
	if err != nil {
		return fmt.Errorf("delivery.spool.dir: %w", err)
	}
	for _, e := range dirs {
		if !e.IsDir() {
			continue
		}
		b, err := os.ReadFile(filepath.Join(d.cfg.SpoolDir, e.Name(), "UPSTREAM"))
		if err != nil {
			continue // not a lane of ours
		}
		scheme, host, ok := strings.Cut(strings.TrimSpace(string(b)), "://")
		if !ok || (scheme != "http" && scheme != "https") || host == "" {
			d.log.Warn("spool: ignoring a lane directory with a bad UPSTREAM file", zap.String("dir", e.Name()))
			continue
		}
		if _, err := d.lane(d.clients.get(scheme, host, d.base)); err != nil {
			return err
		}
	}
	return nil
}

// lane returns the lane of upstream up, starting it on first use.
func (d *Delivery) lane(up upstream) (*lane, error) {
	key := up.scheme + "://" + up.host
	d.mu.Lock()
	defer d.mu.Unlock()
	if l := d.lanes[key]; l != nil {
		return l, nil
	}
	l := &lane{d: d, key: key, up: up, do: up.client, ch: make(chan *queued, d.cfg.QueueSize), wake: make(chan struct{}, 1), busy: make([]atomic.Int64, d.cfg.Workers)}
	if n := d.cfg.PipelineConns; n > 0 {
		hc := up.client
		l.do = &fasthttp.PipelineClient{
			Addr: hc.Addr, IsTLS: hc.IsTLS, TLSConfig: hc.TLSConfig, Dial: hc.Dial, MaxConns: n,
			MaxPendingRequests: max(d.cfg.Workers/n, 1) * 2, MaxIdleConnDuration: hc.MaxIdleConnDuration,
			ReadTimeout: d.timeout, WriteTimeout: d.timeout, MaxResponseBodySize: hc.MaxResponseBodySize,
			ReadBufferSize: 16 << 10, DisablePathNormalizing: true, NoDefaultUserAgentHeader: true, Logger: zapPrintf{d.log},
		}
	}
	if d.cfg.SpoolDir != "" {
		dir := filepath.Join(d.cfg.SpoolDir, laneDirName(key))
		if err := os.MkdirAll(dir, 0o700); err != nil {
			return nil, fmt.Errorf("delivery.spool.dir: %w", err)
		}
		if err := os.WriteFile(filepath.Join(dir, "UPSTREAM"), []byte(key+"\n"), 0o600); err != nil {
			return nil, fmt.Errorf("delivery.spool.dir: %w", err)
		}
		sp, err := spool.Open(dir, spool.Options{MaxBytes: d.cfg.SpoolMaxBytes, SegmentBytes: d.cfg.SpoolSegmentBytes, SyncInterval: d.cfg.SpoolSync})
		if err != nil {
			return nil, fmt.Errorf("delivery.spool.dir: %w", err)
		}
		l.sp = sp
		st := sp.Stats()
		if st.Corrupt > 0 {
			d.m.dropped[dropSpoolCorrupt].Add(st.Corrupt)
			d.log.Warn("spool: damaged segment tails skipped", zap.String("upstream", key), zap.Int("segments", st.Corrupt), zap.Int64("bytes", st.CorruptBytes))
		}
		if st.Records > 0 {
			// Replay what an earlier run left, oldest first.
			l.diskMode = true
			l.wake <- struct{}{}
			d.log.Info("spool: replaying", zap.String("upstream", key), zap.Int64("records", st.Records), zap.Int64("bytes", st.Bytes))
		}
		d.wg.Add(1)
		go l.replay()
	}
	l.registerMetrics()
	d.lanes[key] = l
	for i := range d.cfg.Workers {
		d.wg.Add(1)
		go l.work(i)
	}
	return l, nil
}

// laneDirName is the spool subdirectory of an upstream key.
func laneDirName(key string) string {
	return strings.Map(func(r rune) rune {
		if 'a' <= r && r <= 'z' || 'A' <= r && r <= 'Z' || '0' <= r && r <= '9' || r == '.' || r == '-' {
			return r
		}
		return '_'
	}, key)
}

// Shutdown stops delivery: it waits up to drain for the memory queues to
// empty (new hits are no longer accepted by then), stops the workers (a
// request in flight gets its own timeout) and closes the spools. What is
// not delivered stays in the spool for the next start; without a spool it
// is dropped and counted (cause shutdown).
func (d *Delivery) Shutdown(drain time.Duration) {
	d.stopOnce.Do(func() { d.shutdown(drain) })
}

func (d *Delivery) shutdown(drain time.Duration) {
	deadline := time.Now().Add(drain)
	for time.Now().Before(deadline) && !d.idle() {
		time.Sleep(10 * time.Millisecond)
	}
	d.cancel()
	d.wg.Wait()
	d.mu.Lock()
	defer d.mu.Unlock()
	for _, l := range d.lanes {
		if l.sp == nil {
			// Nothing else holds these hits.
			for n := len(l.ch); n > 0; n-- {
				q := <-l.ch
				d.m.dropped[dropShutdown].Inc()
				putQueued(q)
			}
			continue
		}
		for n := len(l.ch); n > 0; n-- {
			putQueued(<-l.ch) // still in the spool
		}
		if err := l.sp.Close(); err != nil {
			d.log.Error("spool: close", zap.String("upstream", l.key), zap.Error(err))
		}
	}
	if d.lock != nil {
		_ = d.lock.Close()
	}
}

// idle reports whether every lane has nothing left to deliver.
func (d *Delivery) idle() bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	for _, l := range d.lanes {
		if len(l.ch) > 0 || l.inflight.Load() > 0 {
			return false
		}
		l.mu.Lock()
		disk := l.diskMode
		l.mu.Unlock()
		if disk {
			return false
		}
	}
	return true
}

// queued is one hit waiting for delivery; pooled.
type queued struct {
	payload []byte
	wire    []byte // the request bytes within payload (or a conversion of it)
	sent    int64  // last written to a connection, Unix nanoseconds
	seq     uint64 // in the spool; 0 when not spooled
	at      int64  // accepted, Unix nanoseconds
}

var queuedPool = sync.Pool{New: func() any { return new(queued) }}

func putQueued(q *queued) {
	if cap(q.payload) > 64<<10 {
		q.payload = nil // do not pin large buffers in the pool
	}
	q.payload = q.payload[:0]
	queuedPool.Put(q)
}

// doer sends one request: the upstream's shared HostClient (one request
// per connection at a time) or a PipelineClient (many per connection,
// their writes coalesced).
type doer interface {
	DoTimeout(req *fasthttp.Request, resp *fasthttp.Response, timeout time.Duration) error
}

// lane delivers the hits of one upstream.
type lane struct {
	d   *Delivery
	key string
	up  upstream
	do  doer
	ch  chan *queued
	sp  *spool.Spool // nil without a spool

	// mu orders appends against the switch between memory and disk mode.
	// In disk mode new hits go to the spool only and replay feeds them to
	// the workers in order; it ends when replay has caught up.
	mu       sync.Mutex
	diskMode bool
	diskFrom uint64 // first spooled hit not in the memory queue

	wake     chan struct{} // starts replay
	memBytes atomic.Int64  // payload bytes in ch
	inflight atomic.Int64
	busy     []atomic.Int64 // per worker: accept time of its hit, 0 when idle
	circuit  circuit
}

// accept queues the upstream request out. The browser may be answered
// once it returns nil.
func (l *lane) accept(route int, out *fasthttp.Request, path, query []byte, at time.Time) error {
	q := queuedPool.Get().(*queued)
	q.payload = appendPayload(q.payload[:0], route, out, path, query)
	q.at = at.UnixNano()
	q.seq = 0
	n := int64(len(q.payload))
	if l.sp == nil {
		if l.memBytes.Load()+n > l.d.cfg.QueueBytes {
			putQueued(q)
			return errQueueFull
		}
		select {
		case l.ch <- q:
			l.memBytes.Add(n)
			l.d.m.family(l.d.m.accepted, route).Inc()
			return nil
		default:
			putQueued(q)
			return errQueueFull
		}
	}
	l.mu.Lock()
	seq, err := l.sp.Append(q.at, q.payload)
	if err != nil {
		l.mu.Unlock()
		putQueued(q)
		if errors.Is(err, spool.ErrFull) {
			return errQueueFull
		}
		if ce := l.d.log.Check(zap.ErrorLevel, "spool append"); ce != nil {
			ce.Write(zap.String("upstream", l.key), zap.Error(err))
		}
		return errSpool
	}
	q.seq = seq
	l.d.m.family(l.d.m.accepted, route).Inc()
	if !l.diskMode && l.memBytes.Load()+n <= l.d.cfg.QueueBytes {
		select {
		case l.ch <- q:
			l.memBytes.Add(n)
			l.mu.Unlock()
			return nil
		default:
		}
	}
	if !l.diskMode {
		l.diskMode, l.diskFrom = true, seq
		select {
		case l.wake <- struct{}{}:
		default:
		}
	}
	l.mu.Unlock()
	putQueued(q) // on disk; replay brings it back
	return nil
}

// replay feeds spooled hits that are not in the memory queue to the
// workers, oldest first, whenever the lane is in disk mode.
func (l *lane) replay() {
	defer l.d.wg.Done()
	r := l.sp.NewReader()
	defer r.Close()
	ctx := l.d.ctx
	for {
		select {
		case <-ctx.Done():
			return
		case <-l.wake:
		}
		l.mu.Lock()
		r.Seek(l.diskFrom)
		l.mu.Unlock()
		for ctx.Err() == nil {
			rec, err := r.Next()
			if errors.Is(err, io.EOF) {
				// Caught up, unless hits were appended meanwhile.
				l.mu.Lock()
				done := l.sp.Next() <= r.Position()
				if done {
					l.diskMode = false
				}
				l.mu.Unlock()
				if done {
					break
				}
				time.Sleep(time.Millisecond) // an append is under way
				continue
			}
			if err != nil {
				// A damaged record in a live segment: skip the rest of it.
				l.d.m.dropped[dropSpoolCorrupt].Inc()
				l.d.log.Error("spool: read", zap.String("upstream", l.key), zap.Error(err))
				r.Close()
				r.Seek(l.sp.Next())
				continue
			}
			q := queuedPool.Get().(*queued)
			q.payload = append(q.payload[:0], rec.Payload...)
			q.seq, q.at = rec.Seq, rec.At
			if !l.push(ctx, q) {
				putQueued(q) // still in the spool
				return
			}
		}
	}
}

// push waits for room in the memory queue.
func (l *lane) push(ctx context.Context, q *queued) bool {
	n := int64(len(q.payload))
	for l.memBytes.Load()+n > l.d.cfg.QueueBytes && l.memBytes.Load() > 0 {
		select {
		case <-ctx.Done():
			return false
		case <-time.After(5 * time.Millisecond):
		}
	}
	select {
	case l.ch <- q:
		l.memBytes.Add(n)
		return true
	case <-ctx.Done():
		return false
	}
}

// work is one upstream worker.
func (l *lane) work(i int) {
	defer l.d.wg.Done()
	ctx := l.d.ctx
	var req fasthttp.Request
	var resp fasthttp.Response
	for {
		select {
		case <-ctx.Done():
			return
		case q := <-l.ch:
			l.memBytes.Add(-int64(len(q.payload)))
			l.inflight.Add(1)
			l.busy[i].Store(q.at)
			done := l.deliver(ctx, q, &req, &resp)
			l.busy[i].Store(0)
			if done && q.seq != 0 {
				l.sp.Ack(q.seq)
			} else if !done && l.sp == nil {
				l.d.m.dropped[dropShutdown].Inc()
			}
			l.inflight.Add(-1)
			putQueued(q)
		}
	}
}

// deliver sends q until it is delivered or dropped for good (true), or
// delivery stops first (false: it stays in the spool).
func (l *lane) deliver(ctx context.Context, q *queued, req *fasthttp.Request, resp *fasthttp.Response) bool {
	route, err := decodePayload(req, q.payload, l.up.scheme, l.up.host)
	if err != nil {
		l.d.m.dropped[dropMalformed].Inc()
		return true
	}
	d := l.d
	for attempt := 0; ; attempt++ {
		if d.now().Sub(time.Unix(0, q.at)) > d.cfg.MaxAge {
			d.m.dropped[dropMaxAge].Inc()
			return true
		}
		if wait := l.circuit.wait(time.Now()); wait > 0 {
			if !sleep(ctx, wait) {
				return false
			}
			attempt--
			continue
		}
		start := time.Now()
		resp.Reset()
		err := l.do.DoTimeout(req, resp, d.timeout)
		status := resp.StatusCode()
		d.pm.upstream(route, time.Since(start), status, err)
		ok, rejected, cause, retryAfter := classify(err, status, resp)
		switch {
		case ok:
			l.circuit.success()
			d.m.family(d.m.delivered, route).Inc()
			return true
		case rejected:
			l.circuit.success() // the upstream is alive; the hit is bad
			d.m.dropped[dropRejected4xx].Inc()
			if ce := d.log.Check(zap.WarnLevel, "upstream refused a queued hit"); ce != nil {
				ce.Write(zap.String("upstream", l.key), zap.Int("status", status))
			}
			return true
		}
		d.m.retried[cause].Inc()
		l.circuit.failure(time.Now(), retryAfter)
		if !sleep(ctx, max(backoff(attempt), retryAfter)) {
			return false
		}
	}
}

// classify says whether an attempt succeeded (ok), failed for good
// (rejected: a 4xx) or should be retried (for cause), and how long the
// upstream asked to wait.
func classify(err error, status int, resp *fasthttp.Response) (ok, rejected bool, cause retryCause, retryAfter time.Duration) {
	switch {
	case err != nil:
		switch classifyUpstream(err) {
		case upErrRefused:
			return false, false, retryRefused, 0
		case upErrTimeout:
			return false, false, retryTimeout, 0
		}
		return false, false, retryOther, 0
	case status == fasthttp.StatusTooManyRequests:
		return false, false, retry429, parseRetryAfter(resp.Header.Peek("Retry-After"))
	case status >= 500:
		return false, false, retry5xx, parseRetryAfter(resp.Header.Peek("Retry-After"))
	case status >= 400:
		return false, true, 0, 0
	}
	return true, false, 0, 0
}

// maxRetryAfter caps what an upstream may ask us to wait.
const maxRetryAfter = 5 * time.Minute

// parseRetryAfter reads a Retry-After value in seconds (the HTTP-date form
// counts as one second: a clock we do not share is no better).
func parseRetryAfter(v []byte) time.Duration {
	if len(v) == 0 {
		return 0
	}
	n, err := strconv.Atoi(string(v))
	if err != nil || n < 0 {
		return time.Second
	}
	return min(time.Duration(n)*time.Second, maxRetryAfter)
}

// Retry timing: exponential backoff with full jitter per hit, and a
// circuit per upstream that opens after circuitThreshold consecutive
// failures, lets one probe through when its wait is over, and doubles the
// wait (up to maxBackoff) each time the probe fails.
const (
	baseBackoff      = 200 * time.Millisecond
	maxBackoff       = 10 * time.Second
	circuitThreshold = 5
)

func backoff(attempt int) time.Duration {
	d := baseBackoff << min(attempt, 10)
	if d > maxBackoff || d <= 0 {
		d = maxBackoff
	}
	return d/2 + rand.N(d/2+1)
}

func sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}

// circuit stops a lane's workers hammering a failing upstream.
type circuit struct {
	mu        sync.Mutex
	failures  int
	opens     int
	openUntil time.Time
	probing   bool
	open      atomic.Bool // for the metric
}

// wait returns how long a worker should wait before its next attempt (0:
// go ahead; when open and due, exactly one worker probes).
func (c *circuit) wait(now time.Time) time.Duration {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.failures < circuitThreshold {
		return 0
	}
	if now.Before(c.openUntil) {
		return c.openUntil.Sub(now)
	}
	if c.probing {
		return 50 * time.Millisecond
	}
	c.probing = true
	return 0
}

func (c *circuit) success() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.failures, c.opens, c.probing = 0, 0, false
	c.open.Store(false)
}

func (c *circuit) failure(now time.Time, retryAfter time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.failures++
	c.probing = false
	if c.failures < circuitThreshold {
		return
	}
	if !now.Before(c.openUntil) {
		c.opens++
		c.openUntil = now.Add(max(backoff(c.opens+2), retryAfter))
	}
	c.open.Store(true)
}

// laneGauges are the per-upstream gauges, labelled by the configured
// upstream (never by request data).
var laneGauges = []struct {
	name  string
	spool bool // only with a spool
	value func(l *lane) float64
}{
	{"consentgate_delivery_queue_depth", false, func(l *lane) float64 { return float64(len(l.ch)) }},
	{"consentgate_delivery_inflight", false, func(l *lane) float64 { return float64(l.inflight.Load()) }},
	{"consentgate_delivery_oldest_age_seconds", false, (*lane).oldestAge},
	{"consentgate_delivery_circuit_open", false, func(l *lane) float64 {
		if l.circuit.open.Load() {
			return 1
		}
		return 0
	}},
	{"consentgate_delivery_spool_bytes", true, func(l *lane) float64 { return float64(l.sp.Stats().Bytes) }},
	{"consentgate_delivery_spool_records", true, func(l *lane) float64 { return float64(l.sp.Stats().Records) }},
}

// registerMetrics adds the lane's gauges.
func (l *lane) registerMetrics() {
	for _, g := range laneGauges {
		if g.spool && l.sp == nil {
			continue
		}
		value := g.value
		l.d.m.set.GetOrCreateGauge(fmt.Sprintf("%s{upstream=%q}", g.name, l.key), func() float64 { return value(l) })
	}
}

// oldestAge is the age in seconds of the oldest hit not yet delivered:
// workers take hits oldest first, so it is held by a worker or, when all
// are idle, waits in the spool (disk mode) or nowhere.
func (l *lane) oldestAge() float64 {
	oldest := int64(0)
	for i := range l.busy {
		if at := l.busy[i].Load(); at != 0 && (oldest == 0 || at < oldest) {
			oldest = at
		}
	}
	if oldest == 0 {
		return 0
	}
	return l.d.now().Sub(time.Unix(0, oldest)).Seconds()
}
