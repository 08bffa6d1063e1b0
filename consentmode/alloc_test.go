//go:build !race

package consentmode

import "testing"

// TestDecideAllocs proves the decision path allocation-free once a Work
// is warm (docs/contributing.md: allocation pins).
func TestDecideAllocs(t *testing.T) {
	p := testPolicy()
	for name, in := range benchInputs() {
		var w Work
		Decide(in, p, &w)
		if n := testing.AllocsPerRun(100, func() { Decide(in, p, &w) }); n != 0 {
			t.Errorf("Decide(%s) allocates %v times per run, want 0", name, n)
		}
	}
}
