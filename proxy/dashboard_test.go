package proxy

import (
	"encoding/json"
	"os"
	"regexp"
	"strings"
	"testing"
)

// TestDashboardUsesRealMetrics keeps deploy/grafana/consentgate.json in
// step with the metrics the gateway exports.
func TestDashboardUsesRealMetrics(t *testing.T) {
	b, err := os.ReadFile("../deploy/grafana/consentgate.json")
	if err != nil {
		t.Fatal(err)
	}
	var d struct {
		Panels []struct {
			Title   string
			Targets []struct{ Expr string }
		}
	}
	if err := json.Unmarshal(b, &d); err != nil {
		t.Fatal(err)
	}
	known := map[string]bool{}
	for _, n := range NewMetrics("x").Names() {
		known[n] = true
	}
	for _, g := range laneGauges { // created per upstream lane
		known[g.name] = true
	}
	re := regexp.MustCompile(`consentgate_[a-z_]+`)
	for _, p := range d.Panels {
		for _, tg := range p.Targets {
			for _, name := range re.FindAllString(tg.Expr, -1) {
				base := strings.TrimSuffix(strings.TrimSuffix(name, "_bucket"), "_count")
				if !known[base] {
					t.Errorf("panel %q uses %s, which the gateway does not export", p.Title, name)
				}
			}
		}
	}
}
