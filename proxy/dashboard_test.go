package proxy

import (
	"encoding/json"
	"os"
	"regexp"
	"strings"
	"testing"

	"github.com/consentgate/consentgate/delivery"
)

// TestDashboardUsesRealMetrics keeps deploy/grafana/consentgate.json in
// step with the metrics the gateway exports.
func TestDashboardUsesRealMetrics(t *testing.T) {
	b, err := os.ReadFile("../deploy/grafana/consentgate.json")
	if err != nil {
		t.Fatal(err)
	}
	var d struct {
		Templating struct {
			List []struct{ Name string }
		}
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
	for _, n := range delivery.GaugeNames() { // created per upstream lane
		known[n] = true
	}
	vars := map[string]bool{}
	for _, v := range d.Templating.List {
		vars[v.Name] = true
	}
	if !vars["job"] || !vars["instance"] {
		t.Errorf("dashboard variables %v: want job and instance", vars)
	}
	used := map[string]bool{}
	re := regexp.MustCompile(`consentgate_[a-z_]+`)
	scoped := regexp.MustCompile(`consentgate_[a-z_]+\{job=~"\$job",instance=~"\$instance"`)
	for _, p := range d.Panels {
		for _, tg := range p.Targets {
			if n, m := len(re.FindAllString(tg.Expr, -1)), len(scoped.FindAllString(tg.Expr, -1)); n != m {
				t.Errorf("panel %q: %d of %d series not scoped to $job and $instance: %s", p.Title, n-m, n, tg.Expr)
			}
			for _, name := range re.FindAllString(tg.Expr, -1) {
				used[strings.TrimSuffix(strings.TrimSuffix(name, "_bucket"), "_count")] = true
			}
			for _, name := range re.FindAllString(tg.Expr, -1) {
				base := strings.TrimSuffix(strings.TrimSuffix(name, "_bucket"), "_count")
				if !known[base] {
					t.Errorf("panel %q uses %s, which the gateway does not export", p.Title, name)
				}
			}
		}
	}
	for _, n := range []string{"consentgate_responses_total", "consentgate_upstream_errors_total", "consentgate_upstream_duration_seconds"} {
		if !used[n] {
			t.Errorf("no panel shows %s", n)
		}
	}
}
