package proxy

import (
	"fmt"
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

// NewDecisionLog opens the sink ("stdout", "stderr", "off" or a file
// path) and starts the writer goroutine. Close stops it. A nil
// *DecisionLog (output "off") logs nothing.
func NewDecisionLog(output string, m *Metrics) (*DecisionLog, error) {
	var ws zapcore.WriteSyncer
	closeFn := func() error { return nil }
	switch output {
	case "off":
		return nil, nil
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
	return newDecisionLog(ws, closeFn, m), nil
}

func newDecisionLog(ws zapcore.WriteSyncer, closeFn func() error, m *Metrics) *DecisionLog {
	buf := &zapcore.BufferedWriteSyncer{WS: ws, Size: 256 << 10, FlushInterval: time.Second}
	// No time or message keys of zap's own: each line carries the hit's
	// time as "ts" and nothing else but decision fields.
	enc := zapcore.NewJSONEncoder(zapcore.EncoderConfig{
		EncodeTime: zapcore.RFC3339NanoTimeEncoder, EncodeDuration: zapcore.MillisDurationEncoder, LineEnding: zapcore.DefaultLineEnding,
	})
	l := &DecisionLog{
		ch:      make(chan logEntry, 8192),
		log:     zap.New(zapcore.NewCore(enc, buf, zapcore.InfoLevel)),
		buf:     buf,
		closeFn: closeFn,
		metrics: m,
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
	d := &e.d
	fields := [...]zap.Field{
		zap.Time("ts", e.at),
		zap.Uint64("hit", e.hit),
		zap.String("route", consentmode.Routes[d.Route].Name),
		zap.String("family", d.Family.String()),
		zap.String("region", d.Region.String()),
		zap.String("action", d.Action.String()),
		zap.Bool("enforced", e.cfg.Enforce),
		zap.Object("consent", stateFields{d: d, p: e.cfg.Policy}),
		zap.Object("sources", sourceFields{d: d, p: e.cfg.Policy}),
		zap.Object("claimed", claimedFields{d: d}),
		zap.Array("reasons", reasonList(d.Reasons)),
		zap.Array("removed", fieldList(d.Removed)),
		zap.Int("status", e.status),
		zap.String("delivery", e.delivery),
		zap.Duration("upstream_ms", e.latency),
		zap.String("error", e.errKind),
		zap.String("policy_version", e.cfg.PolicyVersion),
	}
	l.log.Info("decision", fields[:]...)
}

type stateFields struct {
	d *consentmode.Decision
	p *consentmode.Policy
}

func (s stateFields) MarshalLogObject(enc zapcore.ObjectEncoder) error {
	for t := range consentmode.NumTypes {
		enc.AddString(consentmode.Type(t).String(), s.d.Consent.Value[t].String())
	}
	return nil
}

type sourceFields stateFields

func (s sourceFields) MarshalLogObject(enc zapcore.ObjectEncoder) error {
	for t := range consentmode.NumTypes {
		enc.AddString(consentmode.Type(t).String(), s.d.SourceName(consentmode.Type(t), s.p))
	}
	return nil
}

type claimedFields struct{ d *consentmode.Decision }

func (c claimedFields) MarshalLogObject(enc zapcore.ObjectEncoder) error {
	for t := range consentmode.NumTypes {
		if v := c.d.Claimed[t]; v != consentmode.Unset {
			enc.AddString(consentmode.Type(t).String(), v.String())
		}
	}
	return nil
}

type reasonList consentmode.ReasonSet

func (r reasonList) MarshalLogArray(enc zapcore.ArrayEncoder) error {
	for x := range consentmode.ReasonSet(r).All {
		enc.AppendString(x.String())
	}
	return nil
}

type fieldList consentmode.FieldSet

func (f fieldList) MarshalLogArray(enc zapcore.ArrayEncoder) error {
	s := consentmode.FieldSet(f)
	for x := range s.All {
		enc.AppendString(x.String())
	}
	return nil
}
