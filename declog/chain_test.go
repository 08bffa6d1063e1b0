package declog

import (
	"crypto/ed25519"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"testing/synctest"
	"time"
)

func newKey(t testing.TB) (ed25519.PublicKey, ed25519.PrivateKey) {
	t.Helper()
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return pub, priv
}

// chainedLog writes n decisions through a chained, signed log and returns
// its lines.
func chainedLog(t *testing.T, priv ed25519.PrivateKey, n int) []string {
	t.Helper()
	var buf syncBuffer
	l := New(&buf, nil, nil, WithChain(Chain{Instance: "gw-1", PolicyVersion: "abc", Checkpoint: time.Hour, Key: priv}))
	e := loggedDecision(t)
	for range n {
		l.Add(e, nil)
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	return strings.SplitAfter(strings.TrimSuffix(buf.String(), "\n"), "\n")
}

func verify(pub ed25519.PublicKey, files ...string) *Report {
	v := NewVerifier(pub)
	for i, f := range files {
		v.File(fmt.Sprintf("f%d.log", i+1), []byte(f))
	}
	return v.Report()
}

// TestChainVerifies: a closed log is a header, the records and a final
// checkpoint, each line chained to the one before; with the key it is
// verified, without it unsigned.
func TestChainVerifies(t *testing.T) {
	t.Parallel()
	pub, priv := newKey(t)
	lines := chainedLog(t, priv, 3)
	if len(lines) != 5 || !strings.Contains(lines[0], `"kind":"header"`) || !strings.Contains(lines[4], `"kind":"checkpoint"`) {
		t.Fatalf("log:\n%s", strings.Join(lines, ""))
	}
	for i, l := range lines[1:4] {
		r, err := ParseRecord([]byte(l))
		if err != nil || r.Seq != uint64(i+2) || len(r.Prev) != 64 {
			t.Errorf("line %d: %+v %v", i+2, r, err)
		}
	}
	if _, err := ParseRecord([]byte(lines[0])); !errors.Is(err, ErrMark) {
		t.Errorf("ParseRecord(header) = %v, want ErrMark", err)
	}
	rep := verify(pub, strings.Join(lines, ""))
	if rep.Verdict != Verified || rep.Records != 3 || len(rep.Signed) != 1 || rep.Signed[0].Lines != 5 || len(rep.Problems) != 0 {
		t.Errorf("report %+v", rep)
	}
	if rep := verify(nil, strings.Join(lines, "")); rep.Verdict != Unsigned || len(rep.Problems) != 0 {
		t.Errorf("without a key: %+v", rep)
	}
}

// TestVerifyFindsTampering: each kind of tampering is found, at the line
// where it happened.
func TestVerifyFindsTampering(t *testing.T) {
	t.Parallel()
	pub, priv := newKey(t)
	lines := chainedLog(t, priv, 5) // 1 header, 2-6 records, 7 checkpoint
	edit := func(f func(l []string) []string) string {
		return strings.Join(f(append([]string(nil), lines...)), "")
	}
	tests := []struct {
		name     string
		give     string
		wantLine int
		wantKind string
	}{
		{"line deleted", edit(func(l []string) []string { return append(l[:3:3], l[4:]...) }), 4, ProblemGap},
		{"lines swapped", edit(func(l []string) []string { l[2], l[3] = l[3], l[2]; return l }), 3, ProblemGap},
		{"field edited", edit(func(l []string) []string {
			l[3] = strings.Replace(l[3], `"action":"cookieless"`, `"action":"forward"`, 1)
			return l
		}), 4, ProblemEdited},
		{"truncated mid-line", edit(func(l []string) []string { l[4] = l[4][:len(l[4])/2]; return l[:5] }), 5, ProblemTruncated},
		{"line inserted", edit(func(l []string) []string {
			return append(l[:2:2], append([]string{`{"route":"x","action":"forward"}` + "\n"}, l[2:]...)...)
		}), 3, ProblemInserted},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rep := verify(pub, tt.give)
			if rep.Verdict != Tampered || len(rep.Problems) == 0 {
				t.Fatalf("verdict %v, problems %+v", rep.Verdict, rep.Problems)
			}
			if p := rep.Problems[0]; p.Line != tt.wantLine || p.Kind != tt.wantKind || p.File != "f1.log" {
				t.Errorf("first problem %+v, want %s at line %d", p, tt.wantKind, tt.wantLine)
			}
		})
	}
}

// TestVerifyForgedCheckpoint: a checkpoint re-signed with another key
// over the right chain fails its signature check.
func TestVerifyForgedCheckpoint(t *testing.T) {
	t.Parallel()
	pub, priv := newKey(t)
	lines := chainedLog(t, priv, 2)
	_, other := newKey(t)
	// Re-sign the final checkpoint with another key, keeping its chain fields.
	cp := lines[len(lines)-1]
	i := strings.LastIndex(cp, `,"key":"`)
	body := cp[:i] + `,"key":"` + KeyID(pub) + `"`
	sig := ed25519.Sign(other, []byte(checkpointDomain+body))
	lines[len(lines)-1] = body + `,"sig":"` + b64(sig) + `"}` + "\n"
	rep := verify(pub, strings.Join(lines, ""))
	if rep.Verdict != Tampered || len(rep.Problems) != 1 || rep.Problems[0].Kind != ProblemBadSignature || rep.Problems[0].Line != 4 {
		t.Errorf("report %+v", rep)
	}
}

