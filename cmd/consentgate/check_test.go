package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
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
