package main

import (
	"bufio"
	"encoding/json"
	"errors"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/valyala/fasthttp"
)

// testHit is a hit sent to the binary: a path with its query, and headers.
type testHit struct {
	path    string
	headers map[string]string
}

// verifyHits are hits the gateway decides differently: forward (US),
// cookieless (DE, denied; FR, no consent).
var verifyHits = []testHit{
	{"/g/collect?v=2&tid=G-ABC123&gcs=G111&gcd=13r3r3r2r5l1&cid=1.2&en=page_view", map[string]string{"CF-IPCountry": "US"}},
	{"/g/collect?v=2&tid=G-ABC123&gcs=G100&gcd=13p3p3p2p5l1&cid=1.2&en=page_view", map[string]string{"CF-IPCountry": "DE"}},
	{"/g/collect?v=2&tid=G-ABC123&cid=1.2&en=scroll", map[string]string{"CF-IPCountry": "FR"}},
}

// serveLog runs the binary with cfgPath until it has decided the hits,
// then stops it with SIGTERM and waits for it to exit.
func serveLog(t *testing.T, bin, cfgPath string, hits []testHit) {
	t.Helper()
	cmd := exec.Command(bin, "serve", "--config", cfgPath)
	cmd.Env = append(os.Environ(), "CONSENTGATE_CONFIG=", "CONSENTGATE_TIMEOUTS_DRAIN=0s")
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	listening := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			var m map[string]any
			if json.Unmarshal(sc.Bytes(), &m) == nil && m["msg"] == "listening" {
				listening <- m["public"].(string)
			}
		}
		done <- cmd.Wait()
	}()
	var public string
	select {
	case public = <-listening:
	case err := <-done:
		t.Fatalf("serve exited before listening: %v", err)
	case <-time.After(15 * time.Second):
		_ = cmd.Process.Kill()
		t.Fatal("serve did not start")
	}
	client := &fasthttp.Client{}
	for _, h := range hits {
		req, resp := fasthttp.AcquireRequest(), fasthttp.AcquireResponse()
		req.SetRequestURI("http://" + public + h.path)
		for k, v := range h.headers {
			req.Header.Set(k, v)
		}
		if err := client.DoTimeout(req, resp, 5*time.Second); err != nil {
			t.Fatalf("GET %s: %v", h.path, err)
		}
		fasthttp.ReleaseRequest(req)
		fasthttp.ReleaseResponse(resp)
	}
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("serve: %v", err)
		}
	case <-time.After(15 * time.Second):
		_ = cmd.Process.Kill()
		t.Fatal("serve did not stop")
	}
}

// runBin runs the binary and returns its output and exit status.
func runBin(t *testing.T, bin string, args ...string) (string, int) {
	t.Helper()
	out, err := exec.Command(bin, args...).CombinedOutput()
	if ee, ok := errors.AsType[*exec.ExitError](err); ok {
		return string(out), ee.ExitCode()
	}
	if err != nil {
		t.Fatalf("%s: %v", args, err)
	}
	return string(out), 0
}

