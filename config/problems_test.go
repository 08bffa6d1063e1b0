package config

import (
	"errors"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// TestCheckReportsEveryProblemAtOnce pins what `consentgate check` prints
// for a broken file: unknown keys with a suggestion, type errors and
// invalid values with the allowed ones, each with its file line or
// environment variable, in the order a reader fixes them.
func TestCheckReportsEveryProblemAtOnce(t *testing.T) {
	t.Setenv("CONSENTGATE_CONSENT_UNKNOWN_REGION", "nope")
	t.Setenv("CONSENTGATE_LOG_LEVL", "debug")
	path := writeConfig(t, `listen: ":8080"
consent:
  mdoe: basic
  enforce: yes-please
  default: maybe
  regions:
    DE: {dfault: denied}
  cmp_cookies:
    - preset: onetrust
      requird: true
timeouts:
  read: 5sec
  upstrem: 2s
log:
  level: verbose
cookieless:
  secret: "replace-me-with-a-long-random-shared-secret"
tags: ["G-OK1", "nope"]
mode: basic
`)
	_, err := Load(path)
	var pe *ProblemsError
	if !errors.As(err, &pe) {
		t.Fatalf("Load = %v, want a *ProblemsError", err)
	}
	want := `config F: 13 problems
  - F:3: consent.mdoe: unknown key (did you mean consent.mode?)
  - F:4: consent.enforce: "yes-please" is not true or false
  - F:5: consent.default: "maybe" is not granted or denied
  - F:7: consent.regions.de.dfault: unknown key (did you mean consent.regions.de.default?)
  - F:10: consent.cmp_cookies[0].requird: unknown key (did you mean consent.cmp_cookies[0].required?)
  - F:12: timeouts.read: "5sec" is not a duration such as 250ms, 5s, 1m or 1h
  - F:13: timeouts.upstrem: unknown key (did you mean timeouts.upstream?)
  - F:15: log.level: "verbose" is not debug, info, warn or error
  - F:17: cookieless.secret: looks like a placeholder (contains "replace"): generate one with ` + "`openssl rand -hex 32`" + ` and give every replica the same
  - F:18: tags[1]: "nope" is not a tag id (G-…, AW-…, DC-…, GTM-…, GT-…)
  - F:19: mode: unknown key (did you mean consent.mode?)
  - environment variable CONSENTGATE_LOG_LEVL: names no config key (did you mean CONSENTGATE_LOG_LEVEL?)
  - environment variable CONSENTGATE_CONSENT_UNKNOWN_REGION: consent.unknown_region: "nope" is not granted or denied`
	// The environment is read in its own order; compare the two env lines as a set.
	got := strings.ReplaceAll(err.Error(), path, "F")
	if diff := cmp.Diff(sortTail(want, 2), sortTail(got, 2)); diff != "" {
		t.Errorf("check output (-want +got):\n%s", diff)
	}
}

// sortTail sorts the last n lines of s.
func sortTail(s string, n int) []string {
	lines := strings.Split(s, "\n")
	if len(lines) < n {
		return lines
	}
	tail := lines[len(lines)-n:]
	if tail[0] > tail[1] {
		tail[0], tail[1] = tail[1], tail[0]
	}
	return lines
}

func TestEnvValueBlamesTheVariable(t *testing.T) {
	t.Setenv("CONSENTGATE_CONSENT_ENFORCE", "nope")
	_, err := Load(writeConfig(t, "consent:\n  enforce: true\n"))
	var pe *ProblemsError
	if !errors.As(err, &pe) || len(pe.Problems) != 1 {
		t.Fatalf("Load = %v, want one problem", err)
	}
	var p *Problem
	if !errors.As(pe.Problems[0], &p) || p.Source != "environment variable CONSENTGATE_CONSENT_ENFORCE" || p.Key != "consent.enforce" {
		t.Errorf("problem %+v, want it blamed on CONSENTGATE_CONSENT_ENFORCE", p)
	}
}

// TestTypeErrorsDoNotHideValueErrors: a value of the wrong type does not
// stop the other keys from being validated, and does not cause follow-on
// errors of its own.
func TestTypeErrorsDoNotHideValueErrors(t *testing.T) {
	t.Parallel()
	_, err := Load(writeConfig(t, "timeouts: {upstream: soon}\nlog: {level: loud}\nlimits: {max_body_bytes: lots}\n"))
	var pe *ProblemsError
	if !errors.As(err, &pe) {
		t.Fatalf("Load = %v", err)
	}
	var keys []string
	for _, e := range pe.Problems {
		var p *Problem
		if errors.As(e, &p) {
			keys = append(keys, p.Key)
		}
	}
	if diff := cmp.Diff([]string{"limits.max_body_bytes", "log.level", "timeouts.upstream"}, sortedCopy(keys)); diff != "" {
		t.Errorf("problem keys (-want +got):\n%s\n%v", diff, err)
	}
}

func sortedCopy(s []string) []string {
	out := append([]string(nil), s...)
	for i := range out {
		for j := i + 1; j < len(out); j++ {
			if out[j] < out[i] {
				out[i], out[j] = out[j], out[i]
			}
		}
	}
	return out
}

func TestWeakSecret(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name, give string
		weak       bool
	}{
		{"sample placeholder", "replace-me-with-a-long-random-shared-secret", true},
		{"change me", "please-CHANGE-me-0123456789", true},
		{"unexpanded template", "${COOKIELESS_SECRET}-0123456789", true},
		{"angle placeholder", "<your secret here 0123456789>", true},
		{"short", "k3J9x0PqZ7", true},
		{"one character", "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa", true},
		{"hex from openssl", "9f1c2e7a4b8d0365f1e2a9c47b3d8e60a1f5c2d9e4b7a0c3f6d1e8b5a2c9f4e7", false},
		{"test secret", "test-secret-0123456789", false},
	}
	for _, tt := range tests {
		if got := weakSecret(tt.give) != ""; got != tt.weak {
			t.Errorf("%s: weakSecret(%q) = %q, want weak %v", tt.name, tt.give, weakSecret(tt.give), tt.weak)
		}
	}
}

