package config

import (
	"strings"
	"testing"
)

func TestClientIDSetting(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		give    string
		wantTag bool
		wantErr bool
	}{
		{"", false, false},
		{"cookieless: {client_id: ephemeral}\n", false, false},
		{"cookieless: {client_id: tag}\n", true, false},
		{"cookieless: {client_id: cid}\n", false, true},
	} {
		c, err := loadYAML(t, tt.give)
		if (err != nil) != tt.wantErr {
			t.Errorf("Load(%q) error %v, want error %v", tt.give, err, tt.wantErr)
			continue
		}
		if err != nil {
			if !strings.Contains(err.Error(), "cookieless.client_id") {
				t.Errorf("error %q does not name the key", err)
			}
			continue
		}
		if c.Policy.ClientIDTag != tt.wantTag {
			t.Errorf("Load(%q): ClientIDTag = %v", tt.give, c.Policy.ClientIDTag)
		}
	}
}

// TestSubdomainAdsGeolocationWarning: subdomain style with Ads or
// Floodlight hits possible warns and points to the tag-gateway style.
func TestSubdomainAdsGeolocationWarning(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		give string
		want bool
	}{
		{"", true},
		{"tags: [G-ABC123]\n", false},
		{"tags: [G-ABC123, AW-123]\n", true},
		{"upstream: https://G-ABC123.fps.goog\npath_prefix: /metrics\n", false},
	} {
		c, err := loadYAML(t, tt.give)
		if err != nil {
			t.Fatal(err)
		}
		got := strings.Contains(strings.Join(c.Warnings, "\n"), "tag-gateway style")
		if got != tt.want {
			t.Errorf("Load(%q): geolocation warning %v, want %v (%v)", tt.give, got, tt.want, c.Warnings)
		}
	}
}

func TestCORSRule(t *testing.T) {
	t.Parallel()
	c, err := Load("")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(c.CORSRule(), "same registrable domain") {
		t.Errorf("default rule %q", c.CORSRule())
	}
	c, err = Load(writeConfig(t, "cors: {allowed_origins: [\"https://shop.example\"]}\n"))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(c.CORSRule(), "only https://shop.example") {
		t.Errorf("listed rule %q", c.CORSRule())
	}
}
