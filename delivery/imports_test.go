package delivery

import (
	"errors"
	"os/exec"
	"strings"
	"testing"
)

// TestImports keeps the rooms apart (docs/contributing.md): delivery and
// its spool know nothing of consent, configuration, the decision log or
// the hit path, and proxy is wired by the command alone. It reads the
// whole module's graph with go list, fails (never skips) when go list
// cannot run, and checks that the listing names the packages it judges,
// so an empty answer cannot pass for a clean one.
func TestImports(t *testing.T) {
	const mod = "github.com/consentgate/consentgate"
	out, err := exec.Command("go", "list", "-f",
		`{{.ImportPath}}|{{join .Deps " "}} {{join .TestImports " "}} {{join .XTestImports " "}}`, mod+"/...").Output()
	if err != nil {
		var stderr []byte
		if ee, ok := errors.AsType[*exec.ExitError](err); ok {
			stderr = ee.Stderr
		}
		t.Fatalf("go list: %v\n%s", err, stderr)
	}
	// Packages that must not depend on the listed ones, directly or not.
	forbidden := map[string][]string{
		mod + "/delivery":       {mod + "/proxy", mod + "/config", mod + "/consentmode", mod + "/declog"},
		mod + "/delivery/spool": {mod + "/proxy", mod + "/config", mod + "/consentmode", mod + "/declog", mod + "/delivery"},
	}
	seen := map[string]bool{}
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		pkg, deps, _ := strings.Cut(line, "|")
		seen[pkg] = true
		for _, dep := range strings.Fields(deps) {
			for _, bad := range forbidden[pkg] {
				if dep == bad || strings.HasPrefix(dep, bad+"/") {
					t.Errorf("%s depends on %s", pkg, dep)
				}
			}
			if dep == mod+"/proxy" && pkg != mod+"/proxy" && !strings.HasPrefix(pkg, mod+"/cmd/") {
				t.Errorf("%s depends on proxy: only cmd/ may", pkg)
			}
		}
	}
	for _, pkg := range []string{mod + "/delivery", mod + "/delivery/spool", mod + "/proxy", mod + "/cmd/consentgate"} {
		if !seen[pkg] {
			t.Fatalf("go list did not list %s; got %q", pkg, out)
		}
	}
}
