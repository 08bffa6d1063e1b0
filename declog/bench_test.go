package declog

import (
	"io"
	"strings"
	"testing"
	"time"

	"go.uber.org/zap/zapcore"

	"github.com/consentgate/consentgate/consentmode"
)

// BenchmarkDecisionLogWrite measures writing one decision-log line: the
// log goroutine's work, off the request path. "record" is the line
// without the chain and the inputs; "chained" is what serve writes: a real
// hit's consent inputs, seq and prev (the line's SHA-256 included);
// "region" is that for a hit whose consent a region default decided.
// bytes/record is the line's length, newline included.
func BenchmarkDecisionLogWrite(b *testing.B) {
	chain := []Option{WithChain(Chain{Checkpoint: time.Hour})}
	for _, bb := range []struct {
		name   string
		hit    *Hit
		region string
		opts   []Option
	}{
		{"record", nil, "", nil},
		{"chained", &identifyingHit, "", chain},
		{"region", &identifyingHit, "DE", chain},
	} {
		b.Run(bb.name, func(b *testing.B) {
			e := loggedDecision(b)
			if bb.region != "" {
				e.Decision.Region, _ = consentmode.ParseRegion([]byte(bb.region))
				e.Decision.Consent.Source[consentmode.AdStorage] = consentmode.SourceRegionDefault
			}
			var one syncBuffer
			l := New(&one, nil, nil, bb.opts...)
			l.Add(e, bb.hit)
			if err := l.Close(); err != nil {
				b.Fatal(err)
			}
			out := one.String()
			size := len(out) - strings.LastIndexByte(out[:len(out)-1], '\n') - 1 // the last line: a header may precede it
			l = unstarted(zapcore.AddSync(io.Discard), bb.opts...)
			defer l.buf.Stop()
			b.ReportAllocs()
			for b.Loop() {
				if bb.hit != nil {
					e.inputs = readHit(bb.hit) // what Add does; write returns it to the pool
				}
				l.write(&e)
			}
			b.ReportMetric(float64(size), "bytes/record")
		})
	}
}

// BenchmarkAdd measures the request path's share of the decision log:
// queuing an entry with a GA4 hit's consent inputs (readHit). The
// writer's receive and its return of the inputs to their pool are in the
// loop too.
func BenchmarkAdd(b *testing.B) {
	l := &Log{ch: make(chan Entry, 1)}
	e := loggedDecision(b)
	b.ReportAllocs()
	for b.Loop() {
		l.Add(e, &identifyingHit)
		got := <-l.ch
		hitInputsPool.Put(got.inputs)
	}
}

// unstarted is a log as New makes it, writing to ws, but without its
// writer goroutine (nor the chain's header line): a test or benchmark
// calls write or encode itself. Stop its buf when done.
func unstarted(ws zapcore.WriteSyncer, opts ...Option) *Log {
	var l Log
	for _, opt := range opts {
		opt(&l)
	}
	l.buf = &zapcore.BufferedWriteSyncer{WS: ws, Size: 256 << 10, FlushInterval: time.Hour}
	return &l
}
