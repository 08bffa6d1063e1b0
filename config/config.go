package config

import (
	"bytes"
	"crypto/sha256"
	_ "embed"
	"encoding/hex"
	"fmt"
	"net/netip"
	"net/url"
	"os"
	"reflect"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/consentgate/consentgate/consentmode"
)

//go:embed default.yaml
var defaultYAML []byte

// DefaultYAML returns the embedded default configuration.
func DefaultYAML() []byte { return bytes.Clone(defaultYAML) }

// EnvPrefix is the prefix of environment overrides.
const EnvPrefix = "CONSENTGATE"

// Config is the validated configuration. It is never modified after Load
// returns; a reload builds a new one.
type Config struct {
	// Source is the file it came from, or "embedded".
	Source string

	Listen, AdminListen string
	// AdminToken, when set, is the bearer token every admin path but the
	// health endpoints requires. Required when AdminListen is not loopback.
	AdminToken string

	// Upstream is the tag-gateway upstream (nil: subdomain style).
	Upstream *url.URL
	// PathPrefix is the mount path ("/metrics"), without a trailing slash; "" for none.
	PathPrefix string

	// Policy is what consentmode.Decide needs.
	Policy *consentmode.Policy
	// Enforce is false in dry-run mode.
	Enforce bool

	CORSOrigins    map[string]bool
	TrustedProxies []netip.Prefix
	GeoHeaders     []string

	Limits   Limits
	Timeouts Timeouts
	Log      Log
	Cache    Cache
	Delivery Delivery
	Vendors  Vendors

	// PolicyVersion is a short hash of the effective configuration (the
	// secret excluded) and the rule tables.
	PolicyVersion string
	// fingerprint hashes every setting, secrets included: two configs
	// with the same fingerprint behave the same.
	fingerprint string
	// Warnings are choices the operator should know about (logged at start).
	Warnings []string
	// Settings holds the effective value of every key, for Changes and
	// `consentgate config` (secrets as hashes).
	Settings map[string]string
	// Sources says where each key of Settings got its value: "default",
	// "file.yaml:12" or "environment variable CONSENTGATE_…".
	Sources map[string]string
}

// Limits bound requests and responses.
type Limits struct {
	MaxBodyBytes        int
	MaxURLBytes         int
	MaxHeaderBytes      int
	MaxResponseBytes    int
	MaxConnsPerUpstream int
	// MaxConnections is the cap on concurrent client connections; 0 in
	// the file means derived from the open-file limit at start (the proxy
	// resolves it).
	MaxConnections int
	// ReduceMemory releases a connection's buffers while it is idle.
	ReduceMemory bool
	// MaxConnsPerIP caps the connections of one client address (trusted
	// proxies are exempt: all traffic comes from them).
	MaxConnsPerIP int
	// MaxReadingRequests caps the requests being read at once (headers
	// or body still arriving).
	MaxReadingRequests int
	// MaxBufferedBytes caps the request bytes read and held by requests
	// in progress, across all connections.
	MaxBufferedBytes int
}

// Same reports whether c and o hold the same settings, secrets included.
func (c *Config) Same(o *Config) bool { return c.fingerprint == o.fingerprint }

// Timeouts of the server and the upstream client.
type Timeouts struct {
	Read, Write, Idle                        time.Duration
	Upstream, UpstreamConnWait, UpstreamIdle time.Duration
	Drain, Shutdown                          time.Duration
}

// Log configures the operational log and the decision log.
type Log struct {
	Level  string // debug, info, warn, error
	Format string // json, console, auto
	// DecisionOutput is "stdout", "stderr", "off" or a file path.
	DecisionOutput string
	// SampleForward is the share (0..1) of forward decisions logged.
	SampleForward float64
	// Kafka streams the same records to a Kafka topic (nil: off).
	Kafka *Kafka
	// Checkpoint is how often the decision log writes a signed checkpoint
	// (only with a SigningKey).
	Checkpoint time.Duration
	// SigningKey is the path of the Ed25519 private key (PEM, as
	// consentgate keygen writes it) that signs checkpoints; "": none.
	SigningKey string
}

