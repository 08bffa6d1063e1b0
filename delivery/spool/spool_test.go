package spool

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

func open(t *testing.T, dir string, opt Options) *Spool {
	t.Helper()
	s, err := Open(dir, opt)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s
}

func appendN(t *testing.T, s *Spool, from, n int) []uint64 {
	t.Helper()
	var seqs []uint64
	for i := from; i < from+n; i++ {
		seq, err := s.Append(int64(i), fmt.Appendf(nil, "record-%d", i))
		if err != nil {
			t.Fatalf("Append %d: %v", i, err)
		}
		seqs = append(seqs, seq)
	}
	return seqs
}

// readAll drains r and returns the payloads it read.
func readAll(t *testing.T, r *Reader) []string {
	t.Helper()
	var got []string
	for {
		rec, err := r.Next()
		if errors.Is(err, io.EOF) {
			return got
		}
		if err != nil {
			t.Fatalf("Next: %v", err)
		}
		got = append(got, string(rec.Payload))
	}
}

func TestFrameRoundTrip(t *testing.T) {
	b := AppendFrame(nil, 42, 7, []byte("payload"))
	rec, n, err := DecodeFrame(b)
	if err != nil || n != len(b) || rec.Seq != 42 || rec.At != 7 || string(rec.Payload) != "payload" {
		t.Fatalf("DecodeFrame = %+v, %d, %v", rec, n, err)
	}
	for i := range b {
		if _, _, err := DecodeFrame(b[:i]); !errors.Is(err, ErrShort) && !errors.Is(err, ErrCorrupt) {
			t.Fatalf("DecodeFrame(b[:%d]) err = %v, want short or corrupt", i, err)
		}
	}
	bad := bytes.Clone(b)
	bad[len(bad)-1] ^= 1
	if _, _, err := DecodeFrame(bad); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("flipped bit: err = %v, want ErrCorrupt", err)
	}
}

func TestReplayOrderAndAcks(t *testing.T) {
	dir := t.TempDir()
	s, err := Open(dir, Options{SegmentBytes: 100}) // a few records per segment
	if err != nil {
		t.Fatal(err)
	}
	seqs := appendN(t, s, 0, 10)
	for _, i := range []int{0, 1, 2, 5} {
		s.Ack(seqs[i])
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s = open(t, dir, Options{SegmentBytes: 100})
	got := readAll(t, s.NewReader())
	want := []string{"record-3", "record-4", "record-6", "record-7", "record-8", "record-9"}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("replay = %v, want %v (oldest first, acknowledged skipped)", got, want)
	}
	if st := s.Stats(); st.Records != 6 {
		t.Fatalf("Records = %d, want 6", st.Records)
	}
	// New records continue the sequence after the replayed ones.
	if seq, _ := s.Append(0, []byte("x")); seq != seqs[9]+1 {
		t.Fatalf("next seq = %d, want %d", seq, seqs[9]+1)
	}
}

func TestAckedSegmentsDeleted(t *testing.T) {
	dir := t.TempDir()
	s := open(t, dir, Options{SegmentBytes: 64})
	seqs := appendN(t, s, 0, 20)
	for _, q := range seqs {
		s.Ack(q)
	}
	appendN(t, s, 20, 1) // seals the last full segment
	segs, _ := filepath.Glob(filepath.Join(dir, "*.seg"))
	if len(segs) != 1 {
		t.Fatalf("segments left = %v, want only the active one", segs)
	}
	if st := s.Stats(); st.Records != 1 || st.Bytes <= 0 {
		t.Fatalf("Stats = %+v", st)
	}
}

func TestReaderFollowsAppends(t *testing.T) {
	s := open(t, t.TempDir(), Options{SegmentBytes: 80})
	r := s.NewReader()
	defer r.Close()
	if _, err := r.Next(); !errors.Is(err, io.EOF) {
		t.Fatalf("empty spool: %v, want EOF", err)
	}
	var got []string
	for i := range 30 {
		appendN(t, s, i, 1)
		got = append(got, readAll(t, r)...)
	}
	if len(got) != 30 || got[0] != "record-0" || got[29] != "record-29" {
		t.Fatalf("read %d records: %v", len(got), got)
	}
	r.Seek(s.Next())
	appendN(t, s, 100, 1)
	if got := readAll(t, r); fmt.Sprint(got) != "[record-100]" {
		t.Fatalf("after Seek: %v", got)
	}
}

