package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"regexp"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
)

// TestLogFormat pins the operational log: RFC 3339 timestamps, durations
// with their unit, no stack trace on errors, and a level that changes at
// run time.
func TestLogFormat(t *testing.T) {
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