// Cache configures the script cache.
type Cache struct {
	MaxBytes       int64
	MinTTL, MaxTTL time.Duration
	StaleFor       time.Duration
	BrowserMaxAge  time.Duration
}

// DeliveryMode says how hits of a family reach the upstream.
type DeliveryMode uint8

const (
	// DeliverySync proxies the hit: the browser waits for the upstream's answer.
	DeliverySync DeliveryMode = iota
	// DeliveryQueue answers the browser 204 once the rewritten hit is
	// queued (and spooled), and delivers it in the background.
	DeliveryQueue
)

func (m DeliveryMode) String() string {
	if m == DeliveryQueue {
		return "queue"
	}
	return "sync"
}

// Delivery configures background delivery. The queue, the workers and the
// spool are built at start: changes need a restart, except the per-family
// modes, which apply at once.
type Delivery struct {
	// Modes is the mode of each family (index consentmode.Family);
	// families without a key (scripts) are always sync.
	Modes [16]DeliveryMode
	// MaxAge: a hit not delivered this long after it was accepted is
	// dropped (counted, cause max_age).
	MaxAge time.Duration
	// QueueSize and QueueBytes bound the memory queue of each upstream.
	QueueSize  int
	QueueBytes int64
	// Workers is the number of hits of each upstream in flight at once.
	Workers int
	// PipelineConns, when positive, is the number of connections per
	// upstream, each carrying Workers/PipelineConns hits at once, written
	// in batches; 0 sends one request per connection at a time.
	PipelineConns int
	// HTTP2 offers HTTP/2 to TLS upstreams.
	HTTP2 bool
	// Drain is how long shutdown keeps delivering the queue.
	Drain time.Duration
	// SpoolDir is the spool directory; "" disables the spool.
	SpoolDir          string
	SpoolMaxBytes     int64
	SpoolSegmentBytes int64
	SpoolSync         time.Duration
}

// Mode returns the delivery mode of family f.
func (d *Delivery) Mode(f consentmode.Family) DeliveryMode {
	if int(f) < len(d.Modes) {
		return d.Modes[f]
	}
	return DeliverySync
}

// file mirrors the YAML layout.
type file struct {
	Listen      string `mapstructure:"listen"`
	AdminListen string `mapstructure:"admin_listen"`
	Admin       struct {
		Token string `mapstructure:"token"`
	} `mapstructure:"admin"`
	Upstream   string   `mapstructure:"upstream"`
	PathPrefix string   `mapstructure:"path_prefix"`
	Tags       []string `mapstructure:"tags"`
	MP         struct {
		Enabled bool `mapstructure:"enabled"`
	} `mapstructure:"mp"`
	UA struct {
		Forward bool `mapstructure:"forward"`
	} `mapstructure:"ua"`
	Consent    consentFile `mapstructure:"consent"`
	Cookieless struct {
		Secret   string `mapstructure:"secret"`
		ClientID string `mapstructure:"client_id"`
	} `mapstructure:"cookieless"`
	CORS struct {
		AllowedOrigins []string `mapstructure:"allowed_origins"`
	} `mapstructure:"cors"`
	TrustedProxies []string `mapstructure:"trusted_proxies"`
	Geo            struct {
		Headers []string `mapstructure:"headers"`
	} `mapstructure:"geo"`
	Limits struct {
		MaxBodyBytes        int  `mapstructure:"max_body_bytes"`
		MaxURLBytes         int  `mapstructure:"max_url_bytes"`
		MaxHeaderBytes      int  `mapstructure:"max_header_bytes"`
		MaxResponseBytes    int  `mapstructure:"max_response_bytes"`
		MaxConnsPerUpstream int  `mapstructure:"max_conns_per_upstream"`
		MaxConnections      int  `mapstructure:"max_connections"`
		ReduceMemory        bool `mapstructure:"reduce_memory"`
		MaxConnsPerIP       int  `mapstructure:"max_conns_per_ip"`
		MaxReadingRequests  int  `mapstructure:"max_reading_requests"`
		MaxBufferedBytes    int  `mapstructure:"max_buffered_bytes"`
	} `mapstructure:"limits"`
	Timeouts struct {
		Read             time.Duration `mapstructure:"read"`
		Write            time.Duration `mapstructure:"write"`
		Idle             time.Duration `mapstructure:"idle"`
		Upstream         time.Duration `mapstructure:"upstream"`
		UpstreamConnWait time.Duration `mapstructure:"upstream_conn_wait"`
		UpstreamIdle     time.Duration `mapstructure:"upstream_idle"`
		Drain            time.Duration `mapstructure:"drain"`
		Shutdown         time.Duration `mapstructure:"shutdown"`
	} `mapstructure:"timeouts"`
	Log struct {
		Level     string `mapstructure:"level"`
		Format    string `mapstructure:"format"`
		Decisions struct {
			Output        string        `mapstructure:"output"`
			SampleForward float64       `mapstructure:"sample_forward"`
			Checkpoint    time.Duration `mapstructure:"checkpoint"`
			SigningKey    string        `mapstructure:"signing_key"`
			Kafka         kafkaFile     `mapstructure:"kafka"`
		} `mapstructure:"decisions"`
	} `mapstructure:"log"`
	Cache struct {
		MaxBytes      int64         `mapstructure:"max_bytes"`
		MinTTL        time.Duration `mapstructure:"min_ttl"`
		MaxTTL        time.Duration `mapstructure:"max_ttl"`
		StaleFor      time.Duration `mapstructure:"stale_for"`
		BrowserMaxAge time.Duration `mapstructure:"browser_max_age"`
	} `mapstructure:"cache"`
	Delivery deliveryFile `mapstructure:"delivery"`
	Vendors  vendorsFile  `mapstructure:"vendors"`
}