func TestEditDistance(t *testing.T) {
	t.Parallel()
	tests := []struct {
		a, b string
		want int
	}{{"mode", "mode", 0}, {"mdoe", "mode", 1}, {"upstrem", "upstream", 1}, {"levl", "level", 1}, {"", "abc", 3}, {"kitten", "sitting", 3}}
	for _, tt := range tests {
		if got := editDistance(tt.a, tt.b); got != tt.want {
			t.Errorf("editDistance(%q, %q) = %d, want %d", tt.a, tt.b, got, tt.want)
		}
	}
}

// TestKeysDocumentEveryKey: the reference in docs/operators.md comes from
// Keys; every key of the struct is there, with a description, and every
// key of default.yaml is a key of the struct.
func TestKeysDocumentEveryKey(t *testing.T) {
	t.Parallel()
	known := map[string]bool{}
	for _, k := range Keys() {
		known[k.Name] = true
		if k.Doc == "" {
			t.Errorf("key %s has no description: comment it in default.yaml or give the field a doc tag", k.Name)
		}
		if k.Type == "" {
			t.Errorf("key %s has no type", k.Name)
		}
	}
	docs, defaults := defaultDocs()
	_ = docs
	for _, k := range defaultOrder() {
		if _, leaf := defaults[k]; leaf && !known[k] {
			t.Errorf("default.yaml key %s is not in Keys()", k)
		}
	}
	for _, k := range []string{"listen", "consent.mode", "consent.signals.gpc", "consent.regions.<CODE>.ad_storage", "consent.cmp_cookies[].preset", "log.decisions.output"} {
		if !known[k] {
			t.Errorf("Keys() lacks %s", k)
		}
	}
}

// TestChangesNameRestartKeys: a reload reports every changed key, and
// which of them only a restart applies.
func TestChangesNameRestartKeys(t *testing.T) {
	t.Parallel()
	old, err := Load(writeConfig(t, "consent: {mode: advanced}\n"))
	if err != nil {
		t.Fatal(err)
	}
	cur, err := Load(writeConfig(t, "listen: \":9999\"\nconsent: {mode: basic}\nlog: {level: debug, decisions: {output: stderr}}\ncookieless: {secret: \"k3J9x0PqZ7vB2mWn5tR8\"}\n"))
	if err != nil {
		t.Fatal(err)
	}
	applied, restart := cur.Changes(old)
	if diff := cmp.Diff([]string{"consent.mode", "cookieless.secret", "log.level"}, applied); diff != "" {
		t.Errorf("applied (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff([]string{"listen", "log.decisions.output"}, restart); diff != "" {
		t.Errorf("restart (-want +got):\n%s", diff)
	}
	if a, r := cur.Changes(cur); len(a)+len(r) != 0 {
		t.Errorf("no change reports %v %v", a, r)
	}
}

// TestSampleConfigsAreClean: the project's own samples model good
// practice: with the secret in the environment, check warns only about
// what a sample is for (the dry run).
func TestSampleConfigsAreClean(t *testing.T) {
	t.Setenv("CONSENTGATE_COOKIELESS_SECRET", "9f1c2e7a4b8d0365f1e2a9c47b3d8e60")
	want := map[string][]string{
		"../testdata/config/dry-run.yaml": {"consent.enforce is false: DRY RUN, hits are forwarded unchanged"},
	}
	for _, f := range []string{"../testdata/config/dry-run.yaml", "../testdata/config/subdomain.yaml", "../testdata/config/tag-gateway.yaml"} {
		c, err := Load(f)
		if err != nil {
			t.Errorf("%s: %v", f, err)
			continue
		}
		if diff := cmp.Diff(want[f], c.Warnings); diff != "" {
			t.Errorf("%s warnings (-want +got):\n%s", f, diff)
		}
	}
}

func TestInvalidYAMLNamesTheLine(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name, give, want string
	}{
		{"duplicate key", "consent: {mode: basic}\nconsent: {mode: basic}\n", `F:2: not valid YAML: mapping key "consent" already defined at line 1`},
		{"unclosed list", "tags: [G-1\n", `F:1: not valid YAML: did not find expected ',' or ']'`},
	}
	for _, tt := range tests {
		path := writeConfig(t, tt.give)
		_, err := Load(path)
		var pe *ProblemsError
		if !errors.As(err, &pe) || len(pe.Problems) != 1 {
			t.Errorf("%s: Load = %v, want one problem", tt.name, err)
			continue
		}
		if got := strings.ReplaceAll(pe.Problems[0].Error(), path, "F"); got != tt.want {
			t.Errorf("%s: problem %q, want %q", tt.name, got, tt.want)
		}
	}
}

func TestNeedsRestart(t *testing.T) {
	t.Parallel()
	tests := []struct {
		give string
		want bool
	}{
		{"listen", true}, {"log.decisions.output", true}, {"delivery.spool.dir", true}, {"delivery.workers", true},
		{"log.level", false}, {"delivery.ga4", false}, {"consent.mode", false}, {"timeouts.upstream", false}, {"limits.max_url_bytes", false},
	}
	for _, tt := range tests {
		if got := NeedsRestart(tt.give); got != tt.want {
			t.Errorf("NeedsRestart(%q) = %v, want %v", tt.give, got, tt.want)
		}
	}
}
