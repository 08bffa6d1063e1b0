// Package spool is the gateway's on-disk write-ahead log of accepted
// hits: an append-only sequence of segment files of checksummed,
// length-prefixed records, with a side file per segment listing the
// records that were delivered (acknowledged). A segment whose records are
// all acknowledged is deleted. Opening a spool replays what is left.
//
// Durability: Append returns only after the write(2) that holds its record
// has returned (appends that arrive together share that write: group
// commit), so a crash of the process (kill -9) loses no appended record. The active segment and the acknowledgement files are
// fsynced every Options.SyncInterval, which bounds what a crash of the
// machine (power loss, kernel panic) can lose. Acknowledgements are
// written at the same interval: records delivered in the last interval
// before a crash are sent again after it (at-least-once delivery). The
// directory is fsynced after a segment or acknowledgement file is
// created. A failed write of acknowledgements keeps them to be written
// again; errors of the background fsync loop go to Options.OnError.
//
// Damage: a frame that fails its checksum ends the readable part of its
// segment. Open cuts such a tail off and counts the records it held
// (Stats.Lost); a Reader that meets one mid-segment reports it, and
// Reader.Skip gives up the rest of that segment only, counting the records
// lost. Records of other segments are unaffected.
//
// Sequence numbers increase across restarts as long as a segment is left;
// acknowledgement files without their segment (a crash between the two
// removals of a delivered segment) are removed by Open, so they can never
// acknowledge a later record with the same number.
//
// One process owns a spool directory: Open takes an exclusive lock (flock)
// on its LOCK file and fails with ErrLocked when another process holds it.
// The package does no network I/O and does not log.
package spool

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// Options bound a spool.
type Options struct {
	// MaxBytes bounds the size of all segment files; Append fails with
	// ErrFull beyond it. Zero means 1 GiB.
	MaxBytes int64
	// SegmentBytes is the size at which a segment is closed and a new one
	// started. Zero means 16 MiB.
	SegmentBytes int64
	// SyncInterval is the fsync period. Zero means 50 ms.
	SyncInterval time.Duration
	// OnError, when set, is called with each error no caller sees: op is
	// "sync" (fsync of a segment or acknowledgement file), "ack" (writing
	// acknowledgements; they are kept and written again), "dir" (fsync of
	// the directory), "seal" or "remove". It is called without the
	// spool's lock held, from the goroutine whose call met the error.
	OnError func(op string, err error)
}

// Errors of Open and Append.
var (
	ErrLocked = errors.New("spool: directory is in use by another process")
	ErrFull   = errors.New("spool: full")
	ErrClosed = errors.New("spool: closed")
)

// Stats describe a spool at one moment.
type Stats struct {
	Bytes    int64 // size of all segment files
	Records  int64 // records not yet acknowledged
	Segments int
	// Corrupt is the number of damaged segment tails found by Open (each
	// skipped and truncated); CorruptBytes their size; Lost the number of
	// records they held that were not acknowledged (a torn last write,
	// never acknowledged to its sender, counts none).
	Corrupt      int
	CorruptBytes int64
	Lost         int64
	// Writes is the number of write(2) calls that appended records since
	// Open: with group commit, far fewer than the records appended.
	Writes int64
}

// Spool is an open spool directory. Its methods are safe for concurrent use.
type Spool struct {
	dir  string
	opt  Options
	lock *os.File

	mu      sync.Mutex
	segs    []*segment // oldest first; the last one may be active
	active  *segment   // nil until the first Append after Open
	next    uint64     // sequence number of the next record
	bytes   int64
	records int64
	errq    []opError // reported under mu, passed on by unlock
	closed  bool

	// Group commit (group.go): the group being formed, the bytes of
	// groups not yet written, whether a group is being written, and the
	// condition its members wait on.
	open       *group
	inWrite    *group // the group being written, nil when none
	grouped    int64
	writing    bool
	wrote      *sync.Cond
	freeGroups []*group
	stats      Stats // Corrupt and CorruptBytes, set by Open

	// acked holds the records of the segments found by Open that their
	// ack files list; Readers skip them. Never written after Open.
	acked map[uint64]struct{}

	stop chan struct{}
	done chan struct{}
}

