package main

import (
	"errors"
	"strings"
	"testing"
)

// TestEveryHelpExitsZero: each subcommand answers --help and -h on stdout
// with status 0, in one shared format.
func TestEveryHelpExitsZero(t *testing.T) {
	t.Parallel()
	for _, c := range commands() {
		for _, flag := range []string{"--help", "-h"} {
			out, errOut, err := runCLI(t, c.name, flag)
			if err != nil {
				t.Errorf("%s %s: %v (stderr %q)", c.name, flag, err, errOut)
				continue
			}
			want := "Usage: consentgate " + c.name
			if !strings.HasPrefix(out, want) {
				t.Errorf("%s %s: stdout does not start with %q:\n%s", c.name, flag, want, out)
			}
			if errOut != "" {
				t.Errorf("%s %s: wrote to stderr: %q", c.name, flag, errOut)
			}
			if strings.Contains(out, "-config") && !strings.Contains(out, "CONSENTGATE_CONFIG") {
				t.Errorf("%s --help does not say where the config comes from:\n%s", c.name, out)
			}
		}
		if out, _, err := runCLI(t, "help", c.name); err != nil || !strings.HasPrefix(out, "Usage: consentgate "+c.name) {
			t.Errorf("help %s: %v\n%s", c.name, err, out)
		}
	}
	out, _, err := runCLI(t, "--help")
	if err != nil {
		t.Fatalf("--help: %v", err)
	}
	for _, c := range commands() {
		if !strings.Contains(out, "consentgate "+strings.TrimSpace(c.name+" "+c.synopsis)+"\n") {
			t.Errorf("top-level usage lacks the synopsis of %s:\n%s", c.name, out)
		}
	}
}

// TestUsageMistakesExitTwo: a wrong flag or a missing argument prints the
// command's usage on stderr with status 2.
func TestUsageMistakesExitTwo(t *testing.T) {
	t.Parallel()
	for _, args := range [][]string{{"check", "--nope"}, {"explain"}, {"audit"}, {"serve", "extra"}, {"frobnicate"}, {}} {
		out, errOut, err := runCLI(t, args...)
		if !errors.Is(err, errUsage) {
			t.Errorf("%q: err %v, want errUsage", args, err)
		}
		if out != "" || !strings.Contains(errOut, "Usage:") && !strings.Contains(errOut, "Usage: consentgate") {
			t.Errorf("%q: stdout %q, stderr %q", args, out, errOut)
		}
	}
}
