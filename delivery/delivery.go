package delivery

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
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
	"go.uber.org/zap/zapcore"

	"github.com/consentgate/consentgate/delivery/spool"
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
	cfg      Options
	timeout  time.Duration // one upstream attempt
	log      *zap.Logger
	slog     *zap.Logger // sampled: for what can happen once per hit
	m        *Metrics
	observe  func(tag int, latency time.Duration, status int, err error)
	now      func() time.Time // the caller's clock: accept times come from it
	lock     *os.File         // the spool directory's lock

	mu    sync.Mutex
	lanes map[string]*Lane

	// closeMu orders accepts and lane starts against shutdown: they hold
	// it shared and check closed; Shutdown sets closed holding it alone.
	// From then on no hit is accepted and no lane (nor goroutine) starts.
	closeMu sync.RWMutex
	closed  bool
	closing atomic.Bool   // closed, readable without the lock
	settled chan struct{} // a hit finished or a replay caught up, while closing

	ctx    context.Context // cancelled when delivery stops
	cancel context.CancelFunc
	wg     sync.WaitGroup
}

// Errors of Accept: the hit was not taken, the caller may ask the client
// to try again later.
var (
	ErrQueueFull = errors.New("delivery: queue full")
	ErrSpool     = errors.New("delivery: spool failed")
	ErrClosed    = errors.New("delivery: shutting down")
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

// spoolOp labels consentgate_delivery_spool_errors_total: the spool
// operation that failed.
type spoolOp uint8

const (
	spoolAppend spoolOp = iota // writing a hit (answered 503 spool_error)
	spoolRead                  // reading a hit back (other than damage)
	spoolSync                  // fsync of a segment or acknowledgement file
	spoolAck                   // writing acknowledgements (kept and retried)
	spoolDir                   // fsync of the directory, or its UPSTREAM marker
	spoolSeal                  // closing a full segment
	spoolRemove                // deleting a delivered segment
	spoolClose                 // closing the spool at shutdown
	numSpoolOps
)

var spoolOpNames = [numSpoolOps]string{"append", "read", "sync", "ack", "dir", "seal", "remove", "close"}

func (o spoolOp) String() string { return spoolOpNames[o] }

// spoolOpOf maps the op of spool.Options.OnError to its label.
func spoolOpOf(op string) spoolOp {
	for i, n := range spoolOpNames {
		if n == op {
			return spoolOp(i)
		}
	}
	return spoolSync
}

// Metrics are delivery's counters, created up front in the caller's set:
// accepted and delivered hits by label (Options.LabelOf), retries and
// drops by cause, spool errors by operation. The lanes add their gauges
// to the same set.
type Metrics struct {
	set         *metrics.Set
	accepted    []*metrics.Counter // [label]
	delivered   []*metrics.Counter // [label]
	retried     counterVec[retryCause]
	dropped     counterVec[dropCause]
	spoolErrors counterVec[spoolOp]
}

// NewMetrics creates delivery's counters in s; labels are the values of
// the family label of the accepted and delivered counters.
func NewMetrics(s *metrics.Set, labels []string) *Metrics {
	dm := &Metrics{set: s, accepted: make([]*metrics.Counter, len(labels)),
		delivered:   make([]*metrics.Counter, len(labels)),
		retried:     newCounterVec(s, `consentgate_delivery_retried_total{cause=`, numRetryCauses),
		dropped:     newCounterVec(s, `consentgate_delivery_dropped_total{cause=`, numDropCauses),
		spoolErrors: newCounterVec(s, `consentgate_delivery_spool_errors_total{op=`, numSpoolOps)}
	for i, f := range labels {
		dm.accepted[i] = s.NewCounter(fmt.Sprintf(`consentgate_delivery_accepted_total{family=%q}`, f))
		dm.delivered[i] = s.NewCounter(fmt.Sprintf(`consentgate_delivery_delivered_total{family=%q}`, f))
	}
	return dm
}

// family returns the counter of cs for the label of tag (the first
// label when tag has none).
func (d *Delivery) family(cs []*metrics.Counter, tag int) *metrics.Counter {
	if i := d.cfg.LabelOf(tag); i >= 0 && i < len(cs) {
		return cs[i]
	}
	return cs[0]
}

// Start opens the spool (when configured), replays what it holds and
// starts the lanes found there. Options are read once, here: changing
// them needs a restart.
func Start(opts Options) (*Delivery, error) {
	opts.defaults()
	d := &Delivery{cfg: opts, timeout: opts.Timeout, log: opts.Log, slog: sampled(opts.Log), m: opts.Metrics, observe: opts.Observe, now: opts.Now,
		lanes: map[string]*Lane{}, settled: make(chan struct{}, 1)}
	d.ctx, d.cancel = context.WithCancel(context.Background())
	if dir := opts.SpoolDir; dir != "" {
		lock, err := spool.Lock(dir)
		if err != nil {
			return nil, fmt.Errorf("delivery.spool.dir: %w", err)
		}
		d.lock = lock
		if err := d.openExisting(); err != nil {
			d.cancel()
			d.wg.Wait()
			_ = lock.Close()
			return nil, err
		}
	}
	return d, nil
}

// Log sampling of delivery's per-hit lines, as zap's production config
// samples: per message and level, the first logFirst entries of each
// second, then every logThereafter-th. A dead upstream cannot flood the log.
const (
	logFirst      = 10
	logThereafter = 100
)

// sampled returns log behind a sampling core.
func sampled(log *zap.Logger) *zap.Logger {
	return log.WithOptions(zap.WrapCore(func(c zapcore.Core) zapcore.Core {
		return zapcore.NewSamplerWithOptions(c, time.Second, logFirst, logThereafter)
	}))
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
		if _, err := d.Lane(Upstream{Scheme: scheme, Host: host, Client: d.cfg.Client(scheme, host)}); err != nil {
			return err
		}
	}
	return nil
}

