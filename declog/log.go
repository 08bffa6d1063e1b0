package declog

import (
	"encoding/hex"
	"fmt"
	"os"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/VictoriaMetrics/metrics"
	"go.uber.org/zap/zapcore"

	"github.com/consentgate/consentgate/config"
	"github.com/consentgate/consentgate/consentmode"
)

// Log writes one JSON line per hit: what was decided and why, never
// identifier values, URLs or query strings. The hit path hands each Entry
// (a plain value) to a buffered channel; one goroutine encodes and writes,
// so a slow sink never holds up a request. When the channel is full the
// entry is dropped and counted (consentgate_decision_log_dropped_total).
//
// A nil *Log logs nothing: every method is safe to call on it.
type Log struct {
	ch      chan Entry
	buf     *zapcore.BufferedWriteSyncer // nil: no file log
	closeFn func() error
	dropped *metrics.Counter // nil: not counted
	kafka   *KafkaSink       // nil: no Kafka stream
	chain   *Chain           // nil: no hash chain
	// rec, line and names are the writer goroutine's, reused for every
	// record so that it allocates nothing per line.
	rec     Record
	line    []byte
	names   names
	seq     atomic.Uint64
	sampled atomic.Uint64
	lost    atomic.Uint64 // entries dropped (a full channel), for checkpoints
	wg      sync.WaitGroup
	// mu guards closed against Add: a request that outlived the shutdown
	// timeout must not send on the closed channel.
	mu     sync.RWMutex
	closed bool
}

// Entry is everything one decision-log line holds. It refers to no
// request memory: the hit path fills it from values it owns.
type Entry struct {
	// At is when the request was read; Hit its number (Log.NextHit).
	At  time.Time
	Hit uint64
	// Decision is the verdict, Config the configuration it was decided
	// under (shared, never modified).
	Decision consentmode.Decision
	Config   *config.Config
	// Status is what the browser got, Latency the upstream's answer time
	// and ErrKind the kind of upstream error ("" when none).
	Status  int
	Latency time.Duration
	ErrKind string
	// Delivery is how the hit left: "queue", "sync" or "none" (blocked or refused).
	Delivery string
	// Vendors are the other vendors' calls of the hit (all VendorNone
	// when none is planned).
	Vendors [consentmode.NumVendors]consentmode.VendorCall
	// Envelope marks a call of an envelope route (/vendors/<name>/events):
	// the record's route is "vendor_envelope", its family "vendors" and
	// its action the vendor's call.
	Envelope bool

	inputs *hitInputs // copied by Add from its Hit; nil: none
}

// Option adds to what Open and New build.
type Option func(*Log)

// WithKafka streams every line to k as well (see KafkaSink). Close
// closes k.
func WithKafka(k *KafkaSink) Option {
	return func(l *Log) { l.kafka = k }
}

// Open opens the sink output ("stdout", "stderr", "off" or a file path)
// and starts the writer goroutine; Close stops it. Drops are counted in
// set (nil: not counted). Open returns a nil *Log, which logs nothing,
// for output "off" without a Kafka stream.
//
// With WithChain and a file output, the chain continues from the file's
// last complete line, or, for a new or emptied file (after a rotation),
// from the state file output+".chain" the log keeps next to it.
func Open(output string, set *metrics.Set, opts ...Option) (*Log, error) {
	var o Log
	for _, opt := range opts {
		opt(&o)
	}
	var ws zapcore.WriteSyncer
	closeFn := func() error { return nil }
	switch output {
	case "off":
		if o.kafka == nil {
			return nil, nil
		}
	case "stdout":
		ws = zapcore.Lock(os.Stdout)
	case "stderr":
		ws = zapcore.Lock(os.Stderr)
	default:
		if o.chain != nil {
			if err := o.chain.resume(output); err != nil {
				return nil, fmt.Errorf("decision log: %w", err)
			}
		}
		f, err := os.OpenFile(output, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o640)
		if err != nil {
			return nil, fmt.Errorf("decision log: %w", err)
		}
		ws, closeFn = f, f.Close
	}
	return start(&o, ws, closeFn, set), nil
}

// New starts a decision log writing to ws (nil: no file log, only the
// Kafka stream of an option) and calls closeFn (nil: nothing) when it is
// closed. Drops are counted in set (nil: not counted).
func New(ws zapcore.WriteSyncer, closeFn func() error, set *metrics.Set, opts ...Option) *Log {
	var o Log
	for _, opt := range opts {
		opt(&o)
	}
	return start(&o, ws, closeFn, set)
}

// start completes l, its options applied, and starts its writer.
func start(l *Log, ws zapcore.WriteSyncer, closeFn func() error, set *metrics.Set) *Log {
	l.ch, l.closeFn = make(chan Entry, 8192), closeFn
	if l.closeFn == nil {
		l.closeFn = func() error { return nil }
	}
	if set != nil {
		l.dropped = set.GetOrCreateCounter(`consentgate_decision_log_dropped_total`)
	}
	if ws != nil {
		l.buf = &zapcore.BufferedWriteSyncer{WS: ws, Size: 256 << 10, FlushInterval: time.Second}
	}
	l.wg.Add(1)
	go l.run()
	return l
}