func TestCorruptTailSkippedAndCounted(t *testing.T) {
	dir := t.TempDir()
	s, _ := Open(dir, Options{})
	appendN(t, s, 0, 5)
	_ = s.Close()
	segs, _ := filepath.Glob(filepath.Join(dir, "*.seg"))
	b, _ := os.ReadFile(segs[0])
	one := len(b) / 5
	b[3*one+10] ^= 0xff                                                      // damage record 3
	if err := os.WriteFile(segs[0], append(b, 1, 2, 3), 0o600); err != nil { // and a torn tail
		t.Fatal(err)
	}
	s = open(t, dir, Options{})
	st := s.Stats()
	if st.Corrupt != 1 || st.Records != 3 {
		t.Fatalf("Stats = %+v, want 1 corrupt tail and 3 records", st)
	}
	if got := readAll(t, s.NewReader()); len(got) != 3 {
		t.Fatalf("replayed %v", got)
	}
	// Truncated files are also fine: nothing panics, nothing is invented.
	for cut := range len(b) {
		d := t.TempDir()
		_ = os.WriteFile(filepath.Join(d, segName(1)), b[:cut], 0o600)
		s2, err := Open(d, Options{})
		if err != nil {
			t.Fatal(err)
		}
		if n := len(readAll(t, s2.NewReader())); n > 3 {
			t.Fatalf("cut %d: %d records", cut, n)
		}
		_ = s2.Close()
	}
}

func TestLockedDirRefused(t *testing.T) {
	dir := t.TempDir()
	open(t, dir, Options{})
	if _, err := Open(dir, Options{}); !errors.Is(err, ErrLocked) {
		t.Fatalf("second Open: %v, want ErrLocked", err)
	}
}

func TestFull(t *testing.T) {
	s := open(t, t.TempDir(), Options{MaxBytes: 200})
	var err error
	n := 0
	for ; err == nil && n < 100; n++ {
		_, err = s.Append(0, make([]byte, 30))
	}
	if !errors.Is(err, ErrFull) || n != 4 { // 54-byte frames: 3 fit in 200
		t.Fatalf("after %d appends: %v, want ErrFull on the 4th", n, err)
	}
	if st := s.Stats(); st.Bytes > 200 {
		t.Fatalf("Bytes = %d over the bound", st.Bytes)
	}
}

func TestFilesArePrivate(t *testing.T) {
	dir := t.TempDir()
	s := open(t, dir, Options{SyncInterval: time.Millisecond})
	seqs := appendN(t, s, 0, 2)
	s.Ack(seqs[0])
	if err := s.Sync(); err != nil {
		t.Fatal(err)
	}
	entries, _ := os.ReadDir(dir)
	if len(entries) < 3 {
		t.Fatalf("files: %v", entries)
	}
	for _, e := range entries {
		fi, _ := e.Info()
		if fi.Mode().Perm() != 0o600 {
			t.Errorf("%s mode %v, want 0600", e.Name(), fi.Mode().Perm())
		}
	}
}

func FuzzDecodeFrame(f *testing.F) {
	f.Add(AppendFrame(nil, 1, 2, []byte("GET /g/collect")))
	f.Add([]byte{})
	f.Add([]byte{0xff, 0xff, 0xff, 0xff, 0, 0, 0, 0})
	f.Fuzz(func(t *testing.T, b []byte) {
		rec, n, err := DecodeFrame(b)
		if err != nil {
			return
		}
		if n > len(b) || n != frameHeader+recordHead+len(rec.Payload) {
			t.Fatalf("n = %d for %d bytes", n, len(b))
		}
		again := AppendFrame(nil, rec.Seq, rec.At, rec.Payload)
		if !bytes.Equal(again, b[:n]) {
			t.Fatalf("re-encoded frame differs")
		}
	})
}

// frameAt describes one frame of a segment file.
type frameAt struct {
	seq      uint64
	off, end int
}

// framesOf decodes every frame of a segment file.
func framesOf(t *testing.T, path string) []frameAt {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var fs []frameAt
	for off := 0; off < len(b); {
		rec, n, err := DecodeFrame(b[off:])
		if err != nil {
			t.Fatalf("%s at %d: %v", path, off, err)
		}
		fs = append(fs, frameAt{rec.Seq, off, off + n})
		off += n
	}
	return fs
}

