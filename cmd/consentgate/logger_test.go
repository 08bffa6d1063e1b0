package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
)

// TestLogFormat pins the operational log: RFC 3339 timestamps, durations
// with their unit, no stack trace on errors, and a level that changes at
// run time.
func TestLogFormat(t *testing.T) {
	t.Parallel()
	var buf bytes.Buffer
	log, level, err := newLogger("info", "json", zapcore.AddSync(&buf), false)
	if err != nil {
		t.Fatal(err)
	}
	log.Info("draining", zap.Duration("drain", 5*time.Second))
	log.Error("config reload rejected", zap.Error(errors.New("bad")))
	log.Debug("hidden")
	_ = level.UnmarshalText([]byte("debug"))
	log.Debug("shown")

	rfc3339 := regexp.MustCompile(`^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?(Z|[+-]\d\d:\d\d)$`)
	var lines []map[string]any
	dec := json.NewDecoder(&buf)
	for dec.More() {
		var m map[string]any
		if err := dec.Decode(&m); err != nil {
			t.Fatal(err)
		}
		lines = append(lines, m)
	}
	if len(lines) != 3 {
		t.Fatalf("got %d lines, want 3 (debug hidden until the level changed): %v", len(lines), lines)
	}
	for _, l := range lines {
		ts, ok := l["ts"].(string)
		if !ok || !rfc3339.MatchString(ts) {
			t.Errorf("ts %v is not RFC 3339", l["ts"])
		}
		for k := range l {
			if k == "stacktrace" {
				t.Errorf("%q carries a stack trace", l["msg"])
			}
		}
	}
	if lines[0]["drain"] != "5s" {
		t.Errorf("drain = %v, want \"5s\"", lines[0]["drain"])
	}
	if lines[2]["msg"] != "shown" {
		t.Errorf("level change not applied: %v", lines[2])
	}
}

// decodeLines decodes every line of a log; a line that is not one JSON
// object fails the test.
func decodeLines(t *testing.T, log string) []map[string]any {
	t.Helper()
	var out []map[string]any
	for line := range strings.SplitSeq(strings.TrimSpace(log), "\n") {
		var m map[string]any
		if err := json.Unmarshal([]byte(line), &m); err != nil {
			t.Fatalf("log line %q is not JSON: %v\nlog:\n%s", line, err, log)
		}
		delete(m, "ts")
		out = append(out, m)
	}
	return out
}

// TestServeFatalErrorsAreLogLines: an error that stops serve, a broken
// config or a port in use, is one entry in the log's format (JSON with
// log.format json) and the exit status is 1, not text after JSON lines.
func TestServeFatalErrorsAreLogLines(t *testing.T) {
	dir := t.TempDir()
	t.Run("config problems", func(t *testing.T) {
		path := filepath.Join(dir, "bad.yaml")
		if err := os.WriteFile(path, []byte("log: {format: json}\ntimeouts: {upstream: 5}\nconsent: {mdoe: basic}\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		var stderr bytes.Buffer
		err := run([]string{"serve", "--config", path}, io.Discard, &stderr)
		if !errors.Is(err, errFailed) {
			t.Fatalf("serve = %v, want errFailed (exit status 1)", err)
		}
		want := []map[string]any{{
			"level": "error", "msg": "cannot serve: the configuration has problems (consentgate check lists them too)", "config": path,
			"problems": []any{
				path + `:2: timeouts.upstream: "5" is not a duration such as 250ms, 5s, 1m or 1h`,
				path + ":3: consent.mdoe: unknown key (did you mean consent.mode?)",
			},
		}}
		if diff := cmp.Diff(want, decodeLines(t, stderr.String())); diff != "" {
			t.Errorf("log (-want +got):\n%s", diff)
		}
	})
	t.Run("port in use", func(t *testing.T) {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		defer ln.Close()
		path := filepath.Join(dir, "busy.yaml")
		yaml := fmt.Sprintf("listen: %q\nadmin_listen: 127.0.0.1:0\nlog: {format: json, decisions: {output: off}}\ncookieless: {secret: 9f1c2e7a4b8d0365f1e2a9c47b3d8e60}\ndelivery: {spool: {dir: %q}}\n",
			ln.Addr().String(), filepath.Join(dir, "spool"))
		if err := os.WriteFile(path, []byte(yaml), 0o600); err != nil {
			t.Fatal(err)
		}
		var stderr bytes.Buffer
		if err := run([]string{"serve", "--config", path}, io.Discard, &stderr); !errors.Is(err, errFailed) {
			t.Fatalf("serve = %v, want errFailed (exit status 1)", err)
		}
		lines := decodeLines(t, stderr.String())
		if lines[0]["msg"] != "consentgate starting" || lines[0]["spool"] != filepath.Join(dir, "spool") {
			t.Errorf("first line %v: want the start line naming the spool directory", lines[0])
		}
		want := map[string]any{"level": "error", "msg": "cannot serve",
			"error": fmt.Sprintf("listen %s: listen tcp %s: bind: address already in use", ln.Addr(), ln.Addr())}
		if diff := cmp.Diff(want, lines[len(lines)-1]); diff != "" {
			t.Errorf("last log line (-want +got):\n%s", diff)
		}
	})
	t.Run("unreadable file", func(t *testing.T) {
		t.Setenv("CONSENTGATE_LOG_FORMAT", "json")
		var stderr bytes.Buffer
		missing := filepath.Join(dir, "missing.yaml")
		if err := run([]string{"serve", "--config", missing}, io.Discard, &stderr); !errors.Is(err, errFailed) {
			t.Fatalf("serve = %v, want errFailed", err)
		}
		want := []map[string]any{{"level": "error", "msg": "cannot serve", "error": "config: open " + missing + ": no such file or directory"}}
		if diff := cmp.Diff(want, decodeLines(t, stderr.String())); diff != "" {
			t.Errorf("log (-want +got):\n%s", diff)
		}
	})
}

// TestLogSampling: like zap's production logger, repeated entries are
// sampled (the first 100 of a second, then every 100th) so a per-hit
// warning cannot flood stderr, while distinct messages all show.
func TestLogSampling(t *testing.T) {
	t.Parallel()
	var buf bytes.Buffer
	now := time.Date(2026, 12, 7, 12, 0, 0, 0, time.UTC)
	log, _, err := newLogger("info", "json", zapcore.AddSync(&buf), false, zap.WithClock(fixedClock(now)))
	if err != nil {
		t.Fatal(err)
	}
	for range 1000 {
		log.Warn("delivery: upstream unreachable", zap.String("upstream", "www.google-analytics.com"))
	}
	for i := range 3 {
		log.Info("config reloaded", zap.Int("n", i))
	}
	counts := map[string]int{}
	for _, l := range decodeLines(t, buf.String()) {
		counts[l["msg"].(string)]++
	}
	want := map[string]int{"delivery: upstream unreachable": logSampleFirst + (1000-logSampleFirst)/logSampleThereafter, "config reloaded": 3}
	if diff := cmp.Diff(want, counts); diff != "" {
		t.Errorf("entries written (-want +got):\n%s", diff)
	}
}

// fixedClock is a zapcore.Clock that stands still: the sampler counts
// per second of the entries' time, so the test does not depend on when it
// runs.
type fixedClock time.Time

func (c fixedClock) Now() time.Time                         { return time.Time(c) }
func (c fixedClock) NewTicker(d time.Duration) *time.Ticker { return time.NewTicker(d) }
