package spool

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
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
