package delivery

import (
	"errors"
	"runtime"
	"slices"
	"sync"
	"time"

	"github.com/valyala/fasthttp"
	"go.uber.org/zap"
)

// Batched delivery. A lane has a few senders, each owning one upstream
// connection (an upConn: HTTP/1.1 pipelined, pconn, or HTTP/2, h2conn). A sender waits for hits in the lane's memory queue;
// the first hit wakes it, it yields once so that the hits accepted in the
// same scheduling round are queued too, takes all it may (up to its
// connection's window), and writes their requests with one write. The
// connection's reader settles each hit with its own answer. So the cost of
// a write, a read and a wake-up is shared by every hit of a batch, and
// handing a hit to the lane wakes nobody while a sender is busy.
//
// With delivery.pipeline_conns: 0 the lane has delivery.workers senders
// with a window of one: a hit per connection at a time, for upstreams that
// do not take pipelined requests.

// sender is one connection's sending side.
type sender struct {
	l      *Lane
	window int // hits in flight at once on the connection

	mu   sync.Mutex // guards c and held against oldestAge
	c    upConn
	held []*queued // taken from the queue, not yet written
	// retired are earlier connections that took no new hits but still
	// had some to answer (an HTTP/2 upstream's GOAWAY lets the streams
	// it kept finish); stop closes them too.
	retired []upConn
}

// run sends until delivery stops; what it holds then stays in the spool
// (or is counted dropped without one).
func (s *sender) run() {
	l := s.l
	defer l.d.wg.Done()
	ctx := l.d.ctx
	var buf []byte
	batch := make([]*queued, 0, s.window)
	for {
		// Take no more than the connection has room for: what waits beyond
		// that stays in the memory queue, where it counts against its bounds.
		room := s.window
		if c := s.live(); c != nil {
			if room = s.room(c); room <= 0 {
				select {
				case <-ctx.Done():
					s.stop()
					return
				case <-c.roomCh():
				}
				continue
			}
		}
		if len(s.held) == 0 {
			select {
			case <-ctx.Done():
				s.stop()
				return
			case q := <-l.ch:
				// Let the hits made runnable in this round reach the queue.
				runtime.Gosched()
				s.take(q, room)
			case <-l.retryKick:
				s.take(nil, room)
			}
			if len(s.held) == 0 {
				continue // another sender took the retries
			}
		}
		if wait := l.circuit.wait(time.Now()); wait > 0 {
			if !sleep(ctx, wait) {
				s.stop()
				return
			}
			continue
		}
		c, err := s.conn()
		if err != nil {
			l.failed(s.takeHeld(batch[:0]), err)
			continue
		}
		if room = s.room(c); room <= 0 {
			continue
		}
		probe := l.circuit.isProbing()
		if probe {
			room = 1 // the circuit lets one hit find out
		}
		batch = s.next(batch[:0], room)
		if len(batch) == 0 {
			if probe {
				l.circuit.abandonProbe() // nothing left to probe with
			}
			continue
		}
		if l.up.Merge != nil {
			batch = l.merge(batch)
		}
		buf, err = c.send(batch, buf, time.Now())
		if errors.Is(err, errConnDead) {
			batch = unmerge(batch)
			s.mu.Lock()
			s.held = slices.Insert(s.held, 0, batch...)
			s.mu.Unlock()
		}
	}
}

// room is how many more hits c may carry: the sender's window and the
// upstream's own limit, less what is in flight.
func (s *sender) room(c upConn) int {
	if s.l.up.Merge != nil {
		// Coalescing: one merged request in flight; meanwhile the hits
		// that arrive wait to leave together in the next. Hits that do not
		// merge leave as requests of their own: no more than the
		// upstream's own limit (HTTP/2 streams) at once.
		if c.pending() > 0 {
			return 0
		}
		return min(s.window, c.limit())
	}
	return min(s.window, c.limit()) - c.pending()
}

// live returns the sender's connection when it can take hits.
func (s *sender) live() upConn {
	s.mu.Lock()
	c := s.c
	s.mu.Unlock()
	if c != nil && c.alive() {
		return c
	}
	return nil
}

// take moves q (when not nil), the retries that are due and what else
// waits in the memory queue into s.held, up to n in all.
func (s *sender) take(q *queued, n int) {
	l := s.l
	s.mu.Lock()
	defer s.mu.Unlock()
	fresh := 0
	if q != nil {
		s.held = append(s.held, q)
		l.memBytes.Add(-int64(len(q.payload)))
		fresh++
	}
	s.held = l.dueRetries(s.held, n)
	for len(s.held) < n {
		select {
		case q := <-l.ch:
			l.memBytes.Add(-int64(len(q.payload)))
			s.held = append(s.held, q)
			fresh++
			continue
		default:
		}
		break
	}
	if fresh > 0 {
		select {
		case l.room <- struct{}{}:
		default:
		}
	}
}