// damage overwrites two bytes in the middle of frame i of a segment file
// and returns the segment's frames.
func damage(t *testing.T, path string, i int) []frameAt {
	t.Helper()
	fs := framesOf(t, path)
	f, err := os.OpenFile(path, os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.WriteAt([]byte{0xff, 0xff}, int64(fs[i].off+frameHeader+recordHead)); err != nil {
		t.Fatal(err)
	}
	return fs
}

func segments(t *testing.T, dir string) []string {
	t.Helper()
	segs, err := filepath.Glob(filepath.Join(dir, "*.seg"))
	if err != nil {
		t.Fatal(err)
	}
	return segs
}

// TestDamageMidSegmentWhileRunning: a reader that meets a damaged record
// gives up only the rest of that segment, counts every record lost there,
// and reads every later segment.
func TestDamageMidSegmentWhileRunning(t *testing.T) {
	dir := t.TempDir()
	s := open(t, dir, Options{SegmentBytes: 330}) // about 10 records a segment
	appendN(t, s, 0, 40)
	segs := segments(t, dir)
	if len(segs) < 4 {
		t.Fatalf("%d segments, want 4 or more", len(segs))
	}
	fs := damage(t, segs[1], 4)
	wantLost := len(fs) - 4
	r := s.NewReader()
	defer r.Close()
	var read, lost int
	var corrupt int
	for {
		rec, err := r.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if errors.Is(err, ErrCorrupt) {
			corrupt++
			lost += r.Skip()
			continue
		}
		if err != nil {
			t.Fatal(err)
		}
		read++
		s.Ack(rec.Seq)
	}
	if corrupt != 1 || lost != wantLost || read != 40-wantLost {
		t.Fatalf("read %d, lost %d in %d damaged segments; want %d read, %d lost in 1", read, lost, corrupt, 40-wantLost, wantLost)
	}
	if st := s.Stats(); st.Records != 0 {
		t.Fatalf("Records = %d after every record was read or lost", st.Records)
	}
	// Nothing is counted twice after a restart.
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s2 := open(t, dir, Options{SegmentBytes: 330})
	if st := s2.Stats(); st.Records != 0 || st.Lost != 0 {
		t.Fatalf("after reopen: %+v, want nothing left and nothing lost again", st)
	}
}

// TestDamageInActiveSegment: damage in the segment still being written
// seals it; later appends go to a new segment and are read.
func TestDamageInActiveSegment(t *testing.T) {
	dir := t.TempDir()
	s := open(t, dir, Options{})
	appendN(t, s, 0, 10)
	segs := segments(t, dir)
	damage(t, segs[0], 3)
	r := s.NewReader()
	defer r.Close()
	got := 0
	for {
		_, err := r.Next()
		if errors.Is(err, ErrCorrupt) {
			if n := r.Skip(); n != 7 {
				t.Fatalf("Skip = %d, want 7", n)
			}
			continue
		}
		if err != nil {
			break
		}
		got++
	}
	appendN(t, s, 10, 2)
	if rest := readAll(t, r); got != 3 || fmt.Sprint(rest) != "[record-10 record-11]" {
		t.Fatalf("read %d before the damage, %v after it", got, rest)
	}
	if st := s.Stats(); st.Records != 5 {
		t.Fatalf("Records = %d, want 3 + 2 unacknowledged", st.Records)
	}
}

// TestDamageFoundAtOpen: a segment damaged while the gateway was stopped
// counts every record lost, whether it is followed by another segment or
// is the last one; a torn last write counts none.
func TestDamageFoundAtOpen(t *testing.T) {
	tests := []struct {
		name  string
		seg   int // which segment: -1 the last
		frame int
	}{
		{"second of four", 1, 3},
		{"first record of a segment", 1, 0},
		{"last segment", -1, 2},
		{"last record of the last segment", -1, -1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			s, err := Open(dir, Options{SegmentBytes: 330})
			if err != nil {
				t.Fatal(err)
			}
			appendN(t, s, 0, 38)
			s.Ack(1) // an acknowledged record elsewhere changes nothing
			if err := s.Close(); err != nil {
				t.Fatal(err)
			}
			segs := segments(t, dir)
			i := tt.seg
			if i < 0 {
				i = len(segs) - 1
			}
			fs := framesOf(t, segs[i])
			k := tt.frame
			if k < 0 {
				k = len(fs) - 1
			}
			damage(t, segs[i], k)
			wantLost := len(fs) - k
			s = open(t, dir, Options{SegmentBytes: 330})
			st := s.Stats()
			if st.Lost != int64(wantLost) || st.Corrupt != 1 || st.Records != int64(37-wantLost) {
				t.Fatalf("Stats = %+v, want %d lost in 1 tail and %d records", st, wantLost, 37-wantLost)
			}
			if got := readAll(t, s.NewReader()); len(got) != 37-wantLost {
				t.Fatalf("replayed %d", len(got))
			}
			// No number of a lost record is given again.
			if seq, _ := s.Append(0, []byte("x")); seq != 39 {
				t.Fatalf("next seq = %d, want 39", seq)
			}
		})
	}
}