// segFile is what the spool writes a segment through (an *os.File; a
// test wraps it to fail or shorten writes).
type segFile interface {
	io.Writer
	Sync() error
	Close() error
}

type segment struct {
	first, last uint64 // sequence numbers; last < first while empty
	path        string
	f           segFile  // write handle while active
	ack         *os.File // the ack side file, opened on the first ack
	ackSize     int64    // whole entries written to ack
	size        int64
	outstanding int
	sealed      bool
	pending     []byte // acknowledged sequence numbers not yet written
	dirty       bool   // written since the last fsync
}

func segName(first uint64) string { return fmt.Sprintf("%020d.seg", first) }

// segFirst returns the first sequence number a segment's name gives, or 0.
func segFirst(path string) uint64 {
	n, err := strconv.ParseUint(strings.TrimSuffix(filepath.Base(path), ".seg"), 10, 64)
	if err != nil {
		return 0
	}
	return n
}

func ackPath(segPath string) string { return strings.TrimSuffix(segPath, ".seg") + ".ack" }

// Lock takes the exclusive lock of dir (created 0700 when missing) and
// returns the open lock file; closing it releases the lock.
func Lock(dir string) (*os.File, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("spool: %w", err)
	}
	f, err := os.OpenFile(filepath.Join(dir, "LOCK"), os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return nil, fmt.Errorf("spool: %w", err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		_ = f.Close()
		if errors.Is(err, syscall.EWOULDBLOCK) {
			return nil, fmt.Errorf("%w: %s", ErrLocked, dir)
		}
		return nil, fmt.Errorf("spool: lock %s: %w", dir, err)
	}
	return f, nil
}

// Open locks dir, checks every segment in it (a damaged or truncated tail
// is cut off and counted in Stats), deletes fully acknowledged segments
// and starts the fsync loop. Close releases it.
func Open(dir string, opt Options) (*Spool, error) {
	if opt.MaxBytes <= 0 {
		opt.MaxBytes = 1 << 30
	}
	if opt.SegmentBytes <= 0 {
		opt.SegmentBytes = 16 << 20
	}
	if opt.SyncInterval <= 0 {
		opt.SyncInterval = 50 * time.Millisecond
	}
	lock, err := Lock(dir)
	if err != nil {
		return nil, err
	}
	s := &Spool{dir: dir, opt: opt, lock: lock, next: 1, acked: map[uint64]struct{}{}, stop: make(chan struct{}), done: make(chan struct{})}
	s.wrote = sync.NewCond(&s.mu)
	if err := s.load(); err != nil {
		_ = lock.Close()
		return nil, err
	}
	go s.syncLoop()
	return s, nil
}

// load reads the segments found in the directory.
func (s *Spool) load() error {
	names, err := filepath.Glob(filepath.Join(s.dir, "*.seg"))
	if err != nil {
		return fmt.Errorf("spool: %w", err)
	}
	sort.Strings(names) // zero-padded first sequence numbers sort in order
	if err := removeOrphanAcks(s.dir, names); err != nil {
		return err
	}
	for i, name := range names {
		var nextFirst uint64 // 0: the last segment
		if i+1 < len(names) {
			nextFirst = segFirst(names[i+1])
		}
		seg, end, err := s.loadSegment(name, nextFirst)
		if err != nil {
			return err
		}
		// Never reuse a number: not one of a record cut off as damaged,
		// nor one a segment's name has claimed.
		s.next = max(s.next, end+1, segFirst(name))
		if seg == nil {
			continue
		}
		s.segs = append(s.segs, seg)
		s.bytes += seg.size
		s.records += int64(seg.outstanding)
	}
	return nil
}

// removeOrphanAcks deletes the ack files whose segment is gone: a crash
// between the two removals of a delivered segment leaves one, and it
// would acknowledge later records that get the same numbers.
func removeOrphanAcks(dir string, segs []string) error {
	acks, err := filepath.Glob(filepath.Join(dir, "*.ack"))
	if err != nil {
		return fmt.Errorf("spool: %w", err)
	}
	for _, a := range acks {
		if _, found := slices.BinarySearch(segs, strings.TrimSuffix(a, ".ack")+".seg"); found {
			continue
		}
		if err := os.Remove(a); err != nil && !errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("spool: remove orphaned %s: %w", filepath.Base(a), err)
		}
	}
	return nil
}