// next moves up to n held hits into batch, dropping those older than
// delivery.max_age on the way.
func (s *sender) next(batch []*queued, n int) []*queued {
	l := s.l
	now := l.d.now().UnixNano()
	maxAge := int64(l.d.cfg.MaxAge)
	s.mu.Lock()
	i := 0
	for ; i < len(s.held) && len(batch) < n; i++ {
		q := s.held[i]
		if now-q.at > maxAge {
			l.drop(q, dropMaxAge)
			continue
		}
		batch = append(batch, q)
	}
	s.held = append(s.held[:0], s.held[i:]...)
	s.mu.Unlock()
	return batch
}

// takeHeld moves every held hit into dst.
func (s *sender) takeHeld(dst []*queued) []*queued {
	s.mu.Lock()
	dst = append(dst, s.held...)
	clear(s.held)
	s.held = s.held[:0]
	s.mu.Unlock()
	return dst
}

// conn returns the sender's live connection, dialling a new one when the
// last has failed.
func (s *sender) conn() (upConn, error) {
	if c := s.live(); c != nil {
		return c, nil
	}
	l := s.l
	// A lane that reads its answers' bodies (Refused) speaks HTTP/1.1:
	// the HTTP/2 connection settles a hit by its HEADERS.
	nc, err := dialUp(l.up.Client, l.up.Host, l.d.timeout, l.d.cfg.HTTP2 && l.up.Refused == nil, l)
	if err != nil {
		return nil, err
	}
	s.mu.Lock()
	if s.c != nil {
		s.retired = slices.DeleteFunc(s.retired, func(c upConn) bool { return c.pending() == 0 })
		if s.c.pending() > 0 {
			s.retired = append(s.retired, s.c)
		}
	}
	s.c = nc
	s.mu.Unlock()
	return nc, nil
}

// stop closes the connection (its unanswered hits come back through
// broken and wait in the spool) and releases what the sender holds.
func (s *sender) stop() {
	s.mu.Lock()
	c, retired := s.c, s.retired
	s.retired = nil
	s.mu.Unlock()
	if c != nil {
		c.close()
	}
	for _, c := range retired {
		c.close()
	}
	for _, q := range s.takeHeld(nil) {
		s.l.release(q)
	}
}

// answered settles q with its answer (called by a pconn's reader).
func (l *Lane) answered(q *queued, resp *fasthttp.Response, latency time.Duration) {
	if len(q.parts) > 0 {
		l.answeredMerged(q, resp, latency)
		return
	}
	d := l.d
	status := resp.StatusCode()
	d.observe(q.tag, latency, status, nil)
	ok, rejected, cause, retryAfter := l.classify(status, resp)
	switch {
	case ok:
		l.closeCircuit()
		d.family(d.m.delivered, q.tag).Inc()
		l.settle(q)
	case rejected:
		l.closeCircuit() // the upstream is alive; the hit is bad
		if ce := d.slog.Check(zap.WarnLevel, "delivery: upstream refused a queued hit; dropped"); ce != nil {
			ce.Write(zap.String("upstream", l.key), zap.Int("status", status))
		}
		l.drop(q, dropRejected4xx)
	default:
		d.m.retried[cause].Inc()
		l.openCircuit(retryAfter, nil, status)
		l.retry(q, retryAfter)
	}
}

// classify judges an answer: by its status, and for an upstream that
// says errors in a success's body (Upstream.Refused), by that too.
func (l *Lane) classify(status int, resp *fasthttp.Response) (ok, rejected bool, cause retryCause, retryAfter time.Duration) {
	ok, rejected, cause, retryAfter = classify(nil, status, resp)
	if ok && l.up.Refused != nil && l.up.Refused(resp.Body()) {
		return false, true, 0, 0
	}
	return ok, rejected, cause, retryAfter
}

// openCircuit records a failed attempt (err, or an error answer with
// status) and logs, sampled, when it opens the circuit.
func (l *Lane) openCircuit(retryAfter time.Duration, err error, status int) {
	wait, opened := l.circuit.failure(time.Now(), retryAfter)
	if !opened {
		return
	}
	if ce := l.d.slog.Check(zap.WarnLevel, "delivery: circuit open; the upstream is failing"); ce != nil {
		fields := []zap.Field{zap.String("upstream", l.key), zap.String("class", errClass(err)), zap.Duration("retry_in", wait)}
		if err != nil {
			fields = append(fields, zap.Error(err))
		} else {
			fields = append(fields, zap.Int("status", status))
		}
		ce.Write(fields...)
	}
}

