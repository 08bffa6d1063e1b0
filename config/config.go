package config

import (
	"bytes"
	"crypto/sha256"
	_ "embed"
	"encoding/hex"
	"errors"
	"fmt"
	"net/netip"
	"net/url"
	"os"
	"sort"
	"strings"
	"time"

	"github.com/spf13/viper"

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

	// PolicyVersion is a short hash of the effective configuration (the
	// secret excluded) and the rule tables.
	PolicyVersion string
	// fingerprint hashes every setting, secrets included: two configs
	// with the same fingerprint behave the same.
	fingerprint string
	// Warnings are choices the operator should know about (logged at start).
	Warnings []string
	// Settings holds the effective value of every key, for Changes.
	Settings map[string]string
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
	// PipelineConns, when positive, pipelines the workers' requests over
	// this many connections per upstream (writes coalesced); 0 sends one
	// request per connection at a time.
	PipelineConns int
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
			Output        string    `mapstructure:"output"`
			SampleForward float64   `mapstructure:"sample_forward"`
			Kafka         kafkaFile `mapstructure:"kafka"`
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

// Load reads the embedded defaults, merges the YAML file at path over them
// (no file when path is empty), applies CONSENTGATE_* environment
// overrides, and validates. The error, a *ProblemsError, lists every
// problem found in one go: unknown keys (with the closest known key),
// values of the wrong type and invalid values (with the allowed ones),
// each with its source: the file and line, or the environment variable.
//
// The steps: read the sources, decode them into the file's layout, build
// the Config section by section (each section validates its keys, see
// build), and report every problem of the three steps together.
func Load(path string, opts ...Option) (*Config, error) {
	var o options
	for _, opt := range opts {
		opt(&o)
	}
	in, err := read(path)
	if err != nil {
		return nil, err
	}
	f, problems := in.decode()
	c, more := build(f, &o)
	problems = append(problems, more...)
	if len(problems) > 0 {
		return nil, in.report(problems)
	}
	c.Source = in.source
	c.Settings = flatten(in.settings)
	return c, nil
}

// input is a configuration read but not decoded yet: the embedded
// defaults with the file and the environment over them.
type input struct {
	v        *viper.Viper
	def      file           // the embedded defaults, decoded
	path     string         // the file; "" for none
	raw      []byte         // the file's text
	source   string         // the file, or "embedded"
	settings map[string]any // the effective value of every key
}

// read loads the embedded defaults, merges the file at path (if any) over
// them and turns on the environment overrides. Its errors stop Load at
// once: an unreadable, unparsable or empty file has no keys to report on.
func read(path string) (*input, error) {
	in := &input{v: viper.New(), path: path, source: "embedded"}
	v := in.v
	v.SetConfigType("yaml")
	if err := v.ReadConfig(bytes.NewReader(defaultYAML)); err != nil {
		return nil, fmt.Errorf("config: embedded default: %w", err)
	}
	if err := v.Unmarshal(&in.def); err != nil {
		return nil, fmt.Errorf("config: embedded default: %w", err)
	}
	if path != "" {
		b, err := os.ReadFile(path)
		if err != nil {
			return nil, fmt.Errorf("config: %w", err)
		}
		if err := v.MergeConfig(bytes.NewReader(b)); err != nil {
			return nil, &ProblemsError{Source: path, Problems: yamlProblems(path, b, err)}
		}
		if err := checkFile(path, b); err != nil {
			return nil, err
		}
		in.source, in.raw = path, b
	}
	v.SetEnvPrefix(EnvPrefix)
	v.SetEnvKeyReplacer(strings.NewReplacer(".", "_"))
	v.AutomaticEnv()
	in.settings = v.AllSettings()
	return in, nil
}

// decode unmarshals the settings into the file's layout. It reports
// unknown environment variables, unknown keys and values of the wrong
// type; a key whose value does not decode keeps its default, so that
// build checks the rest without a second report for it.
func (in *input) decode() (*file, []error) {
	var problems []error
	problems = append(problems, unknownEnv(in.v.AllKeys())...)
	problems = append(problems, unknownKeys(in.settings)...)
	var f file
	var failed []string
	for _, p := range decodeProblems(in.v.Unmarshal(&f), in.settings) {
		problems = append(problems, p)
		failed = append(failed, p.Key)
	}
	restoreDefaults(&f, &in.def, failed)
	return &f, problems
}

// report gives each problem its source (file line or environment
// variable) and sorts them as a reader fixes them.
func (in *input) report(problems []error) *ProblemsError {
	loc := newLocator(in.path, in.raw)
	for _, e := range problems {
		var p *Problem
		if errors.As(e, &p) {
			loc.locate(p)
		}
	}
	sortProblems(problems)
	return &ProblemsError{Source: in.source, Problems: problems}
}

// ErrEmptyFile is a config file that sets nothing: empty, only comments,
// or a YAML document with no keys. It is refused rather than read as "all
// defaults": a truncated or half-written file would otherwise silently
// drop every setting (tags, upstream) while serving.
var ErrEmptyFile = errors.New("config: the file sets nothing (empty, only comments or no keys); refusing it rather than falling back to the defaults")

// checkFile refuses a file that does not parse as a YAML mapping or
// holds no keys. Unknown keys are reported later, with every other problem.
func checkFile(path string, b []byte) error {
	v := viper.New()
	v.SetConfigType("yaml")
	if err := v.ReadConfig(bytes.NewReader(b)); err != nil {
		return fmt.Errorf("config: %s: does not parse: %w", path, err)
	}
	if len(v.AllKeys()) == 0 {
		return fmt.Errorf("%s: %w", path, ErrEmptyFile)
	}
	return nil
}

// flatten lists the effective value of every key, as compared by Changes.
// Secrets are kept as hashes: a change shows, the value does not.
func flatten(settings map[string]any) map[string]string {
	out := map[string]string{}
	var walk func(v any, key string)
	walk = func(v any, key string) {
		if m, ok := v.(map[string]any); ok && len(m) > 0 {
			for k, x := range m {
				walk(x, joinKey(key, k))
			}
			return
		}
		s := fmt.Sprint(v)
		if (key == "cookieless.secret" || key == "log.decisions.kafka.sasl.password") && s != "" {
			sum := sha256.Sum256([]byte(s))
			s = hex.EncodeToString(sum[:8])
		}
		out[key] = s
	}
	walk(settings, "")
	return out
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

// policyVersion hashes the effective settings (the secret left out) and
// the rule tables, so that a changed rule or config shows in the logs.
func policyVersion(f *file) string {
	g := *f
	g.Cookieless.Secret = ""
	g.Log.Decisions.Kafka.SASL.Password = ""
	g.Admin.Token = ""
	h := sha256.New()
	fmt.Fprintf(h, "%+v\n", g)
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
