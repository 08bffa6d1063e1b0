package proxy

import (
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"

	"github.com/consentgate/consentgate/config"
)

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
	core, logs := observer.New(zapcore.DebugLevel)
	r := NewReloader(g.h, g.m, zap.New(core), path, func() (*config.Config, error) { return config.Load(path) })
	var applied *config.Config
	r.OnApply(func(c *config.Config) { applied = c })

	writeFile(t, path, base+"consent: {mode: basic}\nlog: {level: debug, decisions: {output: stderr}}\n")
	if err := r.Reload(); err != nil {
		t.Fatal(err)
	}
	if applied == nil || applied.Log.Level != "debug" {
		t.Errorf("OnApply got %+v, want the new config", applied)
	}
	entries := logs.FilterMessage("config reloaded").All()
	if len(entries) != 1 {
		t.Fatalf("want one 'config reloaded' entry, got %v", logs.All())
	}
	fields := entries[0].ContextMap()
	if diff := cmp.Diff([]any{"consent.mode", "log.level"}, fields["applied"]); diff != "" {
		t.Errorf("applied (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff([]any{"log.decisions.output"}, fields["restart_needed"]); diff != "" {
		t.Errorf("restart_needed (-want +got):\n%s", diff)
	}
	warn := logs.FilterLevelExact(zapcore.WarnLevel).FilterMessageSnippet("restart to apply").All()
	if len(warn) != 1 || !strings.Contains(warn[0].Message, "log.decisions.output") {
		t.Errorf("want one warning naming log.decisions.output, got %v", warn)
	}

	// Nothing changed: said so.
	if err := r.Reload(); err != nil {
		t.Fatal(err)
	}
	if n := logs.FilterMessage("config reload: nothing changed").Len(); n != 1 {
		t.Errorf("unchanged reload logged %d 'nothing changed' entries", n)
	}

	// Rejected: one error entry listing every problem.
	writeFile(t, path, base+"consent: {mode: strict}\nlog: {level: loud}\n")
	if err := r.Reload(); err == nil {
		t.Fatal("Reload of an invalid file succeeded")
	}
	rejected := logs.FilterLevelExact(zapcore.ErrorLevel).All()
	if len(rejected) != 1 {
		t.Fatalf("want one error entry, got %d", len(rejected))
	}
	problems, _ := rejected[0].ContextMap()["problems"].([]any)
	if len(problems) != 2 || !strings.Contains(problems[0].(string), "consent.mode") || !strings.Contains(problems[1].(string), "log.level") {
		t.Errorf("problems %v", problems)
	}
}
