package config

import (
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// nested writes key: value as a YAML file ("a.b: v" as "a:\n  b: v").
func nested(key, value string) string {
	parts := strings.Split(key, ".")
	var b strings.Builder
	for i, p := range parts {
		b.WriteString(strings.Repeat("  ", i) + p + ":")
		if i < len(parts)-1 {
			b.WriteString("\n")
		}
	}
	b.WriteString(" " + value + "\n")
	return b.String()
}

// problemsOf loads the config and returns each problem as "source: key:
// msg" with the file's path shown as F.
func problemsOf(t *testing.T, path string) []string {
	t.Helper()
	_, err := Load(path, WithFallbackSecret([]byte("0123456789abcdef0123456789abcdef")))
	if err == nil {
		return nil
	}
	var pe *ProblemsError
	if !errors.As(err, &pe) {
		t.Fatalf("Load = %v, want a *ProblemsError", err)
	}
	var out []string
	for _, e := range pe.Problems {
		msg := e.Error()
		if path != "" {
			msg = strings.ReplaceAll(msg, path, "F")
		}
		out = append(out, msg)
	}
	return out
}

// TestDurationsNeedAUnit: a bare number is refused for every duration
// key, in the file as in the environment, with the same message (it
// would be nanoseconds: timeouts.upstream: 5 answered every hit 504).
func TestDurationsNeedAUnit(t *testing.T) {
	n := 0
	for _, k := range Keys() {
		if k.Type != describeType(durationType) || strings.ContainsAny(k.Name, "<[") {
			continue
		}
		n++
		want := k.Name + `: "5" is not a duration such as 250ms, 5s, 1m or 1h`
		if diff := cmp.Diff([]string{"F:" + strconv.Itoa(strings.Count(k.Name, ".")+1) + ": " + want}, problemsOf(t, writeConfig(t, nested(k.Name, "5")))); diff != "" {
			t.Errorf("file %s: 5 (-want +got):\n%s", k.Name, diff)
		}
		t.Run(k.Name, func(t *testing.T) {
			t.Setenv(EnvName(k.Name), "5")
			if diff := cmp.Diff([]string{"environment variable " + EnvName(k.Name) + ": " + want}, problemsOf(t, "")); diff != "" {
				t.Errorf("environment (-want +got):\n%s", diff)
			}
		})
	}
	if n < 15 {
		t.Fatalf("only %d duration keys found", n)
	}
}

// TestFileAndEnvironmentTypeAlike: a value means the same in the file and
// in the environment. Each case is loaded both ways: both must accept it
// with the same effective setting, or both refuse it with the same
// message.
func TestFileAndEnvironmentTypeAlike(t *testing.T) {
	tests := []struct {
		name, key, give string
		want            string // the effective value; "" when refused
	}{
		{"quoted false is false", "consent.enforce", `"false"`, "false"},
		{"TRUE", "consent.enforce", "TRUE", "true"},
		{"1 is not a boolean", "consent.enforce", "1", ""},
		{"yes is not a boolean", "consent.ads_data_redaction", "yes", ""},
		{"off is not a boolean", "consent.signals.gpc", "off", ""},
		{"zero duration", "timeouts.drain", "0", "0s"},
		{"duration with unit", "cache.min_ttl", "90s", "1m30s"},
		{"bare duration", "cache.min_ttl", "60", ""},
		{"fractional whole number", "limits.max_body_bytes", "1.5", ""},
		{"exponent whole number", "delivery.spool.max_bytes", "1e9", ""},
		{"quoted whole number", "limits.max_body_bytes", `"70000"`, "70000"},
		{"number as string", "log.level", "debug", "debug"},
		{"comma list", "tags", "G-1,AW-2", "[G-1, AW-2]"},
		{"share", "log.decisions.sample_forward", "0.25", "0.25"},
		{"share not a number", "log.decisions.sample_forward", "half", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			file := writeConfig(t, nested(tt.key, tt.give))
			fromFile, fileErr := Load(file, WithFallbackSecret([]byte("0123456789abcdef0123456789abcdef")))
			t.Setenv(EnvName(tt.key), strings.Trim(tt.give, `"`))
			fromEnv, envErr := Load("", WithFallbackSecret([]byte("0123456789abcdef0123456789abcdef")))
			if tt.want == "" {
				if fileErr == nil || envErr == nil {
					t.Fatalf("%s = %s: file error %v, environment error %v; want both refused", tt.key, tt.give, fileErr, envErr)
				}
				msg := func(err error) string {
					var pe *ProblemsError
					if !errors.As(err, &pe) {
						t.Fatalf("%v is not a *ProblemsError", err)
					}
					var p *Problem
					if !errors.As(pe.Problems[0], &p) {
						t.Fatalf("%v is not a *Problem", pe.Problems[0])
					}
					return p.Msg
				}
				if msg(fileErr) != msg(envErr) {
					t.Errorf("file says %q, environment %q", msg(fileErr), msg(envErr))
				}
				return
			}
			if fileErr != nil || envErr != nil {
				t.Fatalf("%s = %s: file error %v, environment error %v; want both accepted", tt.key, tt.give, fileErr, envErr)
			}
			if fromFile.Settings[tt.key] != tt.want || fromEnv.Settings[tt.key] != tt.want {
				t.Errorf("%s: file %q, environment %q, want %q", tt.key, fromFile.Settings[tt.key], fromEnv.Settings[tt.key], tt.want)
			}
			if fromFile.PolicyVersion != fromEnv.PolicyVersion {
				t.Errorf("the same setting from the file and the environment gives policy versions %s and %s", fromFile.PolicyVersion, fromEnv.PolicyVersion)
			}
		})
	}
}

// TestSpoolDirIsAbsolute: a relative delivery.spool.dir is resolved at
// load, below systemd's $STATE_DIRECTORY when set, else below the working
// directory, so the spool does not move with the directory the binary is
// started from and the start log can name it; an absolute one and an
// empty one (no spool) stay as they are.
func TestSpoolDirIsAbsolute(t *testing.T) {
	wd, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name, state, give, want string
	}{
		{"default, working directory", "", "", filepath.Join(wd, "consentgate-spool")},
		{"default, systemd state directory", "/var/lib/consentgate:/var/lib/other", "", "/var/lib/consentgate/consentgate-spool"},
		{"relative", "/var/lib/consentgate", "delivery: {spool: {dir: q/../spool}}", "/var/lib/consentgate/spool"},
		{"absolute", "/var/lib/consentgate", "delivery: {spool: {dir: /srv/spool/}}", "/srv/spool"},
		{"off", "/var/lib/consentgate", `delivery: {spool: {dir: ""}, ga4: sync, mp: sync, ua: sync}`, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Setenv("STATE_DIRECTORY", tt.state)
			path := ""
			if tt.give != "" {
				path = writeConfig(t, tt.give+"\n")
			}
			c, err := Load(path)
			if err != nil {
				t.Fatal(err)
			}
			if c.Delivery.SpoolDir != tt.want || c.Settings["delivery.spool.dir"] != tt.want {
				t.Errorf("spool dir %q (setting %q), want %q", c.Delivery.SpoolDir, c.Settings["delivery.spool.dir"], tt.want)
			}
		})
	}
}