// TestVerifyRealLogs writes decision logs with the real binary, through a
// restart and a rotation, checks that audit --verify calls them verified,
// then tampers with copies: a line deleted, two swapped, a field edited,
// the file truncated mid-line, a restart signing with another key. Each
// is caught with exit status 4 and the right file and line.
func TestVerifyRealLogs(t *testing.T) {
	t.Parallel()
	if testing.Short() {
		t.Skip("builds and runs the binary")
	}
	bin := buildBinary(t)
	dir := t.TempDir()
	keys := filepath.Join(dir, "signing")
	if out, code := runBin(t, bin, "keygen", "--out", keys); code != 0 {
		t.Fatalf("keygen: %d %s", code, out)
	}
	if out, code := runBin(t, bin, "keygen", "--out", keys); code == 0 {
		t.Errorf("keygen overwrote its keys: %s", out)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	up := &fasthttp.Server{Handler: func(ctx *fasthttp.RequestCtx) { ctx.SetStatusCode(fasthttp.StatusNoContent) }}
	go func() { _ = up.Serve(ln) }()
	defer func() { _ = up.Shutdown() }()

	logPath := filepath.Join(dir, "decisions.log")
	writeCfg := func(key string) string {
		p := filepath.Join(dir, "config.yaml")
		cfg := "listen: 127.0.0.1:0\nadmin_listen: 127.0.0.1:0\nupstream: http://" + ln.Addr().String() + "\n" +
			"cookieless: {secret: verify-test-secret-0123}\ndelivery: {ga4: sync}\n" +
			"log: {format: json, decisions: {output: " + logPath + ", signing_key: " + key + "}}\n"
		if err := os.WriteFile(p, []byte(cfg), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	cfgPath := writeCfg(keys + ".key")
	serveLog(t, bin, cfgPath, verifyHits)
	serveLog(t, bin, cfgPath, verifyHits) // a restart
	if err := os.Rename(logPath, logPath+".1"); err != nil {
		t.Fatal(err)
	}
	serveLog(t, bin, cfgPath, verifyHits) // after a rotation
	read := func(p string) []string {
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		return strings.SplitAfter(strings.TrimSuffix(string(b), "\n"), "\n")
	}
	older, newer := read(logPath+".1"), read(logPath)
	// Two runs of a header, three records and a checkpoint; one more run.
	if len(older) != 10 || len(newer) != 5 {
		t.Fatalf("logs of %d and %d lines:\n%s\n%s", len(older), len(newer), strings.Join(older, ""), strings.Join(newer, ""))
	}
	pub := keys + ".pub"
	out, code := runBin(t, bin, "audit", "--verify", "--pubkey", pub, logPath+".1", logPath)
	if code != 0 || !strings.Contains(out, "verdict  verified") || !strings.Contains(out, "15 (9 decision records)") {
		t.Fatalf("untouched logs: exit %d\n%s", code, out)
	}
	if out, code := runBin(t, bin, "audit", "--verify", logPath+".1", logPath); code != 3 || !strings.Contains(out, "no --pubkey") {
		t.Errorf("without --pubkey: exit %d, want 3 (unsigned)\n%s", code, out)
	}
	// Plain audit reads the chained log, skipping headers and checkpoints.
	if out, code := runBin(t, bin, "audit", logPath+".1"); code != 0 || !strings.Contains(out, "All invariants hold for 6 hits") {
		t.Errorf("audit of a chained log: exit %d\n%s", code, out)
	}

	tamper := func(name string, lines []string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(strings.Join(lines, "")), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	without := func(l []string, i int) []string { return append(append([]string(nil), l[:i]...), l[i+1:]...) }
	swapped := append([]string(nil), older...)
	swapped[2], swapped[3] = swapped[3], swapped[2]
	edited := append([]string(nil), older...)
	edited[7] = strings.Replace(edited[7], `"action":"cookieless"`, `"action":"forward"`, 1)
	if edited[7] == older[7] {
		t.Fatalf("line 8 is not the cookieless hit: %s", older[7])
	}
	truncated := append([]string(nil), newer...)
	truncated[4] = truncated[4][:len(truncated[4])/2]
	tests := []struct {
		name   string
		files  []string
		want   string // the first TAMPERED line
		second string // a later one ("" for none)
	}{
		{"line deleted", []string{tamper("deleted.1", without(older, 3)), logPath}, "TAMPERED " + dir + "/deleted.1:4 gap: 1 line(s) missing", ""},
		{"lines swapped", []string{tamper("swapped.1", swapped), logPath}, "TAMPERED " + dir + "/swapped.1:3 gap", dir + "/swapped.1:4 reordered"},
		{"field edited", []string{tamper("edited.1", edited), logPath}, "TAMPERED " + dir + "/edited.1:8 edited", ""},
		{"truncated mid-line", []string{logPath + ".1", tamper("truncated", truncated)}, "TAMPERED " + dir + "/truncated:5 truncated", ""},
		{"rotated file missing", []string{tamper("first-run", older[:5]), logPath}, "TAMPERED " + logPath + ":1 gap: 5 line(s) missing", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			out, code := runBin(t, bin, append([]string{"audit", "--verify", "--pubkey", pub}, tt.files...)...)
			if code != 4 || !strings.Contains(out, tt.want) || !strings.Contains(out, tt.second) || !strings.Contains(out, "verdict  tampered") {
				t.Errorf("exit %d, want 4 and %q:\n%s", code, tt.want, out)
			}
		})
	}

	// A restart signing with another key: that run's checkpoint fails.
	other := filepath.Join(dir, "other")
	if out, code := runBin(t, bin, "keygen", "--out", other); code != 0 {
		t.Fatalf("keygen: %s", out)
	}
	serveLog(t, bin, writeCfg(other+".key"), verifyHits)
	out, code = runBin(t, bin, "audit", "--verify", "--pubkey", pub, logPath+".1", logPath)
	if code != 4 || !strings.Contains(out, "TAMPERED "+logPath+":10 bad_signature: signed with key") {
		t.Errorf("checkpoint signed with another key: exit %d\n%s", code, out)
	}
}
