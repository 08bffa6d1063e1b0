package config

import (
	"errors"
	"strings"
	"testing"
)

// TestFileThatSetsNothingIsRefused: an empty or truncated file must not
// silently become the embedded default (a tags allowlist would vanish,
// upstream would switch to Google's hosts).
func TestFileThatSetsNothingIsRefused(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		name, give string
		empty      bool
	}{
		{"empty", "", true},
		{"whitespace", "\n  \n", true},
		{"only comments", "# tags: [G-1]\n# upstream: https://x.example\n", true},
		{"empty mapping", "{}\n", true},
		{"null document", "~\n", true},
		{"does not parse", "tags: [G-1\nupstream: \"https://x", false},
		{"truncated mid-mapping", "tags:\n  - G-1\n upstream: x\n", false},
		{"a list, not a mapping", "- G-1\n- G-2\n", false},
	} {
		_, err := Load(writeConfig(t, tt.give))
		if err == nil {
			t.Errorf("%s: Load accepted %q", tt.name, tt.give)
			continue
		}
		if got := errors.Is(err, ErrEmptyFile); got != tt.empty {
			t.Errorf("%s: errors.Is(err, ErrEmptyFile) = %v, want %v (%v)", tt.name, got, tt.empty, err)
		}
	}
}

// TestAdminListenRule: an admin listener beyond loopback needs a token.
func TestAdminListenRule(t *testing.T) {
	for _, tt := range []struct {
		give string
		ok   bool
	}{
		{`admin_listen: "127.0.0.1:9090"`, true},
		{`admin_listen: "[::1]:9090"`, true},
		{`admin_listen: "localhost:9090"`, true},
		{`admin_listen: ":9999"`, false},
		{`admin_listen: "0.0.0.0:9090"`, false},
		{`admin_listen: "[::]:9090"`, false},
		{`admin_listen: "10.1.2.3:9090"`, false},
		{`admin_listen: "admin.internal:9090"`, false},
		{"admin_listen: \":9999\"\nadmin: {token: \"0123456789abcdef0123\"}", true},
		{"admin_listen: \"0.0.0.0:9090\"\nadmin: {token: \"short\"}", false},
	} {
		_, err := Load(writeConfig(t, tt.give))
		if (err == nil) != tt.ok {
			t.Errorf("Load(%q) = %v, want ok %v", tt.give, err, tt.ok)
		}
		if err != nil && !tt.ok && !strings.Contains(err.Error(), "admin") {
			t.Errorf("Load(%q): error does not name the admin setting: %v", tt.give, err)
		}
	}
	t.Setenv("CONSENTGATE_ADMIN_TOKEN", "from-the-environment-0123")
	c, err := Load(writeConfig(t, `admin_listen: ":9090"`))
	if err != nil || c.AdminToken != "from-the-environment-0123" {
		t.Errorf("token from the environment: %v %+v", err, c)
	}
}

func TestAdminTokenNotInPolicyVersion(t *testing.T) {
	t.Parallel()
	a, err := Load(writeConfig(t, "admin: {token: \"aaaaaaaaaaaaaaaaaaaa\"}"))
	if err != nil {
		t.Fatal(err)
	}
	b, err := Load(writeConfig(t, "admin: {token: \"bbbbbbbbbbbbbbbbbbbb\"}"))
	if err != nil {
		t.Fatal(err)
	}
	if a.PolicyVersion != b.PolicyVersion {
		t.Error("the admin token changes the policy version (it would leak into logs' hash input)")
	}
	if a.Same(b) {
		t.Error("configs with different tokens are the Same")
	}
	c, _ := Load(writeConfig(t, "admin: {token: \"aaaaaaaaaaaaaaaaaaaa\"}\n"))
	if !a.Same(c) {
		t.Error("identical files are not the Same")
	}
}

func TestLimitsValidation(t *testing.T) {
	t.Parallel()
	for _, give := range []string{
		"limits: {max_conns_per_ip: 0}",
		"limits: {max_reading_requests: -1}",
		"limits: {max_buffered_bytes: 1000}",
		"limits: {max_connections: -5}",
	} {
		if _, err := Load(writeConfig(t, give)); err == nil || !strings.Contains(err.Error(), "limits.") {
			t.Errorf("Load(%q) = %v, want a limits problem", give, err)
		}
	}
	c, err := Load(writeConfig(t, "limits: {max_connections: 0}"))
	if err != nil || c.Limits.MaxConnections != 0 || c.Limits.MaxConnsPerIP <= 0 || c.Limits.MaxReadingRequests <= 0 || c.Limits.MaxBufferedBytes <= 0 {
		t.Errorf("defaults: %v %+v", err, c.Limits)
	}
}

// loadYAML loads yaml as a config file, or the embedded default for ""
// (an empty file is refused).
func loadYAML(t *testing.T, yaml string) (*Config, error) {
	t.Helper()
	if yaml == "" {
		return Load("")
	}
	return Load(writeConfig(t, yaml))
}
