package main

import (
	"bytes"
	"os"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/consentgate/consentgate/config"
)

// TestCheckRefuses: check says why an empty file and an exposed admin
// listener are refused, and passes a token-protected one.
func TestCheckRefuses(t *testing.T) {
	dir := t.TempDir()
	for _, tt := range []struct {
		name, give, want string
		ok               bool
	}{
		{"empty", "", "sets nothing", false},
		{"comments", "# tags: [G-1]\n", "sets nothing", false},
		{"admin on every interface", "admin_listen: \":9999\"\n", "admin.token", false},
		{"admin with a token", "admin_listen: \"0.0.0.0:9090\"\nadmin: {token: \"0123456789abcdef-token\"}\n", "OK", true},
	} {
		path := filepath.Join(dir, strings.ReplaceAll(tt.name, " ", "_")+".yaml")
		if err := os.WriteFile(path, []byte(tt.give), 0o600); err != nil {
			t.Fatal(err)
		}
		t.Setenv("CONSENTGATE_CONFIG", "")
		var out, errOut bytes.Buffer
		err := run([]string{"check", "--config", path}, &out, &errOut)
		if (err == nil) != tt.ok {
			t.Errorf("%s: check = %v, want ok %v", tt.name, err, tt.ok)
		}
		if got := out.String() + errOut.String(); !strings.Contains(got, tt.want) {
			t.Errorf("%s: check said %q, want it to mention %q", tt.name, got, tt.want)
		}
	}
}

// TestVersion: version, --version and -version print the version on the
// first line, then the Go version and platform, the build date, the
// commit and every dependency, from the build info.
func TestVersion(t *testing.T) {
	t.Parallel()
	for _, arg := range []string{"version", "--version", "-version", "-v"} {
		out, _, err := runCLI(t, arg)
		if err != nil {
			t.Fatalf("%s: %v", arg, err)
		}
		lines := strings.Split(out, "\n")
		if lines[0] != "consentgate "+version || lines[1] != "go:       "+runtime.Version()+" "+runtime.GOOS+"/"+runtime.GOARCH {
			t.Errorf("%s:\n%s", arg, out)
		}
	}
	buildDate = "2026-12-07T11:00:00Z"
	defer func() { buildDate = "" }()
	var b bytes.Buffer
	writeVersion(&b, &debug.BuildInfo{
		Deps:     []*debug.Module{{Path: "github.com/valyala/fasthttp", Version: "v1.62.0"}, {Path: "go.uber.org/zap", Version: "v1.27.0", Replace: &debug.Module{Path: "../zap", Version: ""}}},
		Settings: []debug.BuildSetting{{Key: "vcs.revision", Value: "ca8abc3"}, {Key: "vcs.time", Value: "2026-12-07T10:00:00Z"}, {Key: "vcs.modified", Value: "true"}},
	})
	want := "consentgate " + version + "\n" +
		"go:       " + runtime.Version() + " " + runtime.GOOS + "/" + runtime.GOARCH + "\n" +
		"built:    2026-12-07T11:00:00Z\n" +
		"commit:   ca8abc3 of 2026-12-07T10:00:00Z (with uncommitted changes)\n" +
		"dependencies:\n" +
		"  github.com/valyala/fasthttp v1.62.0\n" +
		"  go.uber.org/zap v1.27.0 => ../zap \n"
	if diff := cmp.Diff(want, b.String()); diff != "" {
		t.Errorf("version (-want +got):\n%s", diff)
	}
}

// TestConfigCommand: `consentgate config` prints every key with its
// effective value and where it came from (default, file:line,
// environment variable), secrets as hashes.
func TestConfigCommand(t *testing.T) {
	path := filepath.Join(t.TempDir(), "c.yaml")
	if err := os.WriteFile(path, []byte("tags: [G-1]\nconsent:\n  regions:\n    US-CA: {default: denied}\ntimeouts: {upstream: 3s}\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("CONSENTGATE_CONSENT_MODE", "basic")
	t.Setenv("CONSENTGATE_COOKIELESS_SECRET", "9f1c2e7a4b8d0365f1e2a9c47b3d8e60")
	out, errOut, err := runCLI(t, "config", "--config", path)
	if err != nil {
		t.Fatalf("config: %v\n%s", err, errOut)
	}
	got := map[string][2]string{}
	for _, line := range strings.Split(strings.TrimSpace(out), "\n")[1:] {
		setting, source, ok := strings.Cut(line, "  # ")
		key, value, ok2 := strings.Cut(strings.TrimSpace(setting), ": ")
		if !ok || !ok2 {
			t.Fatalf("line %q is not key: value  # source", line)
		}
		got[key] = [2]string{value, source}
	}
	want := map[string][2]string{
		"tags":                          {"[G-1]", path + ":1"},
		"consent.mode":                  {"basic", "environment variable CONSENTGATE_CONSENT_MODE"},
		"consent.enforce":               {"true", "default"},
		"consent.regions.us-ca.default": {"denied", path + ":4"},
		"consent.cmp_cookies[0].preset": {"euconsent-v2", "default"},
		"timeouts.upstream":             {"3s", path + ":5"},
		"timeouts.read":                 {"10s", "default"},
		"listen":                        {`":8080"`, "default"},
	}
	for k, w := range want {
		if got[k] != w {
			t.Errorf("%s: %q, want %q", k, got[k], w)
		}
	}
	if s := got["cookieless.secret"]; !strings.HasPrefix(s[0], "sha256:") || strings.Contains(out, "9f1c2e7a4b8d0365") {
		t.Errorf("the secret is shown: %q", s)
	}
	for _, k := range config.Keys() {
		if _, ok := got[k.Name]; !ok && !strings.ContainsAny(k.Name, "<[") && k.Name != "consent.signals" && k.Name != "consent.regions" && k.Name != "consent.cmp_cookies" && k.Name != "vendors.events" {
			t.Errorf("key %s is not printed", k.Name)
		}
	}
}

// TestCheckCORSAdvice: check explains the CORS rule where browsers send
// cross-origin hits (subdomain style), and says nothing of it for a
// tag-gateway config, whose hits are same-origin.
func TestCheckCORSAdvice(t *testing.T) {
	t.Setenv("CONSENTGATE_COOKIELESS_SECRET", "9f1c2e7a4b8d0365f1e2a9c47b3d8e60")
	for _, tt := range []struct {
		file string
		cors bool
	}{{"../../testdata/config/subdomain.yaml", true}, {"../../testdata/config/tag-gateway.yaml", false}} {
		out, errOut, err := runCLI(t, "check", "--config", tt.file)
		if err != nil {
			t.Fatalf("check %s: %v\n%s", tt.file, err, errOut)
		}
		if got := strings.Contains(out, "cors"); got != tt.cors {
			t.Errorf("check %s mentions CORS: %v, want %v\n%s", tt.file, got, tt.cors, out)
		}
	}
}

// TestListenSuggestsAnAddress: a bare port in listen is refused with the
// address it probably meant.
func TestListenSuggestsAnAddress(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "c.yaml")
	if err := os.WriteFile(path, []byte("listen: 8080\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	_, errOut, err := runCLI(t, "check", "--config", path)
	want := "config " + path + ": 1 problem\n  - " + path + `:1: listen: "8080" is not host:port (did you mean ":8080", every interface, or "127.0.0.1:8080", this host only?)` + "\n"
	if err == nil || errOut != want {
		t.Errorf("check: %v\n%s\nwant:\n%s", err, errOut, want)
	}
}