// Lane returns the lane of upstream up, starting it on first use.
func (d *Delivery) Lane(up Upstream) (*Lane, error) {
	key := up.Scheme + "://" + up.Host
	d.mu.Lock()
	defer d.mu.Unlock()
	if l := d.lanes[key]; l != nil {
		return l, nil
	}
	// Held until the lane's goroutines are started: Shutdown waits for it.
	d.closeMu.RLock()
	defer d.closeMu.RUnlock()
	if d.closed {
		return nil, ErrClosed
	}
	if d.cfg.Tune != nil {
		d.cfg.Tune(&up)
	}
	if up.Batch < 2 {
		up.Merge = nil // nothing to merge: an ordinary lane
	}
	l := &Lane{d: d, key: key, up: up, ch: make(chan *queued, d.cfg.QueueSize), wake: make(chan struct{}, 1), more: make(chan struct{}, 1), room: make(chan struct{}, 1), retryKick: make(chan struct{}, 1)}
	// pipeline_conns connections, each carrying its share of the workers'
	// window; 0: a connection per worker, one hit at a time.
	conns, window := d.cfg.Workers, 1
	if n := min(d.cfg.PipelineConns, d.cfg.Workers); n > 0 {
		conns, window = n, max((d.cfg.Workers+n-1)/n, 1)
	}
	if up.Merge != nil {
		// Coalescing: each sender has one merged request of up to Batch
		// hits in flight (sender.room).
		conns, window = max(min(d.cfg.PipelineConns, d.cfg.Workers), 1), up.Batch
	}
	for range conns {
		l.senders = append(l.senders, &sender{l: l, window: window})
	}
	if d.cfg.SpoolDir != "" {
		dir := filepath.Join(d.cfg.SpoolDir, laneDirName(key))
		if abs, err := filepath.Abs(dir); err == nil {
			dir = abs
		}
		l.dir = dir
		if err := os.MkdirAll(dir, 0o700); err != nil {
			return nil, fmt.Errorf("delivery.spool.dir: %w", err)
		}
		if err := writeMarker(dir, key); err != nil {
			return nil, fmt.Errorf("delivery.spool.dir: %w", err)
		}
		sp, err := spool.Open(dir, spool.Options{MaxBytes: d.cfg.SpoolMaxBytes, SegmentBytes: d.cfg.SpoolSegmentBytes, SyncInterval: d.cfg.SpoolSync,
			OnError: func(op string, err error) { l.spoolError(spoolOpOf(op), err) }})
		if err != nil {
			return nil, fmt.Errorf("delivery.spool.dir: %w", err)
		}
		l.sp = sp
		st := sp.Stats()
		if st.Corrupt > 0 {
			d.m.dropped[dropSpoolCorrupt].Add(int(st.Lost))
			d.log.Warn("spool: damaged segment tails cut off; their hits are lost", zap.String("upstream", key), zap.Int("segments", st.Corrupt),
				zap.Int64("bytes", st.CorruptBytes), zap.Int64("hits_lost", st.Lost))
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
	for _, s := range l.senders {
		d.wg.Add(1)
		go s.run()
	}
	return l, nil
}

// writeMarker writes the UPSTREAM file of a lane directory, which names
// the upstream its spool is for: atomically (a temporary file, fsynced,
// renamed over it, the directory fsynced), so that a crash never leaves a
// lane directory whose upstream is unknown.
func writeMarker(dir, key string) error {
	path := filepath.Join(dir, "UPSTREAM")
	if b, err := os.ReadFile(path); err == nil && string(b) == key+"\n" {
		return nil
	}
	f, err := os.CreateTemp(dir, "UPSTREAM.tmp*")
	if err != nil {
		return err
	}
	tmp := f.Name()
	_, err = f.WriteString(key + "\n")
	if err == nil {
		err = f.Chmod(0o600)
	}
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, path)
	}
	if err != nil {
		_ = os.Remove(tmp)
		return err
	}
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	err = d.Sync()
	return errors.Join(err, d.Close())
}

