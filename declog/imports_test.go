package declog

import (
	"errors"
	"os/exec"
	"strings"
	"testing"
)

// TestImports enforces the package's rule (doc.go): declog depends on
// neither the hit path (proxy, delivery) nor fasthttp, with or without
// the Kafka sink, and the nokafka build leaves franz-go out.
func TestImports(t *testing.T) {
	t.Parallel()
	const module = "github.com/consentgate/consentgate/"
	forbidden := []string{module + "proxy", module + "delivery", "github.com/valyala/fasthttp"}
	for _, tt := range []struct {
		name  string
		tags  string
		extra []string
	}{
		{name: "default"},
		{name: "nokafka", tags: "nokafka", extra: []string{"github.com/twmb/franz-go"}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			deps := goListDeps(t, tt.tags)
			if !deps[module+"declog"] {
				t.Fatalf("go list -deps did not list declog itself: %v", deps)
			}
			for dep := range deps {
				for _, bad := range append(forbidden, tt.extra...) {
					if dep == bad || strings.HasPrefix(dep, bad+"/") {
						t.Errorf("declog depends on %s", dep)
					}
				}
			}
		})
	}
}

func goListDeps(t *testing.T, tags string) map[string]bool {
	t.Helper()
	out, err := exec.Command("go", "list", "-tags", tags, "-deps", "-f", "{{if not .Standard}}{{.ImportPath}}{{end}}", ".").Output()
	if err != nil {
		var stderr []byte
		if ee, ok := errors.AsType[*exec.ExitError](err); ok {
			stderr = ee.Stderr
		}
		t.Fatalf("go list -deps: %v\n%s", err, stderr)
	}
	deps := map[string]bool{}
	for _, d := range strings.Fields(string(out)) {
		deps[d] = true
	}
	return deps
}
