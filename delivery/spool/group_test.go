package spool

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"strconv"
	"sync"
	"testing"
)

// syscw is this process's count of write(2)-like system calls so far
// (proc(5): /proc/self/io).
func syscw(t *testing.T) int64 {
	t.Helper()
	b, err := os.ReadFile("/proc/self/io")
	if err != nil {
		t.Fatalf("read /proc/self/io: %v", err)
	}
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		if v, ok := bytes.CutPrefix(sc.Bytes(), []byte("syscw: ")); ok {
			n, err := strconv.ParseInt(string(v), 10, 64)
			if err != nil {
				t.Fatal(err)
			}
			return n
		}
	}
	t.Fatal("no syscw in /proc/self/io")
	return 0
}

// Appends that arrive together share a write(2): N concurrent appends
// cost far fewer system calls than N, and every one of them is in the
// file, in sequence order, when its Append returns.
func TestGroupCommitSharesWrites(t *testing.T) {
	const n = 256
	dir := t.TempDir()
	s := open(t, dir, Options{SyncInterval: 1 << 40})
	start := make(chan struct{})
	var wg sync.WaitGroup
	seqs := make([]uint64, n)
	errs := make([]error, n)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			seqs[i], errs[i] = s.Append(int64(i), fmt.Appendf(nil, "record-%d", i))
			if errs[i] == nil {
				// Returned: the record must be readable from the file now.
				st := s.Stats()
				if st.Records == 0 {
					errs[i] = fmt.Errorf("append %d returned before its record was counted", i)
				}
			}
		}()
	}
	before := syscw(t)
	close(start)
	wg.Wait()
	writes := syscw(t) - before
	for i, err := range errs {
		if err != nil {
			t.Fatalf("append %d: %v", i, err)
		}
	}
	st := s.Stats()
	if st.Records != n {
		t.Fatalf("records %d, want %d", st.Records, n)
	}
	t.Logf("%d appends: %d write system calls in the process, %d spool writes", n, writes, st.Writes)
	if st.Writes > n/4 || writes > n/4 {
		t.Errorf("%d appends took %d spool writes (%d write system calls): group commit does not share writes", n, st.Writes, writes)
	}
	// Every record is in the file once, in sequence order.
	r := s.NewReader()
	defer r.Close()
	got := readAll(t, r)
	if len(got) != n {
		t.Fatalf("read %d records back, want %d", len(got), n)
	}
	seen := map[string]bool{}
	for _, p := range got {
		if seen[p] {
			t.Fatalf("record %s twice", p)
		}
		seen[p] = true
	}
}

// A lone append is written at once: group commit never waits for company.
func TestGroupCommitAlone(t *testing.T) {
	s := open(t, t.TempDir(), Options{})
	for i := range 3 {
		before := s.Stats().Writes
		if _, err := s.Append(int64(i), []byte("x")); err != nil {
			t.Fatal(err)
		}
		if got := s.Stats().Writes - before; got != 1 {
			t.Fatalf("append %d: %d writes, want 1", i, got)
		}
	}
}