// spoolError counts and logs (sampled) a spool error.
func (l *Lane) spoolError(op spoolOp, err error) {
	l.d.m.spoolErrors.inc(op)
	if ce := l.d.slog.Check(zap.ErrorLevel, "spool: "+op.String()); ce != nil {
		ce.Write(zap.String("upstream", l.key), zap.String("dir", l.dir), zap.Error(err))
	}
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

// Shutdown stops delivery. From its start no hit is accepted (answered
// 503 shutting_down) and no lane starts. It waits up to drain for the
// queues to empty, stops the workers (a request in flight gets its own
// timeout) and closes the spools. What is not delivered stays in the spool
// for the next start (logged per upstream); without a spool it is dropped
// and counted (cause shutdown).
func (d *Delivery) Shutdown(drain time.Duration) {
	d.stopOnce.Do(func() { d.shutdown(drain) })
}

func (d *Delivery) shutdown(drain time.Duration) {
	d.closeMu.Lock() // waits for accepts and lane starts under way
	d.closed = true
	d.closing.Store(true)
	d.closeMu.Unlock()
	deadline := time.NewTimer(drain)
	defer deadline.Stop()
wait:
	for !d.Idle() {
		select {
		case <-d.settled:
		case <-deadline.C:
			break wait
		}
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
				l.inflight.Add(-1)
				putQueued(q)
			}
			l.releaseRetries()
			continue
		}
		for n := len(l.ch); n > 0; n-- {
			l.inflight.Add(-1)
			putQueued(<-l.ch) // still in the spool
		}
		l.releaseRetries()
		st := l.sp.Stats()
		if err := l.sp.Close(); err != nil {
			l.spoolError(spoolClose, err)
		}
		if st.Records > 0 {
			d.log.Info("spool: hits stay spooled for the next start", zap.String("upstream", l.key), zap.String("dir", l.dir),
				zap.Int64("hits", st.Records), zap.Int64("bytes", st.Bytes))
		}
	}
	if d.lock != nil {
		_ = d.lock.Close()
	}
}