// loadSegment checks one segment file; nextFirst is the first sequence
// number of the next segment (0: none). It returns nil when nothing in it
// is left to deliver (the files are then removed), and the highest
// sequence number the segment held or may have held.
func (s *Spool) loadSegment(name string, nextFirst uint64) (*segment, uint64, error) {
	b, err := os.ReadFile(name)
	if err != nil {
		return nil, 0, fmt.Errorf("spool: %w", err)
	}
	acks, err := readAcks(ackPath(name))
	if err != nil {
		return nil, 0, err
	}
	seg := &segment{path: name, sealed: true}
	from := max(segFirst(name), 1) // the first number not yet seen
	seen := false
	off := 0
	var derr error
	for off < len(b) {
		rec, n, err := DecodeFrame(b[off:])
		if err == nil && (rec.Seq < from || rec.Seq > maxSeq) {
			err = ErrCorrupt // numbers only grow, from the segment's name on
		}
		if err != nil {
			derr = err
			break
		}
		if !seen {
			seg.first, seen = rec.Seq, true
		}
		seg.last, from = rec.Seq, rec.Seq+1
		if _, ok := acks[rec.Seq]; ok {
			s.acked[rec.Seq] = struct{}{}
		} else {
			seg.outstanding++
		}
		off += n
	}
	end := from - 1
	if off < len(b) {
		tail := b[off:]
		if last := tailEnd(tail, derr, from, nextFirst); last >= from {
			end = last
			s.stats.Lost += int64(last-from+1) - countIn(acks, from, last)
		}
		s.stats.Corrupt++
		s.stats.CorruptBytes += int64(len(tail))
		if err := os.Truncate(name, int64(off)); err != nil {
			return nil, 0, fmt.Errorf("spool: truncate damaged segment: %w", err)
		}
	}
	seg.size = int64(off)
	if seg.outstanding == 0 {
		if err := removeSegment(name); err != nil {
			return nil, 0, fmt.Errorf("spool: remove delivered segment: %w", err)
		}
		return nil, end, nil
	}
	return seg, end, nil
}

// maxSeq bounds sequence numbers: a larger one is damage (a spool would
// need centuries to get there), and arithmetic on numbers stays clear of
// overflow.
const maxSeq = 1 << 62

// minFrame is the size of a frame with an empty payload.
const minFrame = frameHeader + recordHead

// tailEnd returns the last sequence number a damaged segment tail may
// have held (from-1: none). from is the number after the last good record,
// derr what decoding the tail's first frame gave. The next segment's first
// number bounds it (capped by how many frames fit in the tail); without a
// next segment, the highest-numbered intact frame found after the damage
// does, else the damaged frame alone. A tail that is only a frame cut short
// at the end of the last segment is a write that never returned: it held
// no accepted record.
func tailEnd(tail []byte, derr error, from, nextFirst uint64) uint64 {
	fit := from + max(uint64(len(tail)/minFrame), 1) - 1 // the most frames the tail can hold
	switch {
	case nextFirst > from:
		return min(nextFirst-1, fit)
	case nextFirst != 0:
		return from - 1
	}
	if last := scanTail(tail, from, fit); last >= from {
		return last
	}
	if errors.Is(derr, ErrCorrupt) {
		return from
	}
	return from - 1
}

// scanTail looks for intact frames after the damaged one at the start of
// tail and returns the highest sequence number among them in [from, fit]
// (from-1: none). A frame is trusted only with a plausible number and a
// matching checksum.
func scanTail(tail []byte, from, fit uint64) uint64 {
	last := from - 1
	for off := 1; off+minFrame <= len(tail); {
		n := frameLen(tail[off:])
		if n == 0 || off+n > len(tail) {
			off++
			continue
		}
		if seq := binary.LittleEndian.Uint64(tail[off+frameHeader:]); seq < from || seq > fit {
			off++
			continue
		}
		rec, n, err := DecodeFrame(tail[off:])
		if err != nil {
			off++
			continue
		}
		last = max(last, rec.Seq)
		off += n
	}
	return last
}

