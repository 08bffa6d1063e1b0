package config

import (
	"strings"
	"testing"
)

// TestPolicyVersionHashesOnlyPolicy: the policy version moves with every
// setting that changes a decision or a forwarded byte, and with nothing
// else, so that an auditor reproducing a verdict with `explain` gets the
// version of the serving gateway whatever its listeners, timeouts, logs,
// delivery or spool say. Every policy key of Keys needs a row in moves.
func TestPolicyVersionHashesOnlyPolicy(t *testing.T) {
	t.Parallel()
	secret := WithFallbackSecret([]byte("0123456789abcdef0123456789abcdef"))
	base, err := Load("", secret)
	if err != nil {
		t.Fatal(err)
	}
	load := func(t *testing.T, yaml string) *Config {
		t.Helper()
		c, err := Load(writeConfig(t, yaml), secret)
		if err != nil {
			t.Fatalf("%s: %v", yaml, err)
		}
		return c
	}

	keeps := map[string]string{
		"listen":              `listen: "127.0.0.1:8081"`,
		"admin_listen":        `admin_listen: "127.0.0.1:9091"`,
		"admin.token":         `{admin_listen: ":9090", admin: {token: "0123456789abcdefXYZ"}}`,
		"cookieless.secret":   `cookieless: {secret: "k3J9x0PqZ7vB2mWn5tR8"}`,
		"cors":                `cors: {allowed_origins: ["https://shop.example"]}`,
		"limits":              `limits: {max_body_bytes: 32768, max_url_bytes: 4096, max_conns_per_ip: 64, reduce_memory: false}`,
		"timeouts":            `timeouts: {read: 3s, write: 3s, idle: 30s, upstream: 2s, upstream_conn_wait: 50ms, upstream_idle: 5s, drain: 0s, shutdown: 9s}`,
		"log":                 `log: {level: debug, format: console, decisions: {output: stderr, sample_forward: 0.1}}`,
		"log.decisions.kafka": `log: {decisions: {kafka: {brokers: ["k:9092"], topic: t, linger: 1s}}}`,
		"log.decisions chain": `log: {decisions: {checkpoint: 5m, signing_key: /etc/consentgate/decisions.key}}`,
		"cache":               `cache: {max_bytes: 1048576, min_ttl: 1s, max_ttl: 2h, stale_for: 1h, browser_max_age: 60s}`,
		"delivery":            `delivery: {ga4: sync, mp: sync, ads: queue, max_age: 10m, queue_size: 10, queue_bytes: 65536, workers: 4, pipeline_conns: 2, drain: 0s}`,
		"delivery.spool":      `delivery: {spool: {dir: /var/lib/consentgate/spool, max_bytes: 33554432, segment_bytes: 1048576, sync_interval: 1s}}`,
		"delivery.spool off":  `delivery: {spool: {dir: ""}}`,
	}
	for name, yaml := range keeps {
		if c := load(t, yaml+"\n"); c.PolicyVersion != base.PolicyVersion {
			t.Errorf("%s moves the policy version (%s → %s): it is not policy", name, base.PolicyVersion, c.PolicyVersion)
		}
	}

	moves := map[string]string{
		"upstream":                      `upstream: https://G-ABC123.fps.goog`,
		"path_prefix":                   `path_prefix: /metrics`,
		"tags":                          `tags: [G-ABC123]`,
		"mp.enabled":                    `mp: {enabled: true}`,
		"ua.forward":                    `ua: {forward: true}`,
		"consent.mode":                  `consent: {mode: basic}`,
		"consent.profile":               `consent: {profile: google}`,
		"consent.region_aliases":        `consent: {region_aliases: {UK: GB}}`,
		"consent.user_assigned_regions": `consent: {user_assigned_regions: [XK, XZ]}`,
		"consent.enforce":               `consent: {enforce: false}`,
		"consent.ads_data_redaction":    `consent: {ads_data_redaction: true}`,
		"consent.default":               `consent: {default: denied}`,
		"consent.unknown_region":        `consent: {unknown_region: granted}`,
		"consent.denied_regions":        `consent: {denied_regions: [DE]}`,
		"consent.signals":               `consent: {signals: {gpc: false, gpp: false}}`,
		"consent.signals.cmp_cookie":    `consent: {signals: {cmp_cookie: false}}`,
		"consent.signals.tcf":           `consent: {signals: {tcf: false}}`,
		"consent.signals.gpc":           `consent: {signals: {gpc: false}}`,
		"consent.signals.us_privacy":    `consent: {signals: {us_privacy: false}}`,
		"consent.signals.gpp":           `consent: {signals: {gpp: false}}`,
		"consent.signals.tcf_strict":    `consent: {signals: {tcf_strict: true}}`,
		"consent.signals.us_opt_out_denies_ad_user_data": `consent: {signals: {us_opt_out_denies_ad_user_data: true}}`,
		"consent.regions":                           `consent: {regions: {US-CA: {default: denied}}}`,
		"consent.regions.<CODE>.default":            `consent: {regions: {US: {default: denied}}}`,
		"consent.regions.<CODE>.ad_storage":         `consent: {regions: {US: {ad_storage: denied}}}`,
		"consent.regions.<CODE>.analytics_storage":  `consent: {regions: {US: {analytics_storage: denied}}}`,
		"consent.regions.<CODE>.ad_user_data":       `consent: {regions: {US: {ad_user_data: denied}}}`,
		"consent.regions.<CODE>.ad_personalization": `consent: {regions: {US: {ad_personalization: denied}}}`,
		"consent.regions.<CODE>.signals":            `consent: {regions: {US: {signals: {gpc: false}}}}`,
		"consent.cmp_cookies":                       `consent: {cmp_cookies: []}`,
		"consent.cmp_cookies[].preset":              `consent: {cmp_cookies: [{preset: onetrust}]}`,
		"consent.cmp_cookies[].name":                `consent: {cmp_cookies: [{name: a, format: kv, keys: {ad_storage: x}, granted: ["1"], denied: ["0"]}]}`,
		"consent.cmp_cookies[].format":              `consent: {cmp_cookies: [{name: b, format: json, keys: {ad_storage: x}, granted: ["1"], denied: ["0"]}]}`,
		"consent.cmp_cookies[].keys":                `consent: {cmp_cookies: [{name: b, format: kv, keys: {ad_storage: y}, granted: ["1"], denied: ["0"]}]}`,
		"consent.cmp_cookies[].granted":             `consent: {cmp_cookies: [{name: b, format: kv, keys: {ad_storage: x}, granted: ["yes"], denied: ["0"]}]}`,
		"consent.cmp_cookies[].denied":              `consent: {cmp_cookies: [{name: b, format: kv, keys: {ad_storage: x}, granted: ["1"], denied: ["no"]}]}`,
		"consent.cmp_cookies[].pair_separators":     `consent: {cmp_cookies: [{name: b, format: kv, keys: {ad_storage: x}, granted: ["1"], denied: ["0"], pair_separators: ";"}]}`,
		"consent.cmp_cookies[].kv_separators":       `consent: {cmp_cookies: [{name: b, format: kv, keys: {ad_storage: x}, granted: ["1"], denied: ["0"], kv_separators: ":"}]}`,
		"consent.cmp_cookies[].required":            `consent: {cmp_cookies: [{preset: euconsent-v2, required: true}]}`,
		"cookieless.client_id":                      `cookieless: {client_id: tag}`,
		"trusted_proxies":                           `trusted_proxies: ["10.0.0.0/8"]`,
		"geo.headers":                               `geo: {headers: [CF-IPCountry]}`,
		"vendors.event_id_param":                    `vendors: {event_id_param: ep.dedup_id}`,
		"vendors.batch_max_events":                  `vendors: {batch_max_events: 7}`,
		"vendors.events":                            `vendors: {events: []}`,
		"vendors.events[].ga4":                      `vendors: {events: [{ga4: refund, meta: Purchase}]}`,
		"vendors.events[].meta":                     `vendors: {events: [{ga4: purchase, meta: Lead}]}`,
		"vendors.events[].microsoft":                `vendors: {events: [{ga4: purchase, microsoft: buy}]}`,
		"vendors.events[].tiktok":                   `vendors: {events: [{ga4: purchase, tiktok: PlaceAnOrder}]}`,
		"vendors.events[].conversion":               `vendors: {events: [{ga4: purchase, meta: Purchase, conversion: true}]}`,
		"vendors.meta.enabled":                      `vendors: {meta: {enabled: true, id: "123", token: tok123}}`,
		"vendors.meta.id":                           `vendors: {meta: {id: "456"}}`,
		"vendors.meta.token_file":                   `vendors: {meta: {token_file: /run/secrets/meta}}`,
		"vendors.meta.endpoint":                     `vendors: {meta: {endpoint: "http://127.0.0.1:9"}}`,
		"vendors.meta.api_version":                  `vendors: {meta: {api_version: v1.0}}`,
		"vendors.meta.test_event_code":              `vendors: {meta: {test_event_code: TEST1}}`,
		"vendors.microsoft.enabled":                 `vendors: {microsoft: {enabled: true, id: "123", token: tok123}}`,
		"vendors.microsoft.id":                      `vendors: {microsoft: {id: "456"}}`,
		"vendors.microsoft.token_file":              `vendors: {microsoft: {token_file: /run/secrets/microsoft}}`,
		"vendors.microsoft.endpoint":                `vendors: {microsoft: {endpoint: "http://127.0.0.1:9"}}`,
		"vendors.microsoft.api_version":             `vendors: {microsoft: {api_version: v1.0}}`,
		"vendors.microsoft.test_event_code":         `vendors: {microsoft: {test_event_code: TEST1}}`,
		"vendors.tiktok.enabled":                    `vendors: {tiktok: {enabled: true, id: "123", token: tok123}}`,
		"vendors.tiktok.id":                         `vendors: {tiktok: {id: "456"}}`,
		"vendors.tiktok.token_file":                 `vendors: {tiktok: {token_file: /run/secrets/tiktok}}`,
		"vendors.tiktok.endpoint":                   `vendors: {tiktok: {endpoint: "http://127.0.0.1:9"}}`,
		"vendors.tiktok.api_version":                `vendors: {tiktok: {api_version: v1.0}}`,
		"vendors.tiktok.test_event_code":            `vendors: {tiktok: {test_event_code: TEST1}}`,
	}
	seen := map[string]string{base.PolicyVersion: "the default"}
	for _, k := range Keys() {
		if !PolicyKey(k.Name) {
			continue
		}
		yaml, ok := moves[k.Name]
		if !ok {
			t.Errorf("policy key %s has no row in moves: add one that changes it", k.Name)
			continue
		}
		c := load(t, yaml+"\n")
		if prev, dup := seen[c.PolicyVersion]; dup {
			t.Errorf("%s: policy version %s, the same as %s", k.Name, c.PolicyVersion, prev)
		}
		seen[c.PolicyVersion] = k.Name
	}
	for k := range moves {
		if !PolicyKey(strings.ReplaceAll(strings.ReplaceAll(k, "<CODE>", "us"), "[]", "[0]")) {
			t.Errorf("moves has %s, which is not a policy key", k)
		}
	}
}

// TestPolicyVersionAlikeFromEnvironment: the same policy from the file
// or the environment has the same version.
func TestPolicyVersionAlikeFromEnvironment(t *testing.T) {
	a, err := Load(writeConfig(t, "tags: [G-ONE, AW-2]\nconsent: {mode: basic}\n"))
	if err != nil {
		t.Fatal(err)
	}
	t.Setenv("CONSENTGATE_TAGS", "G-ONE,AW-2")
	t.Setenv("CONSENTGATE_CONSENT_MODE", "basic")
	b, err := Load("")
	if err != nil {
		t.Fatal(err)
	}
	if a.PolicyVersion != b.PolicyVersion {
		t.Errorf("file %s, environment %s", a.PolicyVersion, b.PolicyVersion)
	}
}
