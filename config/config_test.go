package config

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/consentgate/consentgate/consentmode"
)

func writeConfig(t *testing.T, yaml string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "c.yaml")
	if err := os.WriteFile(path, []byte(yaml), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

func TestEmbeddedDefault(t *testing.T) {
	t.Parallel()
	c, err := Load("")
	if err != nil {
		t.Fatal(err)
	}
	if c.Listen != ":8080" || c.AdminListen != "127.0.0.1:9090" || c.Upstream != nil || !c.Enforce {
		t.Errorf("defaults: %+v", c)
	}
	if c.Policy.Mode != consentmode.ModeAdvanced || c.Policy.AdsDataRedaction || c.Policy.MPEnabled || c.Policy.UAForward {
		t.Errorf("policy defaults: %+v", c.Policy)
	}
	rule, _ := c.Policy.RuleFor(consentmode.MustRegion("DE"))
	if rule.Defaults[consentmode.AnalyticsStorage] != consentmode.Denied {
		t.Errorf("DE default %v", rule.Defaults)
	}
	rule, _ = c.Policy.RuleFor(consentmode.MustRegion("US"))
	if rule.Defaults[consentmode.AnalyticsStorage] != consentmode.Granted {
		t.Errorf("US default %v", rule.Defaults)
	}
	if rule, _ := c.Policy.RuleFor(consentmode.Region{}); rule.Defaults[consentmode.AdStorage] != consentmode.Denied {
		t.Errorf("unknown region default %v", rule.Defaults)
	}
	if len(c.TrustedProxies) == 0 || len(c.GeoHeaders) != 5 {
		t.Errorf("trust defaults: %v %v", c.TrustedProxies, c.GeoHeaders)
	}
	if len(c.Warnings) == 0 {
		t.Error("the default config must warn (no secret, no tags)")
	}
}

func TestUnknownKeyIsAnError(t *testing.T) {
	t.Parallel()
	_, err := Load(writeConfig(t, "listen: \":1\"\nconsent:\n  mdoe: basic\n"))
	if err == nil || !strings.Contains(err.Error(), "mdoe") {
		t.Fatalf("Load = %v, want an error naming consent.mdoe", err)
	}
}

func TestEnvOverridesKeysAbsentFromFile(t *testing.T) {
	t.Setenv("CONSENTGATE_CONSENT_MODE", "basic")
	t.Setenv("CONSENTGATE_TAGS", "G-ONE,aw-2")
	t.Setenv("CONSENTGATE_TIMEOUTS_UPSTREAM", "750ms")
	t.Setenv("CONSENTGATE_CONSENT_ADS_DATA_REDACTION", "true")
	c, err := Load(writeConfig(t, "listen: \":9999\"\n"))
	if err != nil {
		t.Fatal(err)
	}
	if c.Listen != ":9999" || c.Policy.Mode != consentmode.ModeBasic || !c.Policy.Tags["G-ONE"] || !c.Policy.Tags["AW-2"] ||
		c.Timeouts.Upstream != 750*time.Millisecond || !c.Policy.AdsDataRedaction {
		t.Errorf("env overrides not applied: mode %v tags %v upstream %v redaction %v", c.Policy.Mode, c.Policy.Tags, c.Timeouts.Upstream, c.Policy.AdsDataRedaction)
	}
}

func TestEnvOverridesFile(t *testing.T) {
	t.Setenv("CONSENTGATE_LISTEN", ":7777")
	c, err := Load(writeConfig(t, "listen: \":9999\"\n"))
	if err != nil {
		t.Fatal(err)
	}
	if c.Listen != ":7777" {
		t.Errorf("listen %q, want the environment's", c.Listen)
	}
}

func TestUnknownEnvIsAnError(t *testing.T) {
	t.Setenv("CONSENTGATE_CONSENT_MDOE", "basic")
	if _, err := Load(""); err == nil || !strings.Contains(err.Error(), "CONSENTGATE_CONSENT_MDOE") {
		t.Fatalf("Load = %v, want an error naming the variable", err)
	}
}

// TestCheckListsEveryProblem: one Load reports all problems at once.
func TestCheckListsEveryProblem(t *testing.T) {
	t.Parallel()
	yaml := `
listen: "nope"
upstream: "ftp://x"
path_prefix: "metrics"
tags: ["XYZ"]
consent:
  mode: strict
  default: maybe
  denied_regions: ["DE", "Germany"]
  regions:
    QQ-CA: {default: denied}
  signals: {gcp: true}
  cmp_cookies:
    - preset: nosuch
    - name: x
      format: xml
cookieless: {secret: "short"}
cors: {allowed_origins: ["*"]}
trusted_proxies: ["10.0.0.0/33"]
limits: {max_body_bytes: 0}
timeouts: {read: 0s}
log: {level: loud, decisions: {sample_forward: 2}}
`
	_, err := Load(writeConfig(t, yaml))
	var pe *ProblemsError
	if !errors.As(err, &pe) {
		t.Fatalf("Load = %v, want a *ProblemsError", err)
	}
	for _, want := range []string{"listen", "upstream", "path_prefix", "tags", "consent.mode", "consent.default", "denied_regions", "qq-ca",
		"gcp", "nosuch", "xml", "cookieless.secret", "cors", "trusted_proxies", "max_body_bytes", "timeouts.read", "log.level", "sample_forward"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("problems do not mention %q:\n%v", want, err)
		}
	}
}