// countIn returns how many of the numbers in set lie in [lo, hi].
func countIn(set map[uint64]struct{}, lo, hi uint64) int64 {
	var n int64
	for q := range set {
		if lo <= q && q <= hi {
			n++
		}
	}
	return n
}

// readAcks returns the sequence numbers listed in an ack file (a missing
// file lists none). A torn last entry (a crash mid-write) is cut off, so
// that later entries are appended at whole-entry offsets.
func readAcks(path string) (map[uint64]struct{}, error) {
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("spool: %w", err)
	}
	if torn := len(b) % 8; torn != 0 {
		b = b[:len(b)-torn]
		if err := os.Truncate(path, int64(len(b))); err != nil {
			return nil, fmt.Errorf("spool: trim torn acknowledgement: %w", err)
		}
	}
	m := make(map[uint64]struct{}, len(b)/8)
	for ; len(b) >= 8; b = b[8:] {
		m[binary.LittleEndian.Uint64(b)] = struct{}{}
	}
	return m, nil
}

// syncDir fsyncs a directory, so that a file created or renamed in it
// survives a crash of the machine.
func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	err = d.Sync()
	return errors.Join(err, d.Close())
}

// removeSegment deletes a segment and then its ack file (a crash between
// the two leaves an orphaned ack file, which Open removes).
func removeSegment(path string) error {
	err := os.Remove(path)
	if err2 := os.Remove(ackPath(path)); !errors.Is(err2, os.ErrNotExist) {
		err = errors.Join(err, err2)
	}
	return err
}

// Append writes one record accepted at (Unix nanoseconds) and returns its
// sequence number once the record is in the segment file. The payload is
// copied. Appends that arrive together share one write(2) (group commit,
// group.go). It fails with ErrFull when the spool would exceed
// Options.MaxBytes, and with the write's error when the disk refuses it
// (nothing of that write is appended then).
func (s *Spool) Append(at int64, payload []byte) (uint64, error) {
	t, err := s.Enqueue(at, payload)
	if err != nil {
		return 0, err
	}
	return t.Wait()
}

// rotate seals the active segment and starts a new one. Called with mu held.
func (s *Spool) rotateTo(first uint64) error {
	s.sealActive()
	path := filepath.Join(s.dir, segName(first))
	f, err := os.OpenFile(path, os.O_CREATE|os.O_EXCL|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return fmt.Errorf("spool: new segment: %w", err)
	}
	seg := &segment{first: first, last: first - 1, path: path, f: f}
	s.segs = append(s.segs, seg)
	s.active = seg
	if err := syncDir(s.dir); err != nil {
		s.report("dir", err)
	}
	return nil
}

// report queues an error no caller sees for Options.OnError; unlock
// passes it on. Called with mu held.
func (s *Spool) report(op string, err error) {
	if s.opt.OnError != nil {
		s.errq = append(s.errq, opError{op, fmt.Errorf("spool: %s: %w", op, err)})
	}
}

type opError struct {
	op  string
	err error
}

// unlock releases mu, then passes the errors reported meanwhile to
// Options.OnError (which may log: not under the lock appends wait on).
func (s *Spool) unlock() {
	q := s.errq
	s.errq = nil
	s.mu.Unlock()
	for _, e := range q {
		s.opt.OnError(e.op, e.err)
	}
}

// sealActive closes the active segment for writing. Called with mu held.
func (s *Spool) sealActive() {
	seg := s.active
	if seg == nil {
		return
	}
	s.active = nil
	seg.sealed = true
	if err := errors.Join(seg.f.Sync(), seg.f.Close()); err != nil {
		s.report("seal", err)
	}
	seg.f = nil
	seg.dirty = false
	if seg.outstanding == 0 {
		s.dropSegment(seg)
	}
}

// dropSegment deletes a segment whose records are all acknowledged.
// Called with mu held.
func (s *Spool) dropSegment(seg *segment) {
	if seg.ack != nil {
		_ = seg.ack.Close()
		seg.ack = nil
	}
	if err := removeSegment(seg.path); err != nil {
		s.report("remove", err)
	}
	s.bytes -= seg.size
	if i := slices.Index(s.segs, seg); i >= 0 {
		s.segs = slices.Delete(s.segs, i, i+1)
	}
}

