package proxy

import (
	"bytes"
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
	t.Parallel()
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
	m := NewMetrics("x")
	for _, n := range m.Names() {
		known[n] = true
	}
	var exposition bytes.Buffer
	m.WritePrometheus(&exposition) // the runtime and process metrics too
	for _, n := range regexp.MustCompile(`(?m)^(?:go|process)_[a-z_]+`).FindAllString(exposition.String(), -1) {
		known[n] = true
	}
	for _, n := range delivery.GaugeNames() { // created per upstream lane
		known[n] = true
	}
	for _, n := range Families() { // the vendors' too, created when a vendor is on
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
	re := regexp.MustCompile(`\b(?:consentgate|go|process)_[a-z_]+`)
	scoped := regexp.MustCompile(`\b(?:consentgate|go|process)_[a-z_]+\{job=~"\$job",instance=~"\$instance"`)
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
	for _, n := range []string{"consentgate_responses_total", "consentgate_upstream_errors_total", "consentgate_upstream_duration_seconds",
		// memory, file descriptors and CPU per hit: what capacity planning and the runbook read
		"process_resident_memory_bytes", "go_memlimit_bytes", "process_open_fds", "process_max_fds", "process_cpu_seconds_total"} {
		if !used[n] {
			t.Errorf("no panel shows %s", n)
		}
	}
}