// broken takes back hits whose connection failed before their answers
// (called by a pconn's reader): each is retried.
func (l *Lane) broken(qs []*queued, err error) {
	l.failed(unmerge(qs), err)
}

// failed retries hits that could not be sent or were not answered.
func (l *Lane) failed(qs []*queued, err error) {
	if len(qs) == 0 {
		return
	}
	if l.d.ctx.Err() != nil {
		for _, q := range qs {
			l.release(q) // shutting down: they wait in the spool
		}
		return
	}
	_, _, cause, _ := classify(err, 0, nil)
	l.d.observe(qs[0].tag, 0, 0, err)
	l.openCircuit(0, err, 0)
	for _, q := range qs {
		l.d.m.retried[cause].Inc()
		l.retry(q, 0)
	}
}

// drop gives q up for cause, counted.
func (l *Lane) drop(q *queued, cause dropCause) {
	l.d.m.dropped[cause].Inc()
	l.settle(q)
}

// settle ends q's delivery (delivered or dropped) and acknowledges its
// spool record.
func (l *Lane) settle(q *queued) {
	if q.seq != 0 {
		l.sp.Ack(q.seq)
	}
	l.inflight.Add(-1)
	putQueued(q)
	l.d.settle()
}

// release gives q up at shutdown: it stays in the spool for the next
// start, or, without a spool, is counted dropped.
func (l *Lane) release(q *queued) {
	if l.sp == nil {
		l.d.m.dropped[dropShutdown].Inc()
	}
	l.inflight.Add(-1)
	putQueued(q)
	l.d.settle()
}

// retry schedules q's next attempt after its backoff (or what the
// upstream asked for, if longer).
func (l *Lane) retry(q *queued, retryAfter time.Duration) {
	l.retryAt(q, time.Now().Add(max(backoff(int(q.attempt)), retryAfter)).UnixNano())
}

// retryAt schedules q's next attempt at due, Unix nanoseconds (the hits of
// a merged request share one, so that they come due together).
func (l *Lane) retryAt(q *queued, due int64) {
	if l.d.ctx.Err() != nil {
		l.release(q)
		return
	}
	q.due = due
	q.attempt++
	l.rmu.Lock()
	l.retrying = append(l.retrying, q)
	if l.rdue == 0 || q.due < l.rdue {
		l.rdue = q.due
		if l.rtimer == nil {
			l.rtimer = time.AfterFunc(time.Until(time.Unix(0, q.due)), l.retryDue)
		} else {
			l.rtimer.Reset(time.Until(time.Unix(0, q.due)))
		}
	}
	l.rmu.Unlock()
}

// retryDue wakes a sender when retries are due.
func (l *Lane) retryDue() {
	l.rmu.Lock()
	l.rdue = 0
	now := time.Now().UnixNano()
	next := int64(0)
	for _, q := range l.retrying {
		if q.due > now && (next == 0 || q.due < next) {
			next = q.due
		}
	}
	if next != 0 {
		l.rdue = next
		l.rtimer.Reset(time.Until(time.Unix(0, next)))
	}
	l.rmu.Unlock()
	select {
	case l.retryKick <- struct{}{}:
	default:
	}
}

// dueRetries moves the retries that are due into dst, up to n in all.
func (l *Lane) dueRetries(dst []*queued, n int) []*queued {
	l.rmu.Lock()
	defer l.rmu.Unlock()
	if len(l.retrying) == 0 {
		return dst
	}
	now := time.Now().UnixNano()
	kept := l.retrying[:0]
	for _, q := range l.retrying {
		if q.due <= now && len(dst) < n {
			dst = append(dst, q)
			continue
		}
		kept = append(kept, q)
	}
	clear(l.retrying[len(kept):])
	l.retrying = kept
	for _, q := range kept {
		if q.due <= now {
			// More are due than one sender takes: wake another.
			select {
			case l.retryKick <- struct{}{}:
			default:
			}
			break
		}
	}
	return dst
}

// abandonProbe lets another sender probe: this one had nothing to send.
func (c *circuit) abandonProbe() {
	c.mu.Lock()
	c.probing = false
	c.mu.Unlock()
}

// isProbing reports whether the circuit is open and its probe under way:
// the probing sender sends a single hit.
func (c *circuit) isProbing() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.failures >= circuitThreshold && c.probing
}

func (l *Lane) wrote(hits int) {
	l.writes.Inc()
	l.written.Add(hits)
}

func (l *Lane) read() { l.reads.Inc() }