func (l *Log) run() {
	defer l.wg.Done()
	if l.chain == nil {
		for e := range l.ch {
			l.write(&e)
		}
		return
	}
	l.header()
	var tick <-chan time.Time
	if l.chain.Key != nil {
		t := time.NewTicker(l.chain.Checkpoint)
		defer t.Stop()
		tick = t.C
	}
	for {
		select {
		case e, ok := <-l.ch:
			if !ok {
				l.checkpoint()
				l.chain.save()
				return
			}
			l.write(&e)
		case <-tick:
			l.checkpoint()
			l.chain.save()
		}
	}
}

// Close writes what is queued, flushes and closes the sink.
func (l *Log) Close() error {
	if l == nil {
		return nil
	}
	l.mu.Lock()
	if l.closed {
		l.mu.Unlock()
		return nil
	}
	l.closed = true
	close(l.ch)
	l.mu.Unlock()
	l.wg.Wait()
	var err error
	if l.buf != nil {
		err = l.buf.Stop()
	}
	if cerr := l.closeFn(); err == nil {
		err = cerr
	}
	if kerr := l.kafka.Close(); err == nil {
		err = kerr
	}
	return err
}

// Flush writes out what the encoder has buffered.
func (l *Log) Flush() error {
	if l == nil || l.buf == nil {
		return nil
	}
	return l.buf.Sync()
}

// NextHit returns a new hit number (0 on a nil *Log).
func (l *Log) NextHit() uint64 {
	if l == nil {
		return 0
	}
	return l.seq.Add(1)
}

// Add queues one entry and returns at once, with the consent inputs of
// hit (nil: none recorded), which it copies. Forward decisions are
// sampled at log.decisions.sample_forward; everything else is always
// logged. Once its buffers are warm it allocates nothing.
func (l *Log) Add(e Entry, hit *Hit) {
	if l == nil {
		return
	}
	if e.Decision.Action == consentmode.ActionForward && e.ErrKind == "" && e.Status < 500 {
		rate := e.Config.Log.SampleForward
		if rate <= 0 {
			return
		}
		if rate < 1 {
			n := l.sampled.Add(1)
			if uint64(float64(n)*rate) == uint64(float64(n-1)*rate) {
				return
			}
		}
	}
	l.mu.RLock()
	defer l.mu.RUnlock()
	if l.closed {
		return
	}
	if hit != nil {
		e.inputs = readHit(hit)
	}
	select {
	case l.ch <- e:
	default:
		if e.inputs != nil {
			hitInputsPool.Put(e.inputs)
		}
		l.lost.Add(1)
		if l.dropped != nil {
			l.dropped.Inc()
		}
	}
}

// write encodes e and writes it out.
func (l *Log) write(e *Entry) {
	l.emit(l.encode(e))
}

// encode renders e as one line, the next of the chain, and returns the
// inputs of e to their pool. The line is the log's buffer: it is valid
// until the next call.
func (l *Log) encode(e *Entry) []byte {
	r := &l.rec
	r.fill(&e.Decision, e.Config, true, &l.names)
	r.Time, r.Hit = e.At, e.Hit
	r.Status, r.Delivery, r.Error = e.Status, e.Delivery, e.ErrKind
	r.UpstreamMS = float64(e.Latency) / float64(time.Millisecond)
	r.setVendors(e.Vendors, e.Envelope)
	b := r.appendFields(l.line[:0])
	if x := e.inputs; x != nil {
		e.inputs = nil
		values := x.values()
		b = appendInputs(b, &values, x.gpc, &x.present)
		hitInputsPool.Put(x)
	}
	if c := l.chain; c != nil {
		c.Seq++
		b = append(b, `,"seq":`...)
		b = strconv.AppendUint(b, c.Seq, 10)
		b = append(b, `,"prev":"`...)
		b = hex.AppendEncode(b, c.Prev[:])
		b = append(b, '"')
	}
	l.line = append(b, '}', '\n')
	return l.line
}

// emit writes one encoded line (ending in a newline) to the file and the
// Kafka stream, and makes it the chain's latest.
func (l *Log) emit(line []byte) {
	if l.chain != nil {
		l.chain.link(line)
	}
	if l.buf != nil {
		if _, err := l.buf.Write(line); err != nil {
			// As zap reported write errors before: once per failed write, on stderr.
			fmt.Fprintf(os.Stderr, "%s decision log: write: %v\n", time.Now().UTC().Format(time.RFC3339Nano), err)
		}
	}
	if l.kafka != nil {
		_, _ = l.kafka.Write(line) // never fails: drops are counted
	}
}