func TestTornWriteAtEndLosesNothing(t *testing.T) {
	dir := t.TempDir()
	s, _ := Open(dir, Options{})
	appendN(t, s, 0, 5)
	_ = s.Close()
	seg := segments(t, dir)[0]
	frame := AppendFrame(nil, 6, 0, []byte("never acknowledged"))
	f, _ := os.OpenFile(seg, os.O_WRONLY|os.O_APPEND, 0)
	_, _ = f.Write(frame[:len(frame)-3])
	_ = f.Close()
	s = open(t, dir, Options{})
	if st := s.Stats(); st.Lost != 0 || st.Corrupt != 1 || st.Records != 5 {
		t.Fatalf("Stats = %+v, want a torn tail, nothing lost, 5 records", st)
	}
}

// TestTornAckEntryTrimmed: an ack file ending in a partial entry (a crash
// mid-write) is trimmed on Open, so later acknowledgements stay aligned.
func TestTornAckEntryTrimmed(t *testing.T) {
	dir := t.TempDir()
	s, _ := Open(dir, Options{})
	seqs := appendN(t, s, 0, 10)
	for _, q := range seqs[:3] {
		s.Ack(q)
	}
	_ = s.Close()
	ack := strings.TrimSuffix(segments(t, dir)[0], ".seg") + ".ack"
	f, _ := os.OpenFile(ack, os.O_WRONLY|os.O_APPEND, 0)
	_, _ = f.Write([]byte{9, 9, 9})
	_ = f.Close()

	s, _ = Open(dir, Options{})
	if b, err := os.ReadFile(ack); err != nil || len(b) != 3*8 {
		t.Fatalf("ack file after Open: %d bytes, %v; want 3 whole entries", len(b), err)
	}
	s.Ack(seqs[5])
	_ = s.Close()
	s = open(t, dir, Options{})
	got := readAll(t, s.NewReader())
	want := "[record-3 record-4 record-6 record-7 record-8 record-9]"
	if fmt.Sprint(got) != want {
		t.Fatalf("replay = %v, want %v", got, want)
	}
}