// Ack marks record seq as done (delivered or dropped for good). Each
// record must be acknowledged at most once.
func (s *Spool) Ack(seq uint64) {
	s.mu.Lock()
	defer s.unlock()
	seg := s.segmentOf(seq)
	if seg == nil || seg.outstanding == 0 {
		return
	}
	seg.outstanding--
	s.records--
	if seg.sealed && seg.outstanding == 0 {
		s.dropSegment(seg)
		return
	}
	seg.pending = binary.LittleEndian.AppendUint64(seg.pending, seq)
}

// discard gives up the records from seq on of the segment that starts
// at first (a damaged part no reader can get past): they are counted as
// acknowledged, and written as such, so that Open does not count them
// again. The segment is sealed if it is active (later records go to a new
// one) and deleted once nothing in it is outstanding. It returns how many
// records were given up and the segment's last sequence number.
func (s *Spool) discard(first, seq uint64) (int, uint64) {
	s.mu.Lock()
	defer s.unlock()
	seg := s.segmentOf(first)
	if seg == nil || seg.first != first {
		return 0, seq - 1 // deleted meanwhile: everything in it was done
	}
	n := 0
	for q := max(seq, seg.first); q <= seg.last && n < seg.outstanding; q++ {
		if _, ok := s.acked[q]; ok {
			continue
		}
		n++
		seg.pending = binary.LittleEndian.AppendUint64(seg.pending, q)
	}
	seg.outstanding -= n
	s.records -= int64(n)
	switch {
	case seg == s.active:
		s.sealActive() // later records go to a new segment; deletes it when done
	case seg.outstanding == 0:
		s.dropSegment(seg)
	}
	return n, seg.last
}

// segmentOf returns the segment holding seq. Called with mu held.
func (s *Spool) segmentOf(seq uint64) *segment {
	i := sort.Search(len(s.segs), func(i int) bool { return s.segs[i].last >= seq })
	if i < len(s.segs) && s.segs[i].first <= seq && seq <= s.segs[i].last {
		return s.segs[i]
	}
	return nil
}

// Next returns the sequence number the next Append will get.
func (s *Spool) Next() uint64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.next
}

// Stats returns the spool's size and content now.
func (s *Spool) Stats() Stats {
	s.mu.Lock()
	defer s.mu.Unlock()
	st := s.stats
	st.Bytes, st.Records, st.Segments = s.bytes, s.records, len(s.segs)
	return st
}

func (s *Spool) syncLoop() {
	defer close(s.done)
	t := time.NewTicker(s.opt.SyncInterval)
	defer t.Stop()
	for {
		select {
		case <-s.stop:
			return
		case <-t.C:
			// Sync has reported each error by op already.
			_ = s.Sync()
		}
	}
}

