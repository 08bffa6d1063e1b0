package proxy

import (
	"fmt"
	"io"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	"github.com/consentgate/consentgate/config"
	"github.com/consentgate/consentgate/consentmode"
)

// DecisionLog writes one JSON line per hit: what was decided and why,
// never identifier values, URLs or query strings. The handler hands each
// entry (a plain value) to a buffered channel; one goroutine encodes and
// writes, so a slow sink never holds up a request. When the channel is
// full the entry is dropped and counted
// (consentgate_decision_log_dropped_total).
type DecisionLog struct {
	ch      chan logEntry
	log     *zap.Logger
	buf     *zapcore.BufferedWriteSyncer
	closeFn func() error
	metrics *Metrics
	kafka   *KafkaSink // nil: no Kafka stream
	seq     atomic.Uint64
	sampled atomic.Uint64
	wg      sync.WaitGroup
	// mu guards closed against add: a request that outlived the shutdown
	// timeout must not send on the closed channel.
	mu     sync.RWMutex
	closed bool
}

// logEntry is everything one decision-log line holds. It refers to no
// request memory.
type logEntry struct {
	at      time.Time
	hit     uint64
	d       consentmode.Decision
	cfg     *config.Config
	status  int
	latency time.Duration
	errKind string
	// delivery is how the hit left: "queue", "sync" or "none" (blocked or refused).
	delivery string
}

// DecisionLogOption adds to what NewDecisionLog builds.
type DecisionLogOption func(*DecisionLog)

// WithKafka streams every line to k as well (see KafkaSink). Close
// closes k.
func WithKafka(k *KafkaSink) DecisionLogOption {
	return func(l *DecisionLog) { l.kafka = k }
}

// NewDecisionLog opens the sink ("stdout", "stderr", "off" or a file
// path) and starts the writer goroutine. Close stops it. A nil
// *DecisionLog (output "off" and no Kafka stream) logs nothing.
func NewDecisionLog(output string, m *Metrics, opts ...DecisionLogOption) (*DecisionLog, error) {
	var o DecisionLog
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
		f, err := os.OpenFile(output, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o640)
		if err != nil {
			return nil, fmt.Errorf("decision log: %w", err)
		}
		ws, closeFn = f, f.Close
	}
	return newDecisionLogSinks(ws, closeFn, m, o.kafka), nil
}

func newDecisionLog(ws zapcore.WriteSyncer, closeFn func() error, m *Metrics) *DecisionLog {
	return newDecisionLogSinks(ws, closeFn, m, nil)
}

// newDecisionLogSinks writes to ws (nil: no file log) and to kafka (nil: no stream).
func newDecisionLogSinks(ws zapcore.WriteSyncer, closeFn func() error, m *Metrics, kafka *KafkaSink) *DecisionLog {
	fileLog := ws != nil
	if !fileLog {
		ws = zapcore.AddSync(io.Discard)
	}
	buf := &zapcore.BufferedWriteSyncer{WS: ws, Size: 256 << 10, FlushInterval: time.Second}
	// No time or message keys of zap's own: each line carries the hit's
	// time as "ts" and nothing else but decision fields.
	enc := zapcore.NewJSONEncoder(zapcore.EncoderConfig{
		EncodeTime: zapcore.RFC3339NanoTimeEncoder, EncodeDuration: zapcore.MillisDurationEncoder, LineEnding: zapcore.DefaultLineEnding,
	})
	var cores []zapcore.Core
	if fileLog {
		cores = append(cores, zapcore.NewCore(enc, buf, zapcore.InfoLevel))
	}
	if kafka != nil {
		// The same encoder settings, so the stream carries the file's records byte for byte.
		cores = append(cores, zapcore.NewCore(enc.Clone(), kafka, zapcore.InfoLevel))
	}
	l := &DecisionLog{
		ch:      make(chan logEntry, 8192),
		log:     zap.New(zapcore.NewTee(cores...)),
		buf:     buf,
		closeFn: closeFn,
		metrics: m,
		kafka:   kafka,
	}
	l.wg.Add(1)
	go l.run()
	return l
}

func (l *DecisionLog) run() {
	defer l.wg.Done()
	for e := range l.ch {
		l.write(&e)
	}
}

// Close writes what is queued, flushes and closes the sink.
func (l *DecisionLog) Close() error {
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
	err := l.buf.Stop()
	if cerr := l.closeFn(); err == nil {
		err = cerr
	}
	if kerr := l.kafka.Close(); err == nil {
		err = kerr
	}
	return err
}

// flush writes out what the encoder has buffered.
func (l *DecisionLog) flush() error {
	if l == nil {
		return nil
	}
	return l.buf.Sync()
}

// nextHit returns a new hit id.
func (l *DecisionLog) nextHit() uint64 {
	if l == nil {
		return 0
	}
	return l.seq.Add(1)
}

// add queues one entry. Forward decisions are sampled at
// log.decisions.sample_forward; everything else is always logged.
func (l *DecisionLog) add(e logEntry) {
	if l == nil {
		return
	}
	if e.d.Action == consentmode.ActionForward && e.errKind == "" && e.status < 500 {
		rate := e.cfg.Log.SampleForward
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
	select {
	case l.ch <- e:
	default:
		if l.metrics != nil {
			l.metrics.logDropped.Inc()
		}
	}
}

func (l *DecisionLog) write(e *logEntry) {
	r := newRecord(&e.d, e.cfg, true)
	r.Time, r.Hit = e.at, e.hit
	r.Status, r.Delivery, r.Error = e.status, e.delivery, e.errKind
	r.UpstreamMS = float64(e.latency) / float64(time.Millisecond)
	l.log.Info("decision", zap.Inline(&r))
}