type deliveryFile struct {
	GA4        string        `mapstructure:"ga4"`
	MP         string        `mapstructure:"mp"`
	UA         string        `mapstructure:"ua"`
	Ads        string        `mapstructure:"ads"`
	Floodlight string        `mapstructure:"floodlight"`
	MaxAge     time.Duration `mapstructure:"max_age"`
	QueueSize  int           `mapstructure:"queue_size"`
	QueueBytes int64         `mapstructure:"queue_bytes"`
	Workers    int           `mapstructure:"workers"`
	Pipeline   int           `mapstructure:"pipeline_conns"`
	HTTP2      bool          `mapstructure:"http2"`
	Drain      time.Duration `mapstructure:"drain"`
	Spool      struct {
		Dir          string        `mapstructure:"dir"`
		MaxBytes     int64         `mapstructure:"max_bytes"`
		SegmentBytes int64         `mapstructure:"segment_bytes"`
		SyncInterval time.Duration `mapstructure:"sync_interval"`
	} `mapstructure:"spool"`
}

type consentFile struct {
	Mode             string                `mapstructure:"mode"`
	Profile          string                `mapstructure:"profile"`
	Enforce          bool                  `mapstructure:"enforce"`
	AdsDataRedaction bool                  `mapstructure:"ads_data_redaction"`
	Default          string                `mapstructure:"default"`
	UnknownRegion    string                `mapstructure:"unknown_region"`
	DeniedRegions    []string              `mapstructure:"denied_regions"`
	RegionAliases    map[string]string     `mapstructure:"region_aliases"`
	UserAssigned     []string              `mapstructure:"user_assigned_regions"`
	Signals          map[string]bool       `mapstructure:"signals"`
	Regions          map[string]regionFile `mapstructure:"regions"`
	CMPCookies       []cmpCookieFile       `mapstructure:"cmp_cookies"`
}