// Sync writes pending acknowledgements and fsyncs what changed. Each
// error is also passed to Options.OnError; acknowledgements that could not
// be written stay pending for the next Sync.
func (s *Spool) Sync() error {
	var files []segFile
	var failed []opError // passed on once the lock is released
	fail := func(op string, err error) {
		failed = append(failed, opError{op, fmt.Errorf("spool: %s: %w", op, err)})
	}
	created := false
	s.mu.Lock()
	for _, seg := range s.segs {
		if len(seg.pending) > 0 {
			if seg.ack == nil {
				f, err := os.OpenFile(ackPath(seg.path), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
				if err != nil {
					fail("ack", err)
					continue
				}
				fi, err := f.Stat()
				if err != nil {
					_ = f.Close()
					fail("ack", err)
					continue
				}
				size := fi.Size()
				if torn := size % 8; torn != 0 { // left by an earlier failed write
					if err := f.Truncate(size - torn); err != nil {
						_ = f.Close()
						fail("ack", err)
						continue
					}
					size -= torn
				}
				seg.ack, seg.ackSize, created = f, size, true
			}
			if err := seg.writeAcks(); err != nil {
				fail("ack", err)
			}
			if seg.ack != nil {
				files = append(files, seg.ack)
			}
		}
		if seg.dirty && seg.f != nil {
			seg.dirty = false
			files = append(files, seg.f)
		}
	}
	s.mu.Unlock()
	if created {
		if err := syncDir(s.dir); err != nil {
			fail("dir", err)
		}
	}
	// fsync outside the lock: appends go on meanwhile. A file closed by
	// a concurrent seal was synced there.
	for _, f := range files {
		if err := f.Sync(); err != nil && !errors.Is(err, os.ErrClosed) {
			fail("sync", err)
		}
	}
	errs := make([]error, len(failed))
	for i, e := range failed {
		errs[i] = e.err
		if s.opt.OnError != nil {
			s.opt.OnError(e.op, e.err)
		}
	}
	return errors.Join(errs...)
}

// writeAcks appends the pending acknowledgements to the ack file. What is
// not written stays pending; a torn entry is cut off again, so that the
// file holds whole entries only. Called with the spool's mu held.
func (seg *segment) writeAcks() error {
	n, err := seg.ack.Write(seg.pending)
	whole := n - n%8
	seg.ackSize += int64(whole)
	seg.pending = seg.pending[:copy(seg.pending, seg.pending[whole:])]
	if err == nil {
		return nil
	}
	if n != whole {
		if terr := seg.ack.Truncate(seg.ackSize); terr != nil {
			// The file now ends mid-entry: write no more to it. Open
			// trims the torn entry; the pending ones are written to a
			// fresh handle next time.
			_ = seg.ack.Close()
			seg.ack = nil
			return errors.Join(err, terr)
		}
	}
	return err
}

// Close writes pending acknowledgements, fsyncs, closes every file and
// releases the lock. Records not acknowledged stay for the next Open.
func (s *Spool) Close() error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil
	}
	s.closed = true
	for s.writing || s.open != nil {
		s.wrote.Wait() // appends already taken are written first
	}
	s.mu.Unlock()
	close(s.stop)
	<-s.done
	err := s.Sync()
	s.mu.Lock()
	s.sealActive()
	for _, seg := range s.segs {
		if seg.ack != nil {
			_ = seg.ack.Close()
			seg.ack = nil
		}
	}
	s.unlock()
	return errors.Join(err, s.lock.Close())
}

// Reader reads records in sequence order, skipping those acknowledged
// before Open. It is not safe for concurrent use; one per consumer.
type Reader struct {
	s    *Spool
	from uint64 // the next sequence number wanted
	f    *os.File
	seg  uint64 // first sequence number of the open segment
	pos  int64  // file offset of buf[0]
	buf  []byte
	r, w int // unread bytes are buf[r:w]
}

// NewReader returns a reader positioned at the oldest record.
func (s *Spool) NewReader() *Reader { return &Reader{s: s, buf: make([]byte, 256<<10)} }

// Seek moves the reader to the first record with sequence number >= seq.
func (r *Reader) Seek(seq uint64) {
	if seq > r.from {
		r.from = seq
	}
}

// Position returns the sequence number of the next record Next looks for.
func (r *Reader) Position() uint64 { return r.from }

// Skip gives up the rest of the segment in which Next reported damage
// (an error wrapping ErrCorrupt): its records from the one Next looked for
// on are acknowledged as lost, and the reader goes on with the next
// segment. It returns how many records were lost (acknowledged ones, and
// those before the reader's position, are not counted).
func (r *Reader) Skip() int {
	if r.seg == 0 {
		return 0
	}
	r.Close()
	n, last := r.s.discard(r.seg, r.from)
	r.from = max(r.from, last+1)
	return n
}

// Close releases the reader's file.
func (r *Reader) Close() {
	if r.f != nil {
		_ = r.f.Close()
		r.f = nil
	}
}

