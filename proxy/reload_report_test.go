package proxy

import (
	"encoding/json"
	"errors"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	"github.com/consentgate/consentgate/config"
)

// jsonLog is a JSON logger writing to a buffer, as serve's log.format json
// does, whose lines a test decodes.
type jsonLog struct {
	t   *testing.T
	buf syncBuffer
}

func newJSONLog(t *testing.T) (*jsonLog, *zap.Logger) {
	l := &jsonLog{t: t}
	enc := zapcore.NewJSONEncoder(zap.NewProductionEncoderConfig())
	return l, zap.New(zapcore.NewCore(enc, &l.buf, zapcore.DebugLevel))
}

// lines decodes every line written so far.
func (l *jsonLog) lines() []map[string]any {
	l.t.Helper()
	var out []map[string]any
	for line := range strings.Lines(l.buf.String()) {
		var m map[string]any
		if err := json.Unmarshal([]byte(line), &m); err != nil {
			l.t.Fatalf("log line %q: %v", line, err)
		}
		out = append(out, m)
	}
	return out
}

// only returns the one line with message msg.
func (l *jsonLog) only(msg string) map[string]any {
	l.t.Helper()
	var found []map[string]any
	for _, m := range l.lines() {
		if m["msg"] == msg {
			found = append(found, m)
		}
	}
	if len(found) != 1 {
		l.t.Fatalf("%d lines %q, want 1; log:\n%s", len(found), msg, l.buf.String())
	}
	return found[0]
}

// TestReloadReportsChanges: a reload names every changed key and warns
// about those only a restart applies (log.decisions.output); a rejected
// reload lists every problem in one entry.
func TestReloadReportsChanges(t *testing.T) {
	path := filepath.Join(t.TempDir(), "config.yaml")
	base := "cookieless: {secret: \"test-secret-0123456789\"}\n"
	writeFile(t, path, base)
	g := newGateway(t, "")                           // sets the environment of the test configs first
	t.Setenv("CONSENTGATE_LOG_DECISIONS_OUTPUT", "") // empty: unset, the file decides
	cfg, err := config.Load(path)
	if err != nil {
		t.Fatal(err)
	}
	g.h.SetConfig(cfg)
	logs, log := newJSONLog(t)
	r := NewReloader(g.h, g.m, log, path, func() (*config.Config, error) { return config.Load(path) })
	var applied *config.Config
	r.OnApply(func(c *config.Config) { applied = c })

	writeFile(t, path, base+"consent: {mode: basic}\nlog: {level: debug, decisions: {output: stderr}}\n")
	if err := r.Reload(); err != nil {
		t.Fatal(err)
	}
	if applied == nil || applied.Log.Level != "debug" {
		t.Errorf("OnApply got %+v, want the new config", applied)
	}
	reloaded := logs.only("config reloaded")
	want := map[string]any{
		"level":          "info",
		"msg":            "config reloaded",
		"policy_version": applied.PolicyVersion,
		"previous":       cfg.PolicyVersion,
		"enforce":        true,
		"applied":        []any{"consent.mode", "log.level"},
		"restart_needed": []any{"log.decisions.output"},
	}
	delete(reloaded, "ts")
	if diff := cmp.Diff(want, reloaded); diff != "" {
		t.Errorf("'config reloaded' line (-want +got):\n%s", diff)
	}
	warn := logs.only("restart to apply: log.decisions.output (the running process keeps the old values)")
	if warn["level"] != "warn" || !cmp.Equal(warn["restart_needed"], []any{"log.decisions.output"}) {
		t.Errorf("restart warning %v: want level warn, restart_needed [log.decisions.output]", warn)
	}

	// Nothing changed: said so.
	if err := r.Reload(); err != nil {
		t.Fatal(err)
	}
	if unchanged := logs.only("config reload: nothing changed"); unchanged["level"] != "info" || unchanged["policy_version"] != applied.PolicyVersion {
		t.Errorf("unchanged reload logged %v", unchanged)
	}

	// Rejected: one error entry listing every problem, as Load reports them.
	writeFile(t, path, base+"consent: {mode: strict}\nlog: {level: loud}\n")
	if err := r.Reload(); err == nil {
		t.Fatal("Reload of an invalid file succeeded")
	}
	_, loadErr := config.Load(path)
	var pe *config.ProblemsError
	if !errors.As(loadErr, &pe) || len(pe.Problems) != 2 || problemKey(pe.Problems[0]) != "consent.mode" || problemKey(pe.Problems[1]) != "log.level" {
		t.Fatalf("Load: %v, want problems of consent.mode and log.level", loadErr)
	}
	var errorLines []map[string]any
	for _, m := range logs.lines() {
		if m["level"] == "error" {
			errorLines = append(errorLines, m)
		}
	}
	if len(errorLines) != 1 {
		t.Fatalf("want one error line, got %d:\n%s", len(errorLines), logs.buf.String())
	}
	rejected := errorLines[0]
	delete(rejected, "ts")
	wantRejected := map[string]any{
		"level":    "error",
		"msg":      "config reload rejected; the last good config keeps serving",
		"config":   path,
		"problems": []any{pe.Problems[0].Error(), pe.Problems[1].Error()},
	}
	if diff := cmp.Diff(wantRejected, rejected); diff != "" {
		t.Errorf("rejected reload line (-want +got):\n%s", diff)
	}
}

// problemKey is the key of a config problem ("" if err is not one).
func problemKey(err error) string {
	var p *config.Problem
	if errors.As(err, &p) {
		return p.Key
	}
	return ""
}

// TestReloadNamesItsTrigger: a reload the file watch starts says which
// file changed and how before the reload's own line, and a reload of the
// embedded config names it "embedded", not "".
func TestReloadNamesItsTrigger(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "config.yaml")
	base := "cookieless: {secret: \"test-secret-0123456789\"}\n"
	writeFile(t, path, base)
	cfg, err := config.Load(path)
	if err != nil {
		t.Fatal(err)
	}
	g := newGateway(t, "")
	g.h.SetConfig(cfg)
	logs, log := newReloadLog(t)
	r := NewReloader(g.h, g.m, log, path, func() (*config.Config, error) { return config.Load(path) })
	ctx, cancel := contextWithCancel()
	defer func() { cancel(); r.Wait() }()
	r.Start(ctx)
	writeFile(t, path, base+"consent: {mode: basic}\n")
	e := logs.waitEntry("config file changed: reloading")
	want := map[string]any{"config": path, "file": path}
	got := e.ContextMap()
	delete(got, "event") // write, create or rename: as the editor and the file system make it
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("trigger line (-want +got):\n%s", diff)
	}
	logs.wait("config reloaded")

	embedded, err := config.Load("")
	if err != nil {
		t.Fatal(err)
	}
	g.h.SetConfig(embedded)
	logs2, log2 := newReloadLog(t)
	r2 := NewReloader(g.h, g.m, log2, "", func() (*config.Config, error) { return embedded, nil })
	if err := r2.Reload(); err != nil {
		t.Fatal(err)
	}
	want = map[string]any{"config": "embedded", "policy_version": embedded.PolicyVersion}
	if diff := cmp.Diff(want, logs2.waitEntry("config reload: nothing changed").ContextMap()); diff != "" {
		t.Errorf("SIGHUP on the embedded config (-want +got):\n%s", diff)
	}
}
