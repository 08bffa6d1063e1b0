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
// before a crash are sent again after it (at-least-once delivery).
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
	// skipped and truncated); CorruptBytes their size.
	Corrupt      int
	CorruptBytes int64
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
	closed  bool

	// Group commit (group.go): the group being formed, the bytes of
	// groups not yet written, whether a group is being written, and the
	// condition its members wait on.
	open       *group
	grouped    int64
	writing    bool
	wrote      *sync.Cond
	freeGroups []*group
	stats   Stats // Corrupt and CorruptBytes, set by Open

	// acked holds the records of the segments found by Open that their
	// ack files list; Readers skip them. Never written after Open.
	acked map[uint64]struct{}

	stop chan struct{}
	done chan struct{}
}

type segment struct {
	first, last uint64 // sequence numbers; last < first while empty
	path        string
	f           *os.File // write handle while active
	ack         *os.File // the ack side file, opened on the first ack
	size        int64
	outstanding int
	sealed      bool
	pending     []byte // acknowledged sequence numbers not yet written
	dirty       bool   // written since the last fsync
}

func segName(first uint64) string { return fmt.Sprintf("%020d.seg", first) }

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
	for _, name := range names {
		seg, err := s.loadSegment(name)
		if err != nil {
			return err
		}
		if seg == nil {
			continue
		}
		s.segs = append(s.segs, seg)
		s.bytes += seg.size
		s.records += int64(seg.outstanding)
		if seg.last >= s.next {
			s.next = seg.last + 1
		}
	}
	return nil
}

// loadSegment checks one segment file. It returns nil when nothing in it
// is left to deliver (the files are then removed).
func (s *Spool) loadSegment(name string) (*segment, error) {
	b, err := os.ReadFile(name)
	if err != nil {
		return nil, fmt.Errorf("spool: %w", err)
	}
	acks := readAcks(ackPath(name))
	seg := &segment{path: name, sealed: true}
	first := true
	off := 0
	for off < len(b) {
		rec, n, err := DecodeFrame(b[off:])
		if err != nil {
			break
		}
		if first {
			seg.first, first = rec.Seq, false
		}
		seg.last = rec.Seq
		if _, ok := acks[rec.Seq]; ok {
			s.acked[rec.Seq] = struct{}{}
		} else {
			seg.outstanding++
		}
		off += n
	}
	if off < len(b) {
		s.stats.Corrupt++
		s.stats.CorruptBytes += int64(len(b) - off)
		if err := os.Truncate(name, int64(off)); err != nil {
			return nil, fmt.Errorf("spool: truncate damaged segment: %w", err)
		}
	}
	seg.size = int64(off)
	if seg.outstanding == 0 {
		removeSegment(name)
		return nil, nil
	}
	return seg, nil
}

// readAcks returns the sequence numbers listed in an ack file (a torn
// last entry is ignored; a missing file lists none).
func readAcks(path string) map[uint64]struct{} {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil
	}
	m := make(map[uint64]struct{}, len(b)/8)
	for ; len(b) >= 8; b = b[8:] {
		m[binary.LittleEndian.Uint64(b)] = struct{}{}
	}
	return m
}

func removeSegment(path string) {
	_ = os.Remove(path)
	_ = os.Remove(ackPath(path))
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
	return nil
}

// sealActive closes the active segment for writing. Called with mu held.
func (s *Spool) sealActive() {
	seg := s.active
	if seg == nil {
		return
	}
	s.active = nil
	seg.sealed = true
	_ = seg.f.Sync()
	_ = seg.f.Close()
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
	removeSegment(seg.path)
	s.bytes -= seg.size
	if i := slices.Index(s.segs, seg); i >= 0 {
		s.segs = slices.Delete(s.segs, i, i+1)
	}
}

// Ack marks record seq as done (delivered or dropped for good). Each
// record must be acknowledged at most once.
func (s *Spool) Ack(seq uint64) {
	s.mu.Lock()
	defer s.mu.Unlock()
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
			_ = s.Sync()
		}
	}
}

// Sync writes pending acknowledgements and fsyncs what changed.
func (s *Spool) Sync() error {
	var files []*os.File
	var errs []error
	s.mu.Lock()
	for _, seg := range s.segs {
		if len(seg.pending) > 0 {
			if seg.ack == nil {
				f, err := os.OpenFile(ackPath(seg.path), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
				if err != nil {
					errs = append(errs, err)
					continue
				}
				seg.ack = f
			}
			if _, err := seg.ack.Write(seg.pending); err != nil {
				errs = append(errs, err)
			}
			seg.pending = seg.pending[:0]
			files = append(files, seg.ack)
		}
		if seg.dirty && seg.f != nil {
			seg.dirty = false
			files = append(files, seg.f)
		}
	}
	s.mu.Unlock()
	// fsync outside the lock: appends go on meanwhile. A file closed by
	// a concurrent seal was synced there.
	for _, f := range files {
		if err := f.Sync(); err != nil && !errors.Is(err, os.ErrClosed) {
			errs = append(errs, err)
		}
	}
	if len(errs) > 0 {
		return fmt.Errorf("spool: sync: %w", errors.Join(errs...))
	}
	return nil
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
	s.mu.Unlock()
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

// Close releases the reader's file.
func (r *Reader) Close() {
	if r.f != nil {
		_ = r.f.Close()
		r.f = nil
	}
}

// Next returns the next record not yet read. The record's Payload is
// valid until the next call. It returns io.EOF when every record appended
// so far has been read; a later Append makes more available.
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
	if seg == nil && r.from < r.s.next {
		// No record at or after r.from is left: skip to what comes next.
		r.from = r.s.next
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
			return Record{}, fmt.Errorf("%w in %s at offset %d", err, segName(r.seg), r.pos+int64(r.r))
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
		r.s.mu.Lock()
		if seg := r.s.segmentOf(r.seg); seg != nil && seg.first == r.seg && seg.size < end {
			end = seg.size
		}
		r.s.mu.Unlock()
		if end <= r.pos+int64(r.w) {
			return Record{}, io.EOF
		}
		n, err := r.f.ReadAt(r.buf[r.w:end-r.pos], r.pos+int64(r.w))
		r.w += n
		if n == 0 {
			if err == nil || errors.Is(err, io.EOF) {
				return Record{}, io.EOF
			}
			return Record{}, fmt.Errorf("spool: read: %w", err)
		}
	}
}

// Dir returns the spool's directory.
func (s *Spool) Dir() string { return s.dir }
