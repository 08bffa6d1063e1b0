package spool

import (
	"fmt"
	"runtime"
)

// Group commit. Appends that arrive together share one write(2): the
// first append of a group becomes its leader, yields once so that the
// goroutines made runnable in the same scheduling round (the browsers whose
// requests the last network poll returned) can join, then writes the whole
// group with one write and wakes its members. Every member returns only
// after the write that holds its record has returned, so the kill -9
// promise of Append is the same as with a write per record. Only one
// group is written at a time, in sequence order; appends that arrive
// during a write form the next group, whose first waiter leads it.
//
// Why a yield and not a timer: a sleep of a few hundred microseconds
// becomes a millisecond in the runtime and halves throughput, while the
// goroutines worth waiting for are already runnable when the leader yields.

// group is a set of records written with one write. Guarded by Spool.mu.
type group struct {
	buf     []byte // the frames
	first   uint64 // sequence number of the first frame
	last    uint64
	bytes   int64
	records int64
	members int // appends still to read err
	done    bool
	err     error
}

// Ticket is an enqueued record on its way to the file: Wait returns
// once it is there.
type Ticket struct {
	s   *Spool
	g   *group
	seq uint64
}

// Seq is the record's sequence number.
func (t Ticket) Seq() uint64 { return t.seq }

// Enqueue adds a record accepted at (Unix nanoseconds) to the group being
// formed and returns its ticket, without writing. Sequence numbers follow
// the order of Enqueue calls, so a caller that must order its own state
// with them (the delivery lane) enqueues under its own lock and waits
// outside it. The payload is copied. Every ticket must be waited for.
func (s *Spool) Enqueue(at int64, payload []byte) (Ticket, error) {
	if len(payload) > MaxPayload {
		return Ticket{}, fmt.Errorf("spool: record of %d bytes exceeds %d", len(payload), MaxPayload)
	}
	n := int64(frameHeader + recordHead + len(payload))
	s.mu.Lock()
	defer s.unlock()
	if s.closed {
		return Ticket{}, ErrClosed
	}
	if s.bytes+s.grouped+n > s.opt.MaxBytes {
		return Ticket{}, ErrFull
	}
	g := s.open
	if g == nil {
		g = s.newGroup()
		s.open = g
		g.first = s.next
	}
	seq := s.next
	s.next++
	g.buf = AppendFrame(g.buf, seq, at, payload)
	g.last = seq
	g.bytes += n
	g.records++
	g.members++
	s.grouped += n
	return Ticket{s: s, g: g, seq: seq}, nil
}

// Wait returns once the ticket's record is written (its sequence number)
// or its write failed (the error; the record is not in the spool). The
// first waiter of a group writes it, after yielding once so that the
// appends runnable now join it.
func (t Ticket) Wait() (uint64, error) {
	s, g := t.s, t.g
	s.mu.Lock()
	if !s.writing && s.open == g {
		s.writing = true
		s.mu.Unlock()
		runtime.Gosched() // let the appends runnable now join g
		s.mu.Lock()
		s.writeOpen()
	}
	for !g.done {
		if !s.writing {
			// The group before ours is written: lead ours.
			s.writing = true
			s.writeOpen()
			continue
		}
		s.wrote.Wait()
	}
	err := g.err
	g.members--
	if g.members == 0 {
		s.freeGroup(g)
	}
	s.unlock()
	if err != nil {
		return 0, err
	}
	return t.seq, nil
}

// writeOpen writes the open group. Called with mu held and s.writing set
// by the caller; returns with mu held, s.writing clear and the group's
// members woken.
func (s *Spool) writeOpen() {
	g := s.open
	s.open, s.inWrite = nil, g
	defer func() { s.inWrite = nil }()
	var err error
	if g == nil {
		s.writing = false
		return
	}
	if s.active == nil || s.active.size >= s.opt.SegmentBytes {
		err = s.rotateTo(g.first)
	}
	seg := s.active
	if err == nil {
		s.unlock()
		// Outside the lock: acknowledgements, stats and readers go on.
		_, err = seg.f.Write(g.buf)
		s.mu.Lock()
		if err != nil {
			// A short write leaves a torn frame: start a new segment so
			// that the next record does not follow it (Open cuts such a
			// tail).
			s.sealActive()
			err = fmt.Errorf("spool: write: %w", err)
		}
	}
	if err != nil && s.next == g.last+1 {
		// No group took numbers after ours: give them back, so that the
		// next segment starts where this one's torn tail does and Open
		// counts nothing lost for hits that were refused. (When a later
		// group holds numbers already, the gap stays and Open counts the
		// refused hits of the torn tail as lost: an over-count, never an
		// under-count.)
		s.next = g.first
	}
	s.grouped -= g.bytes
	if err == nil {
		if seg.outstanding == 0 && seg.size == 0 {
			seg.first = g.first
		}
		seg.last = g.last
		seg.size += g.bytes
		seg.outstanding += int(g.records)
		seg.dirty = true
		s.stats.Writes++
		s.bytes += g.bytes
		s.records += g.records
	}
	g.err, g.done = err, true
	s.writing = false
	s.wrote.Broadcast()
}

// newGroup returns an empty group, reusing a finished one's buffer.
func (s *Spool) newGroup() *group {
	if k := len(s.freeGroups); k > 0 {
		g := s.freeGroups[k-1]
		s.freeGroups = s.freeGroups[:k-1]
		return g
	}
	return &group{}
}

// freeGroup keeps g for reuse (a few; large buffers are not kept).
func (s *Spool) freeGroup(g *group) {
	if cap(g.buf) > 1<<20 || len(s.freeGroups) >= 4 {
		return
	}
	*g = group{buf: g.buf[:0]}
	s.freeGroups = append(s.freeGroups, g)
}

// written returns the sequence number after the last record written:
// records from it on are enqueued but not in the file yet (a reader must
// not skip past them). Called with mu held.
func (s *Spool) written() uint64 {
	switch {
	case s.inWrite != nil:
		return s.inWrite.first
	case s.open != nil:
		return s.open.first
	}
	return s.next
}
