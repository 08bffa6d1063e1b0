package delivery

import (
	"bytes"
	"time"

	"github.com/valyala/fasthttp"
	"go.uber.org/zap"
)

// Coalescing lanes (Upstream.Merge). Some upstreams take many events per
// request (the other vendors' conversion APIs take up to 1,000). Such a
// lane still accepts, spools, settles and counts every hit on its own, so
// that nothing is lost between the hit path and the upstream; only the
// sending differs. Each sender keeps one request in flight
// (sender.room); the hits that arrive meanwhile wait in the memory queue,
// and the next request carries all of them (up to Upstream.Batch), merged
// by Upstream.Merge. So the batches grow with the upstream's latency and
// the load, with no timer and no hit held outside the spool.
//
// An answer settles every hit of the merged request: delivered together,
// or retried together after a failure. A refusal (4xx) of a merged
// request does not drop its hits: each is sent again on its own, so that
// only a hit the upstream refuses by itself is dropped.

// MergeFunc appends to dst one request that carries the hits of the
// requests wires (each an HTTP/1.1 request as Accept queued it). An error
// sends them one by one instead.
type MergeFunc func(wires [][]byte, dst []byte) ([]byte, error)

// merge replaces the hits of batch that may be merged, those with the
// same request head but for Content-Length (the same endpoint and
// credentials), by one merged request per head whose parts they are, when
// there are two or more. Hits marked alone stay as they are.
func (l *Lane) merge(batch []*queued) []*queued {
	var order []string
	groups := map[string][]*queued{}
	out := batch[:0:0]
	for _, q := range batch {
		if q.alone {
			out = append(out, q)
			continue
		}
		k := headKey(q.wire)
		if _, ok := groups[k]; !ok {
			order = append(order, k)
		}
		groups[k] = append(groups[k], q)
	}
	for _, k := range order {
		out = append(out, l.mergeGroup(groups[k])...)
	}
	return out
}

// mergeGroup returns one merged request carrying the hits qs, or qs as
// they are when they are fewer than two or Merge fails.
func (l *Lane) mergeGroup(qs []*queued) []*queued {
	if len(qs) < 2 {
		return qs
	}
	wires := make([][]byte, len(qs))
	m := getQueued()
	m.at = qs[0].at
	for i, q := range qs {
		wires[i] = q.wire
		m.at = min(m.at, q.at)
	}
	merged, err := l.up.Merge(wires, m.payload[:0])
	if err != nil {
		if ce := l.d.slog.Check(zap.WarnLevel, "delivery: requests could not be merged; sent one by one"); ce != nil {
			ce.Write(zap.String("upstream", l.key), zap.Int("hits", len(qs)), zap.Error(err))
		}
		putQueued(m)
		return qs
	}
	m.payload, m.wire, m.tag = merged, merged, qs[0].tag
	m.parts = append(m.parts[:0], qs...)
	return []*queued{m}
}

// unmerge replaces each merged request of qs by its hits (qs itself when
// it holds none).
func unmerge(qs []*queued) []*queued {
	merged := false
	for _, q := range qs {
		merged = merged || len(q.parts) > 0
	}
	if !merged {
		return qs
	}
	out := make([]*queued, 0, len(qs))
	for _, q := range qs {
		if len(q.parts) == 0 {
			out = append(out, q)
			continue
		}
		out = append(out, q.parts...)
		putQueued(q)
	}
	return out
}

// answeredMerged settles the hits of merged request m with its answer.
func (l *Lane) answeredMerged(m *queued, resp *fasthttp.Response, latency time.Duration) {
	d := l.d
	status := resp.StatusCode()
	d.observe(m.tag, latency, status, nil)
	ok, rejected, cause, retryAfter := l.classify(status, resp)
	switch {
	case ok:
		l.closeCircuit()
		for _, q := range m.parts {
			d.family(d.m.delivered, q.tag).Inc()
			l.settle(q)
		}
	case rejected:
		l.closeCircuit() // the upstream is alive; some hit is bad
		if ce := d.slog.Check(zap.WarnLevel, "delivery: upstream refused a merged request; its hits are sent one by one"); ce != nil {
			ce.Write(zap.String("upstream", l.key), zap.Int("status", status), zap.Int("hits", len(m.parts)))
		}
		due := dueOf(m.parts, 0)
		for _, q := range m.parts {
			q.alone = true
			d.m.retried[retryOther].Inc()
			l.retryAt(q, due)
		}
	default:
		l.openCircuit(retryAfter, nil, status)
		due := dueOf(m.parts, retryAfter)
		for _, q := range m.parts {
			d.m.retried[cause].Inc()
			l.retryAt(q, due)
		}
	}
	putQueued(m)
}

// dueOf is when the hits qs of a merged request are retried, together:
// after the backoff of the one that failed most, or retryAfter if longer.
func dueOf(qs []*queued, retryAfter time.Duration) int64 {
	attempt := int32(0)
	for _, q := range qs {
		attempt = max(attempt, q.attempt)
	}
	return time.Now().Add(max(backoff(int(attempt)), retryAfter)).UnixNano()
}

// headKey is a request's head without its Content-Length line: requests
// with the same key go to the same endpoint with the same credentials.
func headKey(wire []byte) string {
	head, _, _ := bytes.Cut(wire, []byte("\r\n\r\n"))
	var b []byte
	for len(head) > 0 {
		line, rest, _ := bytes.Cut(head, []byte("\r\n"))
		head = rest
		if name, _, ok := bytes.Cut(line, []byte(":")); ok && bytes.EqualFold(bytes.TrimSpace(name), []byte("Content-Length")) {
			continue
		}
		b = append(append(b, line...), '\n')
	}
	return string(b)
}