// TestChainContinuesAcrossRestartAndRotation: a log reopened continues
// its chain from the file's last line; a new file after a rotation
// continues it from the state file; a crash's partial line is reported
// and the chain goes on after it.
func TestChainContinuesAcrossRestartAndRotation(t *testing.T) {
	t.Parallel()
	pub, priv := newKey(t)
	dir := t.TempDir()
	path := filepath.Join(dir, "decisions.log")
	e := loggedDecision(t)
	run := func(n int) {
		t.Helper()
		l, err := Open(path, nil, WithChain(Chain{Instance: "gw", Checkpoint: time.Hour, Key: priv}))
		if err != nil {
			t.Fatal(err)
		}
		for range n {
			l.Add(e, nil)
		}
		if err := l.Close(); err != nil {
			t.Fatal(err)
		}
	}
	run(2)
	run(1) // restart
	if err := os.Rename(path, path+".1"); err != nil {
		t.Fatal(err)
	}
	run(2) // rotation
	read := func(p string) string {
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		return string(b)
	}
	v := NewVerifier(pub)
	v.File("decisions.log.1", []byte(read(path+".1")))
	v.File("decisions.log", []byte(read(path)))
	if rep := v.Report(); rep.Verdict != Verified || rep.Records != 5 || strings.Trim(rep.Start, "0") != "" {
		t.Errorf("restart and rotation: %+v", rep)
	}
	// Only the newer file: its chain starts after the older one's last line.
	if rep := verify(pub, read(path)); rep.Verdict != Verified || strings.Trim(rep.Start, "0") == "" {
		t.Errorf("rotated file alone: %+v", rep)
	}
	// A crash leaves a partial line; the restart ends it and goes on.
	f, err := os.OpenFile(path, os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteString(`{"ts":"2026-`); err != nil {
		t.Fatal(err)
	}
	f.Close()
	run(1)
	rep := verify(pub, read(path))
	if rep.Verdict != Tampered || len(rep.Problems) != 1 || rep.Problems[0].Kind != ProblemUnreadable {
		t.Errorf("after a crash: %+v", rep)
	}
}

// TestCheckpointEveryInterval: a checkpoint follows each interval in
// which records were written, none for an idle one.
func TestCheckpointEveryInterval(t *testing.T) {
	t.Parallel()
	pub, priv := newKey(t)
	synctest.Test(t, func(t *testing.T) {
		var buf syncBuffer
		l := New(&buf, nil, nil, WithChain(Chain{Checkpoint: time.Minute, Key: priv}))
		e := loggedDecision(t)
		l.Add(e, nil)
		synctest.Wait()
		time.Sleep(time.Minute) // fake time: the ticker fires
		synctest.Wait()
		time.Sleep(time.Minute) // idle: no checkpoint
		synctest.Wait()
		l.Add(e, nil)
		if err := l.Close(); err != nil {
			t.Fatal(err)
		}
		got := strings.Count(buf.String(), `"kind":"checkpoint"`)
		if got != 2 {
			t.Errorf("%d checkpoints, want 2 (one after a minute, one at close):\n%s", got, buf.String())
		}
		if rep := verify(pub, buf.String()); rep.Verdict != Verified || len(rep.Signed) != 2 {
			t.Errorf("report %+v", rep)
		}
	})
}

// FuzzReadChainLine: the verifier's line reader never panics, and what it
// accepts as chained has a seq from 1.
func FuzzReadChainLine(f *testing.F) {
	f.Add([]byte(`{"kind":"header","ts":"2026-12-07T10:00:00Z","seq":1,"prev":"0000000000000000000000000000000000000000000000000000000000000000","instance":"gw"}`))
	f.Add([]byte(`{"route":"ga4_collect","action":"block","seq":2,"prev":"ab"}`))
	f.Add([]byte(`{"kind":"checkpoint","seq":3,"prev":null,"sig":"x"}`))
	f.Add([]byte(`{"route":"ga4_collect","action":"block"}`))
	f.Add([]byte(`{"seq":18446744073709551615,"prev":"` + strings.Repeat("g", 64) + `"}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		cl, err := readChainLine(b)
		if err == nil && cl.chained && cl.seq == 0 {
			t.Errorf("readChainLine(%q) accepted seq 0", b)
		}
		// The whole verifier on the line, alone and after a valid header.
		v := NewVerifier(nil)
		v.File("f", append(append([]byte(`{"kind":"header","seq":1,"prev":"`+strings.Repeat("0", 64)+`"}`+"\n"), b...), '\n'))
		_ = v.Report()
	})
}

func b64(b []byte) string { return base64.StdEncoding.EncodeToString(b) }

// TestChainToDevNull: a log to a device keeps no state file beside it.
func TestChainToDevNull(t *testing.T) {
	t.Parallel()
	c := Chain{}
	if err := c.resume(os.DevNull); err != nil || c.statePath != "" {
		t.Errorf("resume(%s): %v, state file %q", os.DevNull, err, c.statePath)
	}
}