// Closed reports whether Shutdown has begun: from then on no hit is
// accepted and no lane starts.
func (d *Delivery) Closed() bool { return d.closing.Load() }

// settle tells a draining Shutdown that a lane may have become idle.
func (d *Delivery) settle() {
	if d.closing.Load() {
		select {
		case d.settled <- struct{}{}:
		default:
		}
	}
}

// Idle reports whether every lane has nothing left to deliver.
func (d *Delivery) Idle() bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	for _, l := range d.lanes {
		if l.inflight.Load() > 0 {
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
	payload []byte // version 2 (wire.go), as in the spool
	wire    []byte // the request bytes: within payload, or converted from version 1
	seq     uint64 // in the spool; 0 when not spooled
	at      int64  // accepted, Unix nanoseconds
	tag     int    // the route
	sent    int64  // last written to a connection, Unix nanoseconds
	due     int64  // when waiting for a retry: not before, Unix nanoseconds
	attempt int32  // attempts that failed
	// parts, on a merged request of a coalescing lane (merge.go), are the
	// hits it carries; the merged request itself is not spooled, counted
	// or settled.
	parts []*queued
	// alone marks a hit of a merged request the upstream refused: it is
	// sent on its own from then on, so that only a bad hit is dropped.
	alone bool
}

// freeQueued keeps finished hits and their payload buffers for reuse. A
// bounded channel rather than a sync.Pool: the garbage collector empties
// a pool at every cycle, and under load the hits reallocated after each
// cycle were most of delivery's allocations (BenchmarkAcceptBatched).
// At most freeQueued's capacity of buffers (about 1 KiB each) is kept.
var freeQueued = make(chan *queued, 4096)

func getQueued() *queued {
	select {
	case q := <-freeQueued:
		return q
	default:
		return new(queued)
	}
}

func putQueued(q *queued) {
	if cap(q.payload) > 64<<10 {
		q.payload = nil // do not keep large buffers
	}
	q.payload, q.wire = q.payload[:0], nil
	q.attempt, q.due, q.alone = 0, 0, false
	clear(q.parts)
	q.parts = q.parts[:0]
	select {
	case freeQueued <- q:
	default:
	}
}

// Lane delivers the hits of one upstream.
type Lane struct {
	d   *Delivery
	key string
	up  Upstream
	ch  chan *queued // the memory queue, drained by the senders
	sp  *spool.Spool // nil without a spool
	dir string       // the spool's directory, absolute

	// mu orders appends against the switch between memory and disk mode.
	// In disk mode new hits go to the spool only and replay feeds them to
	// the workers in order; it ends when replay has caught up.
	mu       sync.Mutex
	diskMode bool
	diskFrom uint64 // first spooled hit not in the memory queue

	wake     chan struct{} // starts replay
	more     chan struct{} // a hit was appended in disk mode
	room     chan struct{} // a sender took hits from ch (replay waits for it)
	reserved atomic.Int64  // slots of ch that accepts are about to fill
	memBytes atomic.Int64  // payload bytes in ch
	// inflight counts the hits handed to the memory queue and not yet
	// settled: queued, held by a sender, written or waiting for a retry.
	// It is counted before the channel send, since a sender waiting on ch
	// takes a hit without its ever showing in len(ch).
	inflight atomic.Int64
	held     atomic.Int64 // accept time of the hit replay waits to queue, 0 when none
	senders  []*sender
	circuit  circuit

	// Upstream system calls: writes, the hits they carried, reads.
	writes, written, reads *metrics.Counter

	// Hits waiting for their next attempt (send.go).
	rmu       sync.Mutex
	retrying  []*queued
	rdue      int64       // when rtimer fires, Unix nanoseconds; 0: not set
	rtimer    *time.Timer // wakes a sender through retryKick
	retryKick chan struct{}
}

// signal wakes the goroutine waiting on ch, if any; a signal not yet
// taken is not repeated (ch has room for one).
func signal(ch chan struct{}) {
	select {
	case ch <- struct{}{}:
	default:
	}
}

// Accept queues the upstream request out, accepted at at; route is the
// caller's tag, opaque here (it labels the metrics and comes back to
// Options.Observe). The browser may be answered once it returns nil;
// otherwise the error is ErrQueueFull, ErrSpool or, once Shutdown has
// begun, ErrClosed.
func (l *Lane) Accept(route int, out *fasthttp.Request, path, query []byte, at time.Time) error {
	l.d.closeMu.RLock()
	defer l.d.closeMu.RUnlock()
	if l.d.closed {
		return ErrClosed
	}
	q := getQueued()
	q.payload = appendWire(q.payload[:0], route, out, l.up.Host, path, query)
	q.wire = q.payload[payloadHead:]
	q.at = at.UnixNano()
	q.tag = route
	q.seq = 0
	n := int64(len(q.payload))
	if l.sp == nil {
		if l.memBytes.Load()+n > l.d.cfg.QueueBytes {
			putQueued(q)
			return ErrQueueFull
		}
		l.inflight.Add(1) // before the send: a waiting sender takes q at once
		select {
		case l.ch <- q:
			l.memBytes.Add(n)
			l.d.family(l.d.m.accepted, route).Inc()
			return nil
		default:
			l.inflight.Add(-1)
			putQueued(q)
			return ErrQueueFull
		}
	}
	// The memory-or-disk decision is taken in sequence order (under mu,
	// with Enqueue); the write is waited for outside mu, so that the hits
	// accepted together share it (group commit).
	l.mu.Lock()
	t, err := l.sp.Enqueue(q.at, q.payload)
	if err != nil {
		l.mu.Unlock()
		putQueued(q)
		return l.acceptError(err)
	}
	toMemory, wake := false, false
	switch {
	case !l.diskMode && l.memBytes.Load()+n <= l.d.cfg.QueueBytes && len(l.ch)+int(l.reserved.Load()) < cap(l.ch):
		toMemory = true
		l.reserved.Add(1)
		l.memBytes.Add(n)
	case !l.diskMode:
		l.diskMode, l.diskFrom, wake = true, t.Seq(), true
	}
	l.mu.Unlock()
	seq, err := t.Wait()
	if toMemory {
		if err == nil {
			q.seq = seq
			l.inflight.Add(1)
			l.ch <- q // room was reserved
		} else {
			l.memBytes.Add(-n)
		}
		l.reserved.Add(-1)
	}
	if wake {
		signal(l.wake)
	}
	if !toMemory {
		// Replay may read it now, or, if its write failed, see that no
		// record is pending any more.
		signal(l.more)
		putQueued(q) // on disk; replay brings it back
	}
	if err != nil {
		return l.acceptError(err)
	}
	l.d.family(l.d.m.accepted, route).Inc()
	return nil
}

// acceptError maps a spool error of Accept to the caller's answer.
func (l *Lane) acceptError(err error) error {
	if errors.Is(err, spool.ErrFull) {
		return ErrQueueFull
	}
	if errors.Is(err, spool.ErrClosed) {
		return ErrClosed
	}
	l.spoolError(spoolAppend, err)
	return ErrSpool
}

// replay feeds spooled hits that are not in the memory queue to the
// workers, oldest first, whenever the lane is in disk mode.
func (l *Lane) replay() {
	defer l.d.wg.Done()
	r := l.sp.NewReader()
	defer r.Close()
	ctx := l.d.ctx
	var req fasthttp.Request // converts version-1 payloads
	var conv []byte
	for {
		select {
		case <-ctx.Done():
			return
		case <-l.wake:
		}
		l.mu.Lock()
		r.Seek(l.diskFrom)
		disk := l.diskMode
		l.mu.Unlock()
		for disk && ctx.Err() == nil {
			rec, err := r.Next()
			if errors.Is(err, io.EOF) {
				// Caught up, unless hits were appended meanwhile (accept
				// appends and switches modes holding mu: an append seen
				// here is complete).
				l.mu.Lock()
				done := l.sp.Next() <= r.Position()
				if done {
					l.diskMode = false
				}
				l.mu.Unlock()
				if done {
					l.d.settle()
					break
				}
				select { // the next append signals more
				case <-l.more:
				case <-ctx.Done():
				}
				continue
			}
			if errors.Is(err, spool.ErrCorrupt) {
				// A damaged record: the rest of its segment is lost,
				// every later segment is read on.
				lost := r.Skip()
				l.d.m.dropped[dropSpoolCorrupt].Add(lost)
				if ce := l.d.slog.Check(zap.ErrorLevel, "spool: damaged record; the rest of its segment is lost"); ce != nil {
					ce.Write(zap.String("upstream", l.key), zap.String("dir", l.dir), zap.Int("hits_lost", lost), zap.Error(err))
				}
				continue
			}
			if err != nil {
				// A segment that cannot be opened now: try again later.
				l.spoolError(spoolRead, err)
				if !sleep(ctx, time.Second) {
					return
				}
				continue
			}
			q := getQueued()
			q.payload = append(q.payload[:0], rec.Payload...)
			var werr error
			q.tag, q.wire, conv, werr = wireOf(q.payload, l.up.Host, &req, conv)
			if werr != nil {
				l.d.m.dropped[dropMalformed].Inc()
				l.sp.Ack(rec.Seq)
				putQueued(q)
				continue
			}
			if len(q.payload) == 0 || q.payload[0] != payloadWire {
				q.payload = append(q.payload[:0], conv...) // converted from version 1
				q.wire = q.payload[payloadHead:]
			}
			q.seq, q.at = rec.Seq, rec.At
			l.held.Store(q.at)
			ok := l.push(ctx, q)
			l.held.Store(0)
			if !ok {
				putQueued(q) // still in the spool
				return
			}
		}
	}
}

// push waits for room in the memory queue (its slots and bytes, less
// what accept has reserved) and queues q.
func (l *Lane) push(ctx context.Context, q *queued) bool {
	n := int64(len(q.payload))
	for {
		l.mu.Lock()
		if len(l.ch)+int(l.reserved.Load()) < cap(l.ch) && (l.memBytes.Load()+n <= l.d.cfg.QueueBytes || l.memBytes.Load() == 0) {
			l.memBytes.Add(n)
			l.inflight.Add(1)
			l.ch <- q
			l.mu.Unlock()
			return true
		}
		l.mu.Unlock()
		select {
		case <-ctx.Done():
			return false
		case <-l.room:
		}
	}
}

// closeCircuit records a success, logging when it closes the circuit.
func (l *Lane) closeCircuit() {
	if l.circuit.success() {
		if ce := l.d.slog.Check(zap.InfoLevel, "delivery: circuit closed; the upstream answers again"); ce != nil {
			ce.Write(zap.String("upstream", l.key))
		}
	}
}

// errClass names the kind of a failed attempt for the log: dns, tls,
// timeout, refused, no_free_conns or other for an exchange that failed,
// status for an error answer (err nil).
func errClass(err error) string {
	if err == nil {
		return "status"
	}
	var (
		dnsErr   *net.DNSError
		recErr   tls.RecordHeaderError
		alertErr tls.AlertError
		certErr  *tls.CertificateVerificationError
		authErr  x509.UnknownAuthorityError
		hostErr  x509.HostnameError
		invErr   x509.CertificateInvalidError
	)
	switch {
	case errors.As(err, &dnsErr):
		return "dns"
	case errors.As(err, &recErr), errors.As(err, &alertErr), errors.As(err, &certErr), errors.As(err, &authErr),
		errors.As(err, &hostErr), errors.As(err, &invErr), errors.Is(err, fasthttp.ErrTLSHandshakeTimeout):
		return "tls"
	}
	return classifyUpstream(err).String()
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

// success records a delivered (or refused for good) attempt; it reports
// whether that closed an open circuit.
func (c *circuit) success() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.failures, c.opens, c.probing = 0, 0, false
	return c.open.Swap(false)
}

// failure records a failed attempt. It reports whether the circuit opened
// with it (it was closed), and for how long it stays open.
func (c *circuit) failure(now time.Time, retryAfter time.Duration) (time.Duration, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.failures++
	c.probing = false
	if c.failures < circuitThreshold {
		return 0, false
	}
	if !now.Before(c.openUntil) {
		c.opens++
		c.openUntil = now.Add(max(backoff(c.opens+2), retryAfter))
	}
	return c.openUntil.Sub(now), !c.open.Swap(true)
}

// laneGauges are the per-upstream gauges, labelled by the configured
// upstream (never by request data).
var laneGauges = []struct {
	name  string
	spool bool // only with a spool
	value func(l *Lane) float64
}{
	{"consentgate_delivery_queue_depth", false, func(l *Lane) float64 { return float64(len(l.ch)) }},
	{"consentgate_delivery_inflight", false, func(l *Lane) float64 { return float64(max(l.inflight.Load()-int64(len(l.ch)), 0)) }},
	{"consentgate_delivery_oldest_age_seconds", false, (*Lane).oldestAge},
	{"consentgate_delivery_circuit_open", false, func(l *Lane) float64 {
		if l.circuit.open.Load() {
			return 1
		}
		return 0
	}},
	{"consentgate_delivery_spool_bytes", true, func(l *Lane) float64 { return float64(l.sp.Stats().Bytes) }},
	{"consentgate_delivery_spool_records", true, func(l *Lane) float64 { return float64(l.sp.Stats().Records) }},
	{"consentgate_delivery_spool_writes", true, func(l *Lane) float64 { return float64(l.sp.Stats().Writes) }},
}

// registerMetrics adds the lane's gauges.
func (l *Lane) registerMetrics() {
	for _, g := range laneGauges {
		if g.spool && l.sp == nil {
			continue
		}
		value := g.value
		l.d.m.set.GetOrCreateGauge(fmt.Sprintf("%s{upstream=%q}", g.name, l.key), func() float64 { return value(l) })
	}
	l.writes = l.d.m.set.GetOrCreateCounter(fmt.Sprintf("consentgate_delivery_upstream_writes_total{upstream=%q}", l.key))
	l.written = l.d.m.set.GetOrCreateCounter(fmt.Sprintf("consentgate_delivery_upstream_written_total{upstream=%q}", l.key))
	l.reads = l.d.m.set.GetOrCreateCounter(fmt.Sprintf("consentgate_delivery_upstream_reads_total{upstream=%q}", l.key))
}

// oldestAge is the age in seconds of the oldest hit taken from the
// memory queue and not yet settled: held by a sender, in flight on a
// connection or waiting for a retry. Hits still in the memory queue are
// younger than those (the queue is in order). Computed when the metric
// is read, so the hit path pays nothing for it.
func (l *Lane) oldestAge() float64 {
	oldest := l.held.Load()
	min := func(at int64) {
		if at != 0 && (oldest == 0 || at < oldest) {
			oldest = at
		}
	}
	for _, s := range l.senders {
		s.mu.Lock()
		for _, q := range s.held {
			min(q.at)
		}
		c := s.c
		s.mu.Unlock()
		if c != nil {
			min(c.oldest())
		}
	}
	l.rmu.Lock()
	for _, q := range l.retrying {
		min(q.at)
	}
	l.rmu.Unlock()
	if oldest == 0 {
		return 0
	}
	return l.d.now().Sub(time.Unix(0, oldest)).Seconds()
}

// releaseRetries gives up the hits waiting for a retry at shutdown.
func (l *Lane) releaseRetries() {
	l.rmu.Lock()
	qs := l.retrying
	l.retrying = nil
	if l.rtimer != nil {
		l.rtimer.Stop()
	}
	l.rmu.Unlock()
	for _, q := range qs {
		l.release(q)
	}
}