type regionFile struct {
	Default           string          `mapstructure:"default" doc:"granted or denied: the default of every consent type in the region (ISO 3166-1 such as DE, or -2 such as US-CA)."`
	AdStorage         string          `mapstructure:"ad_storage" doc:"granted or denied: this type's default in the region, over default."`
	AnalyticsStorage  string          `mapstructure:"analytics_storage" doc:"granted or denied: this type's default in the region, over default."`
	AdUserData        string          `mapstructure:"ad_user_data" doc:"granted or denied: this type's default in the region, over default."`
	AdPersonalization string          `mapstructure:"ad_personalization" doc:"granted or denied: this type's default in the region, over default."`
	Signals           map[string]bool `mapstructure:"signals" doc:"The region's own choice of the keys of consent.signals, over the global ones."`
}

type cmpCookieFile struct {
	Preset         string            `mapstructure:"preset" doc:"A built-in mapping: euconsent-v2 (IAB TCF), onetrust, cookiebot or cookieyes. Takes only required besides."`
	Name           string            `mapstructure:"name" doc:"Your own mapping: the cookie's name."`
	Format         string            `mapstructure:"format" doc:"kv, json or tcf."`
	Keys           map[string]string `mapstructure:"keys" doc:"Consent type → the cookie's key for it, such as {analytics_storage: stats}."`
	Granted        []string          `mapstructure:"granted" doc:"Values meaning granted."`
	Denied         []string          `mapstructure:"denied" doc:"Values meaning denied."`
	PairSeparators string            `mapstructure:"pair_separators" doc:"kv format: the characters between pairs, such as &."`
	KVSeparators   string            `mapstructure:"kv_separators" doc:"kv format: the characters between key and value, such as =."`
	Required       bool              `mapstructure:"required" doc:"A missing cookie denies the mapped types."`
}

// Option changes how Load works.
type Option func(*options)

type options struct {
	fallbackSecret []byte
}

// WithFallbackSecret sets the key used when cookieless.secret is empty.
// The serve command passes one random key for the whole process, so that
// reloads keep ephemeral ids stable.
func WithFallbackSecret(secret []byte) Option {
	return func(o *options) { o.fallbackSecret = secret }
}

// flatten lists the effective value of every key of f, as compared by
// Changes and printed by `consentgate config`: keys in the dotted form of
// Keys ("consent.regions.de.default", "consent.cmp_cookies[0].preset"),
// values as YAML scalars (durations with their unit, lists in flow form).
// It reads the decoded values, so a value set in the file and the same
// value set in the environment are equal. Secrets are kept as hashes: a
// change shows, the value does not.
func flatten(f *file) map[string]string {
	out := map[string]string{}
	var walk func(v reflect.Value, key string)
	walk = func(v reflect.Value, key string) {
		switch v.Kind() {
		case reflect.Struct:
			if v.Type() == durationType {
				break
			}
			for i := range v.NumField() {
				tag, _, _ := strings.Cut(v.Type().Field(i).Tag.Get("mapstructure"), ",")
				walk(v.Field(i), joinKey(key, tag))
			}
			return
		case reflect.Map:
			if v.Len() == 0 {
				out[key] = "{}"
			}
			for _, k := range v.MapKeys() {
				walk(v.MapIndex(k), joinKey(key, k.String()))
			}
			return
		case reflect.Slice:
			if v.Type().Elem().Kind() == reflect.Struct {
				if v.Len() == 0 {
					out[key] = "[]"
				}
				for i := range v.Len() {
					walk(v.Index(i), key+"["+strconv.Itoa(i)+"]")
				}
				return
			}
			items := make([]string, v.Len())
			for i := range v.Len() {
				items[i] = scalarText(v.Index(i))
			}
			out[key] = "[" + strings.Join(items, ", ") + "]"
			return
		}
		s := scalarText(v)
		if secretKeys[key] && s != "" {
			sum := sha256.Sum256([]byte(s))
			s = "sha256:" + hex.EncodeToString(sum[:8])
		}
		out[key] = s
	}
	walk(reflect.ValueOf(f).Elem(), "")
	return out
}

// secretKeys are the keys whose values are never shown or hashed into
// the policy version.
// log.decisions.signing_key is listed ahead of the key itself.
var secretKeys = map[string]bool{"cookieless.secret": true, "admin.token": true, "log.decisions.kafka.sasl.password": true, "log.decisions.signing_key": true,
	"vendors.envelope_token": true, "vendors.meta.token": true, "vendors.microsoft.token": true, "vendors.tiktok.token": true}

