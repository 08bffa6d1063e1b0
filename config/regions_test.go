package config

import (
	"errors"
	"strings"
	"testing"

	"github.com/consentgate/consentgate/consentmode"
)

// TestRegionCodes: consent.region_aliases and consent.user_assigned_regions
// reach the policy, regions may be named by a listed alias, and bad
// entries are problems.
func TestRegionCodes(t *testing.T) {
	t.Parallel()
	c, err := Load(writeConfig(t, `
consent:
  region_aliases: {UK: GB, EL: GR}
  user_assigned_regions: [XK]
  regions:
    UK: {default: granted}
`))
	if err != nil {
		t.Fatal(err)
	}
	p := c.Policy
	if got := p.Resolve(consentmode.MustRegion("UK")); got != consentmode.MustRegion("GB") {
		t.Errorf("UK resolves to %s", got)
	}
	if got := p.Resolve(consentmode.MustRegion("XK")); got != consentmode.MustRegion("XK") {
		t.Errorf("XK resolves to %s", got)
	}
	if rule, key := p.RuleFor(consentmode.MustRegion("GB")); key != consentmode.MustRegion("GB") || rule.Defaults[0] != consentmode.Granted {
		t.Errorf("regions.UK did not set GB's rule: %v %v", key, rule.Defaults)
	}

	_, err = Load(writeConfig(t, `
consent:
  region_aliases: {GB: DE, QQ: ZZ}
  user_assigned_regions: [DE, XK-1]
  regions:
    EL: {default: granted}
`))
	var pe *ProblemsError
	if !errors.As(err, &pe) {
		t.Fatalf("Load = %v, want problems", err)
	}
	for _, want := range []string{"consent.region_aliases.gb", "consent.region_aliases.qq", "user_assigned_regions[0]", "user_assigned_regions[1]", "consent.regions.el"} {
		if !strings.Contains(strings.ToLower(err.Error()), want) {
			t.Errorf("problems do not mention %q:\n%v", want, err)
		}
	}
}