// TestOrphanAckRemoved: an ack file whose segment is gone (a crash between
// the two removals) must not acknowledge new records with its numbers.
func TestOrphanAckRemoved(t *testing.T) {
	dir := t.TempDir()
	if err := os.MkdirAll(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	var entries []byte
	for q := uint64(1); q <= 3; q++ {
		entries = binary.LittleEndian.AppendUint64(entries, q)
	}
	orphan := filepath.Join(dir, strings.TrimSuffix(segName(1), ".seg")+".ack")
	if err := os.WriteFile(orphan, entries, 0o600); err != nil {
		t.Fatal(err)
	}
	s, _ := Open(dir, Options{})
	if seqs := appendN(t, s, 0, 3); seqs[0] != 1 {
		t.Fatalf("first seq %d: the test needs the orphan's numbers reused", seqs[0])
	}
	_ = s.Close()
	s = open(t, dir, Options{})
	if got := readAll(t, s.NewReader()); len(got) != 3 {
		t.Fatalf("replayed %v, want all 3 records", got)
	}
}

// failingAck makes the next ack write of seg fail: its handle is
// replaced by a read-only one.
func failingAck(t *testing.T, s *Spool, seq uint64) {
	t.Helper()
	s.mu.Lock()
	defer s.mu.Unlock()
	seg := s.segmentOf(seq)
	ro, err := os.Open(ackPath(seg.path))
	if err != nil {
		t.Fatal(err)
	}
	_ = seg.ack.Close()
	seg.ack = ro
}

// TestAckWriteErrorKeepsPending: a failed write of acknowledgements is
// reported and retried, not forgotten.
func TestAckWriteErrorKeepsPending(t *testing.T) {
	dir := t.TempDir()
	var ops []string
	s, _ := Open(dir, Options{SyncInterval: time.Hour, OnError: func(op string, err error) { ops = append(ops, op) }})
	seqs := appendN(t, s, 0, 4)
	s.Ack(seqs[0])
	if err := s.Sync(); err != nil {
		t.Fatal(err)
	}
	failingAck(t, s, seqs[1])
	s.Ack(seqs[1])
	if err := s.Sync(); err == nil || fmt.Sprint(ops) != "[ack]" {
		t.Fatalf("Sync = %v, reported %v; want an error reported as ack", err, ops)
	}
	s.mu.Lock()
	seg := s.segmentOf(seqs[1])
	_ = seg.ack.Close()
	seg.ack = nil // the disk is back: the next Sync opens it again
	s.mu.Unlock()
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s = open(t, dir, Options{})
	if got := readAll(t, s.NewReader()); fmt.Sprint(got) != "[record-2 record-3]" {
		t.Fatalf("replay = %v, want the two records never acknowledged", got)
	}
}

// TestConcurrentAppendAckRead: appenders, one reader and ackers in
// parallel (run under -race): every record is read once, in order, and
// acknowledging them all empties the spool.
func TestConcurrentAppendAckRead(t *testing.T) {
	dir := t.TempDir()
	s := open(t, dir, Options{SegmentBytes: 2048, SyncInterval: time.Millisecond})
	const appenders, each = 4, 300
	acks := make(chan uint64, 64)
	var ackers sync.WaitGroup
	for range 3 {
		ackers.Add(1)
		go func() {
			defer ackers.Done()
			for q := range acks {
				s.Ack(q)
			}
		}()
	}
	appended := make(chan struct{}, appenders*each)
	var wg sync.WaitGroup
	for a := range appenders {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range each {
				if _, err := s.Append(int64(a), fmt.Appendf(nil, "a%d-%d", a, i)); err != nil {
					t.Errorf("Append: %v", err)
					return
				}
				appended <- struct{}{}
			}
		}()
	}
	r := s.NewReader()
	defer r.Close()
	var last uint64
	seen := map[string]bool{}
	for len(seen) < appenders*each {
		rec, err := r.Next()
		if errors.Is(err, io.EOF) {
			<-appended // wait for another append (some were read already)
			continue
		}
		if err != nil {
			t.Fatalf("Next: %v", err)
		}
		if rec.Seq <= last || seen[string(rec.Payload)] {
			t.Fatalf("record %d %q after %d: out of order or read twice", rec.Seq, rec.Payload, last)
		}
		last = rec.Seq
		seen[string(rec.Payload)] = true
		acks <- rec.Seq
	}
	wg.Wait()
	close(acks)
	ackers.Wait()
	if st := s.Stats(); st.Records != 0 || st.Segments > 1 {
		t.Fatalf("Stats = %+v after every record was acknowledged", st)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s = open(t, dir, Options{})
	if got := readAll(t, s.NewReader()); len(got) != 0 {
		t.Fatalf("%d records replayed after all were acknowledged", len(got))
	}
}

// shortFile writes only part of what it is given, once, and fails.
type shortFile struct {
	segFile
	n    int // bytes written of the failing write
	done bool
}

func (f *shortFile) Write(b []byte) (int, error) {
	if f.done {
		return f.segFile.Write(b)
	}
	f.done = true
	n, _ := f.segFile.Write(b[:f.n])
	return n, errors.New("short write")
}

// TestShortOrFailedWrite: an Append whose write fails (in full, or after
// part of the frame) returns the error, takes no sequence number, and
// leaves the spool readable: the records before and after it are read,
// now and after a reopen, and nothing is counted lost.
func TestShortOrFailedWrite(t *testing.T) {
	for _, n := range []int{0, 5, 20} {
		t.Run(fmt.Sprintf("%d bytes written", n), func(t *testing.T) {
			dir := t.TempDir()
			s, _ := Open(dir, Options{})
			appendN(t, s, 0, 3)
			s.mu.Lock()
			s.active.f = &shortFile{segFile: s.active.f, n: n}
			s.mu.Unlock()
			if _, err := s.Append(0, []byte("refused")); err == nil {
				t.Fatal("Append after a short write succeeded")
			}
			if seqs := appendN(t, s, 3, 2); seqs[0] != 4 {
				t.Fatalf("next seq %d, want 4: the failed append took none", seqs[0])
			}
			want := "[record-0 record-1 record-2 record-3 record-4]"
			if got := readAll(t, s.NewReader()); fmt.Sprint(got) != want {
				t.Fatalf("read %v, want %v", got, want)
			}
			_ = s.Close()
			s = open(t, dir, Options{})
			if got := readAll(t, s.NewReader()); fmt.Sprint(got) != want {
				t.Fatalf("after reopen: %v, want %v", got, want)
			}
			if st := s.Stats(); st.Lost != 0 || st.Records != 5 {
				t.Fatalf("Stats = %+v, want 5 records and none lost", st)
			}
		})
	}
}

// TestOutOfOrderAcksAcrossSegments: acknowledgements in any order, over
// several segments, survive a reopen exactly.
func TestOutOfOrderAcksAcrossSegments(t *testing.T) {
	dir := t.TempDir()
	s, _ := Open(dir, Options{SegmentBytes: 200})
	seqs := appendN(t, s, 0, 40)
	if n := len(segments(t, dir)); n < 4 {
		t.Fatalf("%d segments, want 4 or more", n)
	}
	rng := rand.New(rand.NewPCG(1, 2))
	order := rng.Perm(len(seqs))
	acked := map[string]bool{}
	for _, i := range order[:25] {
		s.Ack(seqs[i])
		acked[fmt.Sprintf("record-%d", i)] = true
	}
	_ = s.Close()
	s = open(t, dir, Options{SegmentBytes: 200})
	got := readAll(t, s.NewReader())
	var want []string
	for i := range seqs {
		if name := fmt.Sprintf("record-%d", i); !acked[name] {
			want = append(want, name)
		}
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("replay = %v, want %v", got, want)
	}
	if st := s.Stats(); st.Records != int64(len(want)) {
		t.Fatalf("Records = %d, want %d", st.Records, len(want))
	}
}

// FuzzOpen: Open reads any segment and ack file without panicking or
// failing, replays exactly the records it counts, never counts more lost
// records than the damaged bytes could hold, and never gives a number
// twice. second adds an intact segment after the fuzzed one.
func FuzzOpen(f *testing.F) {
	var good []byte
	for i := range uint64(4) {
		good = AppendFrame(good, i+1, 0, fmt.Appendf(nil, "record-%d", i))
	}
	damaged := bytes.Clone(good)
	damaged[len(good)/2] ^= 0xff
	f.Add(good, []byte{}, false)
	f.Add(damaged, binary.LittleEndian.AppendUint64(nil, 1), true)
	f.Add(good[:len(good)-3], []byte{1, 2, 3}, false)
	f.Fuzz(func(t *testing.T, seg, ack []byte, second bool) {
		dir := t.TempDir()
		_ = os.WriteFile(filepath.Join(dir, segName(1)), seg, 0o600)
		_ = os.WriteFile(filepath.Join(dir, strings.TrimSuffix(segName(1), ".seg")+".ack"), ack, 0o600)
		const next = 1000
		if second {
			_ = os.WriteFile(filepath.Join(dir, segName(next)), AppendFrame(nil, next, 0, []byte("later")), 0o600)
		}
		s, err := Open(dir, Options{})
		if err != nil {
			t.Fatalf("Open: %v", err)
		}
		defer s.Close()
		st := s.Stats()
		if limit := int64(len(seg)/minFrame) + 1; st.Lost > limit {
			t.Fatalf("Lost = %d from %d bytes", st.Lost, len(seg))
		}
		r := s.NewReader()
		defer r.Close()
		var n int64
		var last uint64
		for {
			rec, err := r.Next()
			if errors.Is(err, io.EOF) {
				break
			}
			if err != nil {
				t.Fatalf("Next: %v", err)
			}
			n++
			last = max(last, rec.Seq)
		}
		if n != st.Records {
			t.Fatalf("read %d records, Stats says %d", n, st.Records)
		}
		if seq, err := s.Append(0, nil); err != nil || seq <= last {
			t.Fatalf("Append = %d, %v after reading up to %d", seq, err, last)
		}
	})
}