// Next returns the next record not yet read. The record's Payload is
// valid until the next call. It returns io.EOF when every record appended
// so far has been read; a later Append makes more available. An error
// wrapping ErrCorrupt means the rest of the current segment cannot be read
// (damaged, or the disk failed to read it): call Skip to go on. Any other
// error (a segment that cannot be opened) may pass: call Next again later.
func (r *Reader) Next() (Record, error) {
	for {
		if r.f == nil {
			ok, err := r.open()
			if err != nil || !ok {
				return Record{}, err
			}
		}
		rec, err := r.frame()
		if errors.Is(err, io.EOF) {
			// End of what is written. An active segment may grow: stay.
			// A sealed one may have taken a last frame between the read
			// and the seal: read once more, then move on.
			r.s.mu.Lock()
			seg := r.s.segmentOf(r.seg)
			sealed := seg == nil || seg.first != r.seg || seg.sealed
			r.s.mu.Unlock()
			if !sealed {
				return Record{}, io.EOF
			}
			if rec, err = r.frame(); errors.Is(err, io.EOF) {
				r.Close()
				continue
			}
		}
		if err != nil {
			return Record{}, err
		}
		if rec.Seq < r.from {
			continue
		}
		r.from = rec.Seq + 1
		if _, ok := r.s.acked[rec.Seq]; ok {
			continue
		}
		return rec, nil
	}
}

// open opens the segment holding r.from (or the next one after it).
func (r *Reader) open() (bool, error) {
	r.s.mu.Lock()
	var seg *segment
	for _, sg := range r.s.segs {
		if sg.last >= r.from && sg.last >= sg.first {
			seg = sg
			break
		}
	}
	var path string
	if written := r.s.written(); seg == nil && r.from < written {
		// No record at or after r.from is left: skip to what comes next.
		r.from = written
	}
	if seg != nil {
		path, r.seg = seg.path, seg.first
		if r.from < seg.first {
			r.from = seg.first
		}
	}
	r.s.mu.Unlock()
	if seg == nil {
		return false, io.EOF
	}
	f, err := os.Open(path)
	if errors.Is(err, os.ErrNotExist) {
		// Acknowledged and deleted meanwhile: everything in it is done.
		r.s.mu.Lock()
		if seg.last+1 > r.from {
			r.from = seg.last + 1
		}
		r.s.mu.Unlock()
		return r.open()
	}
	if err != nil {
		return false, fmt.Errorf("spool: %w", err)
	}
	r.f, r.pos, r.r, r.w = f, 0, 0, 0
	return true, nil
}

// frame decodes the next whole frame of the open segment, reading more
// of the file when needed. io.EOF: no whole frame is written yet.
func (r *Reader) frame() (Record, error) {
	for {
		if rec, n, err := DecodeFrame(r.buf[r.r:r.w]); err == nil {
			r.r += n
			return rec, nil
		} else if errors.Is(err, ErrCorrupt) {
			return Record{}, r.damaged(nil)
		}
		// Short: compact, make room for the whole frame, read more.
		if r.r > 0 {
			r.pos += int64(r.r)
			r.w = copy(r.buf, r.buf[r.r:r.w])
			r.r = 0
		}
		if need := frameLen(r.buf[:r.w]); need > len(r.buf) {
			r.buf = append(r.buf[:r.w], make([]byte, need-r.w)...)
		}
		// Read no further than the appends that have returned: a frame
		// being written is not there yet.
		end := r.pos + int64(len(r.buf))
		committed := int64(-1) // unknown once the segment is deleted
		r.s.mu.Lock()
		if seg := r.s.segmentOf(r.seg); seg != nil && seg.first == r.seg {
			committed = seg.size
		}
		r.s.mu.Unlock()
		if committed >= 0 && committed < end {
			end = committed
		}
		if end <= r.pos+int64(r.w) {
			if r.w > 0 && end == committed {
				// Appends end on whole frames: a frame that runs past
				// them has a damaged length.
				return Record{}, r.damaged(nil)
			}
			return Record{}, io.EOF
		}
		n, err := r.f.ReadAt(r.buf[r.w:end-r.pos], r.pos+int64(r.w))
		r.w += n
		if n == 0 {
			if err == nil || errors.Is(err, io.EOF) {
				return Record{}, io.EOF
			}
			return Record{}, r.damaged(err)
		}
	}
}

// damaged returns the error of an unreadable frame at the reader's
// position; err is the read's error, if any.
func (r *Reader) damaged(err error) error {
	at := r.pos + int64(r.r)
	if err != nil {
		return fmt.Errorf("%w: %s at offset %d: %w", ErrCorrupt, segName(r.seg), at, err)
	}
	return fmt.Errorf("%w in %s at offset %d", ErrCorrupt, segName(r.seg), at)
}

// Dir returns the spool's directory.
func (s *Spool) Dir() string { return s.dir }
