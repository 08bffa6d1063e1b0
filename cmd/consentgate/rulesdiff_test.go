package main

import (
	"strings"
	"testing"
)

// TestRulesDiff: --diff names each rule-table entry that changes, with
// both values, and nothing for an unchanged table.
func TestRulesDiff(t *testing.T) {
	t.Parallel()
	out, _, err := runCLI(t, "rules", "--diff", "", "../../testdata/audit/policy-basic.yaml")
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		"- mode = advanced\n+ mode = basic\n",
		"- outcomes[ga4_collect analytics_storage denied].action = cookieless\n+ outcomes[ga4_collect analytics_storage denied].action = block\n",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("diff lacks %q:\n%s", want, out)
		}
	}
	if strings.Contains(out, "all granted].action") {
		t.Errorf("diff lists an unchanged outcome:\n%s", out)
	}
	out, _, err = runCLI(t, "rules", "--diff", "../../testdata/audit/policy-basic.yaml", "../../testdata/audit/policy-basic.yaml")
	if err != nil || !strings.Contains(out, "the rule tables are the same") || strings.Count(out, "\n") != 3 {
		t.Errorf("same config: %v\n%s", err, out)
	}
}