// scalarText writes a leaf value as YAML would: durations with their unit.
func scalarText(v reflect.Value) string {
	if v.Type() == durationType {
		return time.Duration(v.Int()).String()
	}
	return fmt.Sprint(v.Interface())
}

// Changes lists the keys whose value differs between old and c, split into
// those a reload applies at once and those that need a restart.
func (c *Config) Changes(old *Config) (applied, restart []string) {
	keys := map[string]bool{}
	for k := range c.Settings {
		keys[k] = true
	}
	for k := range old.Settings {
		keys[k] = true
	}
	for k := range keys {
		a, okA := old.Settings[k]
		b, okB := c.Settings[k]
		if a == b && okA == okB {
			continue
		}
		if NeedsRestart(k) {
			restart = append(restart, k)
		} else {
			applied = append(applied, k)
		}
	}
	sort.Strings(applied)
	sort.Strings(restart)
	return applied, restart
}

// unknownEnv reports CONSENTGATE_* variables that name no key: a typo
// there would otherwise be ignored silently. CONSENTGATE_CONFIG (the
// config file's path, read by the command) is not a key.
func unknownEnv(keys []string) []error {
	known := make(map[string]bool, len(keys))
	for _, k := range keys {
		known[EnvName(k)] = true
	}
	var names []string
	for _, kv := range os.Environ() {
		name, _, _ := strings.Cut(kv, "=")
		if strings.HasPrefix(name, EnvPrefix+"_") && !known[name] && name != EnvPrefix+"_CONFIG" {
			names = append(names, name)
		}
	}
	sort.Strings(names)
	var errs []error
	for _, name := range names {
		hint := ""
		best, bestD := "", 4
		for k := range known {
			if d := editDistance(name, k); d < bestD {
				best, bestD = k, d
			}
		}
		if best != "" {
			hint = " (did you mean " + best + "?)"
		}
		errs = append(errs, &Problem{Source: "environment variable " + name, Msg: "names no config key" + hint, env: true})
	}
	return errs
}

// fingerprint hashes every setting, secrets included.
func fingerprint(f *file) string {
	h := sha256.New()
	fmt.Fprintf(h, "%+v\n", *f)
	return hex.EncodeToString(h.Sum(nil))
}

// CORSRule describes which browser origins get CORS headers, for check
// and the start log.
func (c *Config) CORSRule() string {
	if len(c.CORSOrigins) > 0 {
		list := make([]string, 0, len(c.CORSOrigins))
		for o := range c.CORSOrigins {
			list = append(list, o)
		}
		sort.Strings(list)
		return "only " + strings.Join(list, ", ") + " (cors.allowed_origins), with credentials"
	}
	return "origins of the same registrable domain as the request's Host (public suffix list), with credentials; list cors.allowed_origins to replace this default"
}

// policyVersion hashes the effective value of every policy key (see
// policyKeys; secrets left out) and the rule tables: the same version
// means the same decisions and the same forwarded bytes, whatever the
// listeners, timeouts, logs or delivery say, and whether a value came
// from the file or the environment.
func policyVersion(settings map[string]string) string {
	keys := make([]string, 0, len(settings))
	for k := range settings {
		if PolicyKey(k) {
			keys = append(keys, k)
		}
	}
	sort.Strings(keys)
	h := sha256.New()
	for _, k := range keys {
		fmt.Fprintf(h, "%s=%s\n", k, settings[k])
	}
	for _, r := range consentmode.ParamRules {
		fmt.Fprintf(h, "%+v\n", r)
	}
	for _, r := range consentmode.CookieRules {
		fmt.Fprintf(h, "%+v\n", r)
	}
	for _, r := range consentmode.Routes {
		fmt.Fprintf(h, "%s %s %d %d %d %s %d\n", r.Name, r.Pattern, r.Match, r.Family, r.Kind, r.Host, r.Methods)
	}
	return hex.EncodeToString(h.Sum(nil))[:12]
}
