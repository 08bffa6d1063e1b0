package delivery

import (
	"sync"
	"testing"
	"testing/synctest"
	"time"
)

// backoffBounds is the range backoff(attempt) draws from: full jitter
// over the upper half of baseBackoff doubled attempt times, capped at
// maxBackoff.
func backoffBounds(attempt int) (lo, hi time.Duration) {
	hi = min(baseBackoff<<min(attempt, 10), maxBackoff)
	return hi / 2, hi
}

// TestBackoffBounds: every draw lies within its attempt's bounds, the
// bounds double from baseBackoff up to maxBackoff, and the draws are
// jittered (they spread over the range rather than sitting at one end).
func TestBackoffBounds(t *testing.T) {
	t.Parallel()
	if lo, hi := backoffBounds(0); lo != 100*time.Millisecond || hi != 200*time.Millisecond {
		t.Fatalf("backoff(0) bounds %v..%v, want 100ms..200ms", lo, hi)
	}
	for attempt := range 40 {
		lo, hi := backoffBounds(attempt)
		least, most := hi, lo
		for range 1000 {
			d := backoff(attempt)
			if d < lo || d > hi {
				t.Fatalf("backoff(%d) = %v, want within %v..%v", attempt, d, lo, hi)
			}
			least, most = min(least, d), max(most, d)
		}
		if mid := lo + (hi-lo)/2; least >= mid || most <= mid {
			t.Errorf("backoff(%d) drew only %v..%v of %v..%v: not jittered", attempt, least, most, lo, hi)
		}
	}
	if _, hi := backoffBounds(40); hi != maxBackoff {
		t.Errorf("backoff(40) bound %v, want maxBackoff %v", hi, maxBackoff)
	}
}

// circuitAttempt is one modelled send: when it started and ended, whether
// the upstream took it, whether it was the circuit's probe, and how many
// other sends were under way when it started.
type circuitAttempt struct {
	start, end time.Time
	ok, probe  bool
	inFlight   int
}

// TestCircuitOpensProbesAndCloses runs four workers that use the circuit
// as the lane's senders do (wait, sleep what it says, send, report)
// against an upstream that fails for 30 s and then answers, in a synctest
// bubble whose clock moves only when every worker sleeps. It pins:
//
//   - the circuit opens at the circuitThreshold-th consecutive failure,
//     once, and not before;
//   - while open, nothing is sent until its wait is over, then exactly
//     one probe goes alone, and each failed probe keeps it open for a
//     wait drawn from the next backoff bounds (doubling to maxBackoff);
//   - the first probe after the upstream recovers closes it, once, and
//     the workers send side by side again.
func TestCircuitOpensProbesAndCloses(t *testing.T) {
	t.Parallel()
	const (
		workers  = 4
		sendTime = 10 * time.Millisecond
		outage   = 30 * time.Second
		wantOK   = 40
	)
	synctest.Test(t, func(t *testing.T) {
		var c circuit
		start := time.Now()
		recoverAt := start.Add(outage)
		var (
			mu                sync.Mutex
			attempts          []circuitAttempt
			inFlight, okCount int
			opened, closed    []time.Time
			failures          int // consecutive, as the circuit counts them
		)
		worker := func() {
			for {
				mu.Lock()
				done := okCount >= wantOK
				mu.Unlock()
				if done {
					return
				}
				if d := c.wait(time.Now()); d > 0 {
					time.Sleep(d)
					continue
				}
				mu.Lock()
				a := circuitAttempt{start: time.Now(), probe: c.isProbing(), inFlight: inFlight}
				inFlight++
				mu.Unlock()
				time.Sleep(sendTime) // the request on the wire
				a.end = time.Now()
				a.ok = !a.end.Before(recoverAt)
				mu.Lock()
				inFlight--
				attempts = append(attempts, a)
				if a.ok {
					okCount++
					failures = 0
					if c.success() {
						closed = append(closed, a.end)
					}
				} else {
					failures++
					if _, o := c.failure(a.end, 0); o {
						opened = append(opened, a.end)
						if failures != circuitThreshold {
							t.Errorf("the circuit opened at failure %d in a row, want %d", failures, circuitThreshold)
						}
					}
				}
				mu.Unlock()
			}
		}
		var wg sync.WaitGroup
		for range workers {
			wg.Go(worker)
		}
		wg.Wait()

		if len(opened) != 1 || len(closed) != 1 {
			t.Fatalf("the circuit opened at %v and closed at %v, want once each", opened, closed)
		}
		if c.open.Load() {
			t.Error("the circuit is still open after the upstream recovered")
		}
		openedAt, closedAt := opened[0], closed[0]
		// The sends after it opened and up to its closing are probes, one at a time.
		var probes []circuitAttempt
		for _, a := range attempts {
			if a.start.Before(openedAt) || !a.start.Before(closedAt) {
				continue
			}
			if !a.probe || a.inFlight != 0 {
				t.Errorf("a send at %v while the circuit was open: probe %v, %d others under way; want the probe alone",
					a.start.Sub(start), a.probe, a.inFlight)
			}
			probes = append(probes, a)
		}
		if len(probes) < 3 {
			t.Fatalf("%d probes in a %v outage, want several", len(probes), outage)
		}
		if last := probes[len(probes)-1]; !last.ok || last.end != closedAt {
			t.Errorf("the last probe (ok %v, ended %v) did not close the circuit (closed %v)", last.ok, last.end.Sub(start), closedAt.Sub(start))
		}
		for i, p := range probes[:len(probes)-1] {
			if p.ok {
				t.Errorf("probe %d during the outage succeeded", i)
			}
		}
		// Each wait (from the failure that opened it or the failed probe
		// before to the next probe) lies within the backoff bounds of the
		// circuit's open count plus 2: backoff(3) for the first.
		prevEnd := openedAt
		for i, p := range probes {
			lo, hi := backoffBounds(i + 3)
			if w := p.start.Sub(prevEnd); w < lo || w > hi {
				t.Errorf("probe %d waited %v, want within %v..%v", i, w, lo, hi)
			}
			prevEnd = p.end
		}
		// Closed again: the workers send side by side.
		most := 0
		for _, a := range attempts {
			if !a.start.Before(closedAt) {
				most = max(most, a.inFlight+1)
			}
		}
		if most != workers {
			t.Errorf("after the circuit closed at most %d sends ran at once, want %d", most, workers)
		}
		// Before it opened, the workers sent side by side too, and failed
		// only as often as it takes to open it (plus what was under way).
		early := 0
		for _, a := range attempts {
			if !a.end.After(openedAt) {
				early++
			}
		}
		if early < circuitThreshold || early > circuitThreshold+workers-1 {
			t.Errorf("%d sends failed before the circuit opened, want %d to %d", early, circuitThreshold, circuitThreshold+workers-1)
		}
	})
}