func TestRegionOverridesMostSpecificWins(t *testing.T) {
	t.Parallel()
	c, err := Load(writeConfig(t, `
consent:
  regions:
    US: {default: denied}
    US-CA: {ad_storage: granted, signals: {gpc: false, us_opt_out_denies_ad_user_data: true}}
    DE: {analytics_storage: granted}
`))
	if err != nil {
		t.Fatal(err)
	}
	p := c.Policy
	ca, key := p.RuleFor(consentmode.MustRegion("US-CA"))
	if key.String() != "US-CA" || ca.Defaults[consentmode.AdStorage] != consentmode.Granted || ca.Defaults[consentmode.AnalyticsStorage] != consentmode.Denied ||
		ca.Signals.Has(consentmode.SignalGPC) || !ca.OptOutDeniesAdUserData {
		t.Errorf("US-CA rule %+v (key %v)", ca, key)
	}
	ny, key := p.RuleFor(consentmode.MustRegion("US-NY"))
	if key.String() != "US" || ny.Defaults[consentmode.AdStorage] != consentmode.Denied || !ny.Signals.Has(consentmode.SignalGPC) {
		t.Errorf("US-NY falls back to US: %+v (key %v)", ny, key)
	}
	de, _ := p.RuleFor(consentmode.MustRegion("DE"))
	if de.Defaults[consentmode.AnalyticsStorage] != consentmode.Granted || de.Defaults[consentmode.AdStorage] != consentmode.Denied {
		t.Errorf("DE keeps its denied base with one type granted: %+v", de)
	}
}

func TestPolicyVersionTracksConfigNotSecret(t *testing.T) {
	t.Parallel()
	a, err := Load(writeConfig(t, "cookieless: {secret: \"k3J9x0PqZ7vB2mWn5tR8\"}\n"))
	if err != nil {
		t.Fatal(err)
	}
	b, err := Load(writeConfig(t, "cookieless: {secret: \"Qe4Lr9Ty2Ui7Op0As5Df\"}\n"))
	if err != nil {
		t.Fatal(err)
	}
	c, err := Load(writeConfig(t, "consent: {mode: basic}\n"))
	if err != nil {
		t.Fatal(err)
	}
	if a.PolicyVersion != b.PolicyVersion || a.PolicyVersion == c.PolicyVersion || len(a.PolicyVersion) != 12 {
		t.Errorf("policy versions %s %s %s", a.PolicyVersion, b.PolicyVersion, c.PolicyVersion)
	}
}

func TestSampleConfigsLoad(t *testing.T) {
	t.Parallel()
	files, err := filepath.Glob("../testdata/config/*.yaml")
	if err != nil || len(files) == 0 {
		t.Fatalf("no sample configs: %v", err)
	}
	for _, f := range files {
		if _, err := Load(f); err != nil {
			t.Errorf("%s: %v", f, err)
		}
	}
}

func TestKafkaOffByDefault(t *testing.T) {
	t.Parallel()
	c, err := Load("")
	if err != nil {
		t.Fatal(err)
	}
	if c.Log.Kafka != nil {
		t.Errorf("Log.Kafka = %+v, want nil without brokers", c.Log.Kafka)
	}
}

func TestKafkaSettings(t *testing.T) {
	t.Setenv("CONSENTGATE_LOG_DECISIONS_KAFKA_BROKERS", "k1:9092,k2:9093")
	t.Setenv("CONSENTGATE_LOG_DECISIONS_KAFKA_SASL_PASSWORD", "s3cret-from-env")
	c, err := Load(writeConfig(t, `
log:
  decisions:
    kafka:
      topic: audit.consent-decisions
      compression: lz4
      tls: {enabled: true}
      sasl: {mechanism: scram-sha-512, username: gate}
`))
	if err != nil {
		t.Fatal(err)
	}
	k := c.Log.Kafka
	if k == nil || len(k.Brokers) != 2 || k.Brokers[1] != "k2:9093" || k.Topic != "audit.consent-decisions" || k.Compression != "lz4" ||
		!k.TLS || k.SASLMechanism != "scram-sha-512" || k.SASLUsername != "gate" || k.SASLPassword != "s3cret-from-env" ||
		k.MaxBufferedRecords != 100000 || k.Linger != 50*time.Millisecond || k.DeliveryTimeout != 2*time.Minute {
		t.Errorf("Log.Kafka = %+v", k)
	}
	// The password is a secret: it must not change the policy version.
	t.Setenv("CONSENTGATE_LOG_DECISIONS_KAFKA_SASL_PASSWORD", "another-secret")
	c2, err := Load(writeConfig(t, "log:\n  decisions:\n    kafka:\n      topic: audit.consent-decisions\n      compression: lz4\n      tls: {enabled: true}\n      sasl: {mechanism: scram-sha-512, username: gate}\n"))
	if err != nil {
		t.Fatal(err)
	}
	if c2.PolicyVersion != c.PolicyVersion {
		t.Errorf("policy version moved with the Kafka password: %s -> %s", c.PolicyVersion, c2.PolicyVersion)
	}
}

func TestKafkaProblems(t *testing.T) {
	t.Parallel()
	_, err := Load(writeConfig(t, `
log:
  decisions:
    kafka:
      brokers: ["nohostport", "ok:9092"]
      topic: "bad topic"
      compression: brotli
      max_buffered_records: 0
      delivery_timeout: 0s
      tls: {ca_file: /x.pem}
      sasl: {mechanism: kerberos}
`))
	var pe *ProblemsError
	if !errors.As(err, &pe) {
		t.Fatalf("Load = %v, want problems", err)
	}
	for _, want := range []string{`brokers: "nohostport"`, `topic: "bad topic"`, `compression: "brotli"`, "max_buffered_records", "delivery_timeout",
		"tls.ca_file: set, but tls.enabled is false", `sasl.mechanism: "kerberos"`} {
		if !strings.Contains(err.Error(), "log.decisions.kafka."+want) {
			t.Errorf("problems miss %q:\n%v", want, err)
		}
	}
}
