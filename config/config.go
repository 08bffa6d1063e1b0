package config

import (
	"bytes"
	"crypto/rand"
	"crypto/sha256"
	_ "embed"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"net/url"
	"os"
	"slices"
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
	Enforce          bool                  `mapstructure:"enforce"`
	AdsDataRedaction bool                  `mapstructure:"ads_data_redaction"`
	Default          string                `mapstructure:"default"`
	UnknownRegion    string                `mapstructure:"unknown_region"`
	DeniedRegions    []string              `mapstructure:"denied_regions"`
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
func Load(path string, opts ...Option) (*Config, error) {
	var o options
	for _, opt := range opts {
		opt(&o)
	}
	v := viper.New()
	v.SetConfigType("yaml")
	if err := v.ReadConfig(bytes.NewReader(defaultYAML)); err != nil {
		return nil, fmt.Errorf("config: embedded default: %w", err)
	}
	var def file
	if err := v.Unmarshal(&def); err != nil {
		return nil, fmt.Errorf("config: embedded default: %w", err)
	}
	source := "embedded"
	var raw []byte
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
		source, raw = path, b
	}
	v.SetEnvPrefix(EnvPrefix)
	v.SetEnvKeyReplacer(strings.NewReplacer(".", "_"))
	v.AutomaticEnv()

	loc := newLocator(path, raw)
	settings := v.AllSettings()
	var problems []error
	problems = append(problems, unknownEnv(v.AllKeys())...)
	problems = append(problems, unknownKeys(settings)...)
	var f file
	var failed []string
	for _, p := range decodeProblems(v.Unmarshal(&f), settings) {
		problems = append(problems, p)
		failed = append(failed, p.Key)
	}
	restoreDefaults(&f, &def, failed)
	c, more := build(&f, &o)
	problems = append(problems, more...)
	if len(problems) > 0 {
		for _, e := range problems {
			var p *Problem
			if errors.As(e, &p) {
				loc.locate(p)
			}
		}
		sortProblems(problems)
		return nil, &ProblemsError{Source: source, Problems: problems}
	}
	c.Source = source
	c.Settings = flatten(settings)
	return c, nil
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

// build validates f and turns it into a Config, collecting every problem.
func build(f *file, o *options) (*Config, []error) {
	var ps []error
	bad := func(key, format string, args ...any) { ps = append(ps, problem(key, format, args...)) }
	c := &Config{Listen: f.Listen, AdminListen: f.AdminListen, AdminToken: f.Admin.Token, Enforce: f.Consent.Enforce}

	checkAddr := func(key, addr string) {
		if _, _, err := net.SplitHostPort(addr); err != nil {
			bad(key, "%q is not host:port", addr)
		}
	}
	checkAddr("listen", f.Listen)
	checkAddr("admin_listen", f.AdminListen)
	if tok := f.Admin.Token; tok != "" && (len(tok) < 16 || strings.ContainsAny(tok, " \t\r\n")) {
		bad("admin.token", "use at least 16 bytes, no spaces")
	}
	if !Loopback(f.AdminListen) && f.Admin.Token == "" {
		bad("admin_listen", "%q is reachable beyond this host and would expose /metrics, /debug/explain and /debug/pprof to anyone: set admin.token (a bearer token, or CONSENTGATE_ADMIN_TOKEN) or listen on 127.0.0.1", f.AdminListen)
	}

	if f.Upstream != "" {
		u, err := url.Parse(f.Upstream)
		switch {
		case err != nil:
			bad("upstream", "%v", err)
		case u.Scheme != "http" && u.Scheme != "https":
			bad("upstream", "scheme must be http or https, not %q", u.Scheme)
		case u.Host == "":
			bad("upstream", "%q has no host", f.Upstream)
		case u.Path != "" && u.Path != "/", u.RawQuery != "", u.User != nil:
			bad("upstream", "%q must be a bare base URL (put the path in path_prefix)", f.Upstream)
		default:
			u.Path = ""
			c.Upstream = u
		}
	}
	if p := f.PathPrefix; p != "" {
		p = strings.TrimRight(p, "/")
		if !strings.HasPrefix(p, "/") || strings.ContainsAny(p, "?#;% ") {
			bad("path_prefix", "%q must start with / and hold no ?, #, ;, %% or spaces", f.PathPrefix)
		}
		c.PathPrefix = p
	}

	pol := consentmode.NewPolicy()
	c.Policy = pol
	pol.UAForward = f.UA.Forward
	pol.MPEnabled = f.MP.Enabled
	pol.AdsDataRedaction = f.Consent.AdsDataRedaction
	switch f.Consent.Mode {
	case "advanced":
		pol.Mode = consentmode.ModeAdvanced
	case "basic":
		pol.Mode = consentmode.ModeBasic
	default:
		bad("consent.mode", "%q is not advanced or basic", f.Consent.Mode)
	}
	if len(f.Tags) > 0 {
		pol.Tags = make(map[string]bool, len(f.Tags))
		for i, raw := range f.Tags {
			t := strings.ToUpper(strings.TrimSpace(raw))
			if !validTag(t) {
				bad(fmt.Sprintf("tags[%d]", i), "%q is not a tag id (G-…, AW-…, DC-…, GTM-…, GT-…)", raw)
				continue
			}
			pol.Tags[t] = true
		}
	}
	ps = append(ps, buildRegions(pol, &f.Consent)...)
	ps = append(ps, buildCMP(pol, f.Consent.CMPCookies)...)

	secret := []byte(f.Cookieless.Secret)
	if len(secret) == 0 {
		secret = o.fallbackSecret
		if len(secret) == 0 {
			secret = make([]byte, 32)
			_, _ = rand.Read(secret) // crypto/rand.Read never fails on Linux
		}
		c.Warnings = append(c.Warnings, "cookieless.secret is not set: a random key is used, so replicas will not agree on ephemeral client ids")
	} else if msg := weakSecret(f.Cookieless.Secret); msg != "" {
		bad("cookieless.secret", "%s: generate one with `openssl rand -hex 32` and give every replica the same", msg)
	}
	pol.SetSecret(secret)
	switch f.Cookieless.ClientID {
	case "ephemeral", "":
	case "tag":
		pol.ClientIDTag = true
	default:
		bad("cookieless.client_id", "%q is not ephemeral or tag", f.Cookieless.ClientID)
	}

	if len(f.CORS.AllowedOrigins) > 0 {
		c.CORSOrigins = make(map[string]bool)
		for i, o := range f.CORS.AllowedOrigins {
			u, err := url.Parse(o)
			if o == "*" || err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" || u.Path != "" || u.RawQuery != "" || strings.Contains(o, "*") {
				bad(fmt.Sprintf("cors.allowed_origins[%d]", i), "%q is not an origin like https://shop.example (no wildcards: requests carry credentials)", o)
				continue
			}
			c.CORSOrigins[strings.ToLower(o)] = true
		}
	}
	for i, s := range f.TrustedProxies {
		pfx, err := parsePrefix(s)
		if err != nil {
			bad(fmt.Sprintf("trusted_proxies[%d]", i), "%q is not an IP or CIDR", s)
			continue
		}
		c.TrustedProxies = append(c.TrustedProxies, pfx)
	}
	for i, h := range f.Geo.Headers {
		h = strings.TrimSpace(h)
		if h == "" || strings.ContainsAny(h, " :\t") {
			bad(fmt.Sprintf("geo.headers[%d]", i), "%q is not a header name", h)
			continue
		}
		c.GeoHeaders = append(c.GeoHeaders, h)
	}

	l := f.Limits
	c.Limits = Limits{MaxBodyBytes: l.MaxBodyBytes, MaxURLBytes: l.MaxURLBytes, MaxHeaderBytes: l.MaxHeaderBytes, MaxResponseBytes: l.MaxResponseBytes,
		MaxConnsPerUpstream: l.MaxConnsPerUpstream, MaxConnections: l.MaxConnections, ReduceMemory: l.ReduceMemory,
		MaxConnsPerIP: l.MaxConnsPerIP, MaxReadingRequests: l.MaxReadingRequests, MaxBufferedBytes: l.MaxBufferedBytes}
	for _, x := range []struct {
		key string
		v   int
	}{{"limits.max_body_bytes", l.MaxBodyBytes}, {"limits.max_url_bytes", l.MaxURLBytes}, {"limits.max_header_bytes", l.MaxHeaderBytes},
		{"limits.max_response_bytes", l.MaxResponseBytes}, {"limits.max_conns_per_upstream", l.MaxConnsPerUpstream},
		{"limits.max_conns_per_ip", l.MaxConnsPerIP}, {"limits.max_reading_requests", l.MaxReadingRequests}, {"limits.max_buffered_bytes", l.MaxBufferedBytes}} {
		if x.v <= 0 {
			bad(x.key, "must be positive, not %d", x.v)
		}
	}
	if l.MaxConnections < 0 {
		bad("limits.max_connections", "must be positive, or 0 for the default from the open-file limit, not %d", l.MaxConnections)
	}
	if l.MaxBufferedBytes > 0 && l.MaxBodyBytes > 0 && l.MaxBufferedBytes < l.MaxBodyBytes+l.MaxHeaderBytes {
		bad("limits.max_buffered_bytes", "%d must hold at least one whole request (max_body_bytes + max_header_bytes = %d)", l.MaxBufferedBytes, l.MaxBodyBytes+l.MaxHeaderBytes)
	}
	if l.MaxURLBytes > 0 && l.MaxHeaderBytes > 0 && l.MaxURLBytes >= l.MaxHeaderBytes {
		bad("limits.max_url_bytes", "%d must be below limits.max_header_bytes (%d): the request line is part of the header", l.MaxURLBytes, l.MaxHeaderBytes)
	}
	t := f.Timeouts
	c.Timeouts = Timeouts{t.Read, t.Write, t.Idle, t.Upstream, t.UpstreamConnWait, t.UpstreamIdle, t.Drain, t.Shutdown}
	for _, x := range []struct {
		key string
		v   time.Duration
	}{{"timeouts.read", t.Read}, {"timeouts.write", t.Write}, {"timeouts.idle", t.Idle}, {"timeouts.upstream", t.Upstream},
		{"timeouts.upstream_conn_wait", t.UpstreamConnWait}, {"timeouts.upstream_idle", t.UpstreamIdle}, {"timeouts.shutdown", t.Shutdown}} {
		if x.v <= 0 {
			bad(x.key, "must be positive, not %s", x.v)
		}
	}
	if t.Drain < 0 {
		bad("timeouts.drain", "must not be negative")
	}
	if t.Shutdown > 0 && t.Shutdown <= t.Upstream+t.UpstreamConnWait {
		bad("timeouts.shutdown", "%s must exceed timeouts.upstream + timeouts.upstream_conn_wait (%s): in-flight hits must be able to finish", t.Shutdown, t.Upstream+t.UpstreamConnWait)
	}

	c.Log = Log{Level: f.Log.Level, Format: f.Log.Format, DecisionOutput: f.Log.Decisions.Output, SampleForward: f.Log.Decisions.SampleForward}
	if !slices.Contains([]string{"debug", "info", "warn", "error"}, c.Log.Level) {
		bad("log.level", "%q is not debug, info, warn or error", c.Log.Level)
	}
	if !slices.Contains([]string{"json", "console", "auto"}, c.Log.Format) {
		bad("log.format", "%q is not json, console or auto", c.Log.Format)
	}
	if c.Log.DecisionOutput == "" {
		bad("log.decisions.output", "empty (use stdout, stderr, off or a file path)")
	}
	if c.Log.SampleForward < 0 || c.Log.SampleForward > 1 {
		bad("log.decisions.sample_forward", "%v is not between 0 and 1", c.Log.SampleForward)
	}
	var kps []error
	c.Log.Kafka, kps = buildKafka(&f.Log.Decisions.Kafka)
	ps = append(ps, kps...)
	c.Warnings = append(c.Warnings, kafkaWarnings(c.Log.Kafka)...)

	k := f.Cache
	c.Cache = Cache{k.MaxBytes, k.MinTTL, k.MaxTTL, k.StaleFor, k.BrowserMaxAge}
	if k.MaxBytes <= 0 {
		bad("cache.max_bytes", "must be positive")
	}
	if k.MinTTL <= 0 || k.MaxTTL < k.MinTTL {
		bad("cache.min_ttl", "need 0 < cache.min_ttl <= cache.max_ttl (have %s, %s)", k.MinTTL, k.MaxTTL)
	}
	if k.StaleFor < 0 {
		bad("cache.stale_for", "must not be negative")
	}
	if k.BrowserMaxAge < 0 {
		bad("cache.browser_max_age", "must not be negative")
	}

	ps = append(ps, buildDelivery(c, &f.Delivery)...)

	c.Warnings = append(c.Warnings, warnings(c, f)...)
	c.PolicyVersion = policyVersion(f)
	c.fingerprint = fingerprint(f)
	return c, ps
}

// minSecretBytes is the shortest cookieless.secret accepted.
const minSecretBytes = 16

// placeholders are words of sample secrets that were never replaced.
var placeholders = []string{"replace", "change", "example", "placeholder", "your-", "your_", "todo", "fixme", "xxxx", "${", "<", ">"}

// weakSecret says why s is not a usable key ("" when it is): too short,
// too few different characters, or a placeholder left from a sample.
func weakSecret(s string) string {
	if len(s) < minSecretBytes {
		return fmt.Sprintf("%d bytes is too short (use at least %d)", len(s), minSecretBytes)
	}
	lower := strings.ToLower(s)
	for _, w := range placeholders {
		if strings.Contains(lower, w) {
			return fmt.Sprintf("looks like a placeholder (contains %q)", w)
		}
	}
	distinct := map[rune]bool{}
	for _, r := range s {
		distinct[r] = true
	}
	if len(distinct) < 8 {
		return fmt.Sprintf("only %d different characters: not random", len(distinct))
	}
	return ""
}

// Loopback reports whether addr ("host:port") listens on loopback only.
// An empty host (":9090") listens on every interface.
func Loopback(addr string) bool {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return true // reported by checkAddr
	}
	if host == "localhost" {
		return true
	}
	ip, err := netip.ParseAddr(host)
	return err == nil && ip.IsLoopback()
}

// fingerprint hashes every setting, secrets included.
func fingerprint(f *file) string {
	h := sha256.New()
	fmt.Fprintf(h, "%+v\n", *f)
	return hex.EncodeToString(h.Sum(nil))
}

// buildDelivery validates the delivery section into c.Delivery.
func buildDelivery(c *Config, f *deliveryFile) []error {
	var ps []error
	d := &c.Delivery
	for _, m := range []struct {
		key string
		fam consentmode.Family
		v   string
	}{{"delivery.ga4", consentmode.FamilyGA4, f.GA4}, {"delivery.mp", consentmode.FamilyMP, f.MP}, {"delivery.ua", consentmode.FamilyUA, f.UA},
		{"delivery.ads", consentmode.FamilyAds, f.Ads}, {"delivery.floodlight", consentmode.FamilyFloodlight, f.Floodlight}} {
		switch m.v {
		case "queue":
			d.Modes[m.fam] = DeliveryQueue
		case "sync":
			d.Modes[m.fam] = DeliverySync
		default:
			ps = append(ps, problem(m.key, "%q is not queue or sync", m.v))
		}
	}
	d.MaxAge, d.QueueSize, d.QueueBytes, d.Workers, d.Drain = f.MaxAge, f.QueueSize, f.QueueBytes, f.Workers, f.Drain
	d.PipelineConns = f.Pipeline
	if f.Pipeline < 0 || f.Pipeline > f.Workers {
		ps = append(ps, problem("delivery.pipeline_conns", "%d is not between 0 and delivery.workers (%d)", f.Pipeline, f.Workers))
	}
	d.SpoolDir, d.SpoolMaxBytes, d.SpoolSegmentBytes, d.SpoolSync = f.Spool.Dir, f.Spool.MaxBytes, f.Spool.SegmentBytes, f.Spool.SyncInterval
	positive := func(key string, v int64) {
		if v <= 0 {
			ps = append(ps, problem(key, "must be positive, not %d", v))
		}
	}
	positive("delivery.queue_size", int64(f.QueueSize))
	positive("delivery.queue_bytes", f.QueueBytes)
	positive("delivery.workers", int64(f.Workers))
	positive("delivery.max_age", int64(f.MaxAge))
	if f.Drain < 0 {
		ps = append(ps, problem("delivery.drain", "must not be negative"))
	}
	if f.Spool.Dir != "" {
		positive("delivery.spool.max_bytes", f.Spool.MaxBytes)
		positive("delivery.spool.segment_bytes", f.Spool.SegmentBytes)
		if s := f.Spool.SyncInterval; s <= 0 || s > 10*time.Second {
			ps = append(ps, problem("delivery.spool.sync_interval", "%s is not in (0, 10s]", s))
		}
		if f.Spool.SegmentBytes > 0 && f.Spool.MaxBytes > 0 && f.Spool.SegmentBytes > f.Spool.MaxBytes {
			ps = append(ps, problem("delivery.spool.segment_bytes", "%d must not exceed delivery.spool.max_bytes (%d)", f.Spool.SegmentBytes, f.Spool.MaxBytes))
		}
	}
	if d.Workers > c.Limits.MaxConnsPerUpstream && c.Limits.MaxConnsPerUpstream > 0 {
		ps = append(ps, problem("delivery.workers", "%d must not exceed limits.max_conns_per_upstream (%d)", d.Workers, c.Limits.MaxConnsPerUpstream))
	}
	if f.Ads == "queue" || f.Floodlight == "queue" {
		c.Warnings = append(c.Warnings, "delivery: ads or floodlight in queue mode: browsers get 204 instead of Google's image or redirect (conversion linker cookies set by redirects are lost)")
	}
	if f.Spool.Dir == "" && (f.GA4 == "queue" || f.MP == "queue" || f.UA == "queue") {
		c.Warnings = append(c.Warnings, "delivery.spool.dir is empty: queued hits live in memory only and are lost if the process dies")
	}
	return ps
}

func validTag(t string) bool {
	prefix, id, ok := strings.Cut(t, "-")
	if !ok || id == "" || !slices.Contains([]string{"G", "AW", "DC", "GTM", "GT", "UA", "MC"}, prefix) {
		return false
	}
	for _, r := range id {
		if !('A' <= r && r <= 'Z' || '0' <= r && r <= '9' || r == '-') {
			return false
		}
	}
	return true
}

func parsePrefix(s string) (netip.Prefix, error) {
	s = strings.TrimSpace(s)
	if strings.Contains(s, "/") {
		p, err := netip.ParsePrefix(s)
		return p.Masked(), err
	}
	a, err := netip.ParseAddr(s)
	if err != nil {
		return netip.Prefix{}, err
	}
	return netip.PrefixFrom(a, a.BitLen()), nil
}

func consentValue(key, s string) (consentmode.Value, error) {
	switch s {
	case "granted":
		return consentmode.Granted, nil
	case "denied":
		return consentmode.Denied, nil
	}
	return consentmode.Unset, problem(key, "%q is not granted or denied", s)
}

// signalKeys are the keys of consent.signals and consent.regions.*.signals.
var signalKeys = []string{"cmp_cookie", "tcf", "gpc", "us_privacy", "gpp", "tcf_strict", "us_opt_out_denies_ad_user_data"}

func applySignals(key string, r *consentmode.RegionRule, m map[string]bool) []error {
	var ps []error
	for k, on := range m {
		switch k {
		case "tcf_strict":
			r.TCFStrict = on
		case "us_opt_out_denies_ad_user_data":
			r.OptOutDeniesAdUserData = on
		default:
			found := false
			for _, s := range consentmode.Signals() {
				if s.String() == k {
					r.Signals = r.Signals.With(s, on)
					found = true
				}
			}
			if !found {
				ps = append(ps, problem(key+"."+k, "unknown signal %q (have %s)", k, strings.Join(signalKeys, ", ")))
			}
		}
	}
	return ps
}

func buildRegions(p *consentmode.Policy, cf *consentFile) []error {
	var ps []error
	base := consentmode.RegionRule{Signals: consentmode.AllSignals}
	ps = append(ps, applySignals("consent.signals", &base, cf.Signals)...)

	def, err := consentValue("consent.default", cf.Default)
	if err != nil {
		ps = append(ps, err)
	}
	unk, err := consentValue("consent.unknown_region", cf.UnknownRegion)
	if err != nil {
		ps = append(ps, err)
	}
	withDefaults := func(r consentmode.RegionRule, v consentmode.Value) consentmode.RegionRule {
		r.Defaults = [consentmode.NumTypes]consentmode.Value{v, v, v, v}
		return r
	}
	p.Default = withDefaults(base, def)
	p.Unknown = withDefaults(base, unk)

	denied := cf.DeniedRegions
	if len(denied) == 0 {
		denied = consentmode.DefaultDeniedRegions
	}
	p.Regions = make(map[consentmode.Region]consentmode.RegionRule, len(denied)+len(cf.Regions))
	for i, code := range denied {
		r, ok := consentmode.ParseRegion([]byte(code))
		if !ok || !consentmode.KnownCountry(r) {
			ps = append(ps, problem(fmt.Sprintf("consent.denied_regions[%d]", i), "%q is not an ISO 3166 code", code))
			continue
		}
		p.Regions[r] = withDefaults(base, consentmode.Denied)
	}

	// Countries first, so that subdivisions inherit their country's override.
	codes := make([]string, 0, len(cf.Regions))
	for code := range cf.Regions {
		codes = append(codes, code)
	}
	sort.Slice(codes, func(i, j int) bool {
		if len(codes[i]) != len(codes[j]) {
			return len(codes[i]) < len(codes[j])
		}
		return codes[i] < codes[j]
	})
	for _, code := range codes {
		rf := cf.Regions[code]
		key := "consent.regions." + code
		reg, ok := consentmode.ParseRegion([]byte(code))
		if !ok || !consentmode.KnownCountry(reg) {
			ps = append(ps, problem(key, "%q is not an ISO 3166-1 or -2 code such as DE or US-CA", code))
			continue
		}
		rule, _ := p.RuleFor(reg)
		if rf.Default != "" {
			v, err := consentValue(key+".default", rf.Default)
			if err != nil {
				ps = append(ps, err)
			}
			rule = withDefaults(rule, v)
		}
		for t, s := range [consentmode.NumTypes]string{rf.AdStorage, rf.AnalyticsStorage, rf.AdUserData, rf.AdPersonalization} {
			if s == "" {
				continue
			}
			v, err := consentValue(key+"."+consentmode.Type(t).String(), s)
			if err != nil {
				ps = append(ps, err)
			}
			rule.Defaults[t] = v
		}
		ps = append(ps, applySignals(key+".signals", &rule, rf.Signals)...)
		p.Regions[reg] = rule
	}
	return ps
}

func buildCMP(p *consentmode.Policy, list []cmpCookieFile) []error {
	var ps []error
	seen := map[string]bool{}
	for i, cf := range list {
		key := fmt.Sprintf("consent.cmp_cookies[%d]", i)
		var c consentmode.CMPCookie
		if cf.Preset != "" {
			pre, ok := consentmode.CMPPresets[cf.Preset]
			if !ok {
				names := make([]string, 0, len(consentmode.CMPPresets))
				for n := range consentmode.CMPPresets {
					names = append(names, n)
				}
				sort.Strings(names)
				ps = append(ps, problem(key+".preset", "unknown preset %q (have %s)", cf.Preset, strings.Join(names, ", ")))
				continue
			}
			if cf.Name != "" || cf.Format != "" || len(cf.Keys) > 0 || len(cf.Granted) > 0 || len(cf.Denied) > 0 {
				ps = append(ps, problem(key, "a preset takes only required:, not a mapping"))
			}
			c = pre
			c.Required = cf.Required
		} else {
			c = consentmode.CMPCookie{Name: cf.Name, Granted: cf.Granted, Denied: cf.Denied,
				PairSeparators: cf.PairSeparators, KVSeparators: cf.KVSeparators, Required: cf.Required}
			if cf.Name == "" || strings.ContainsAny(cf.Name, " ;=,\t") {
				ps = append(ps, problem(key+".name", "%q is not a cookie name", cf.Name))
			}
			format, ok := consentmode.ParseCMPFormat(cf.Format)
			if !ok {
				ps = append(ps, problem(key+".format", "%q is not kv, json or tcf", cf.Format))
			}
			c.Format = format
			for tn, k := range cf.Keys {
				t, ok := consentmode.TypeByName(tn)
				if !ok {
					ps = append(ps, problem(key+".keys."+tn, "%q is not a consent type (have ad_storage, analytics_storage, ad_user_data, ad_personalization)", tn))
					continue
				}
				c.Keys[t] = k
			}
			if format != consentmode.CMPFormatTCF {
				if len(cf.Keys) == 0 {
					ps = append(ps, problem(key+".keys", "map at least one consent type"))
				}
				if len(cf.Granted) == 0 || len(cf.Denied) == 0 {
					ps = append(ps, problem(key, "list the values meaning granted and denied"))
				}
			}
		}
		if seen[c.Name] {
			ps = append(ps, problem(key, "cookie %q is mapped twice", c.Name))
		}
		seen[c.Name] = true
		p.CMPCookies = append(p.CMPCookies, c)
	}
	if len(p.CMPCookies) > 255 {
		ps = append(ps, problem("consent.cmp_cookies", "at most 255 mappings"))
	}
	return ps
}

// warnings lists settings that make most traffic cookieless or are unsafe.
func warnings(c *Config, f *file) []string {
	var w []string
	if len(c.Policy.Tags) == 0 {
		w = append(w, "tags is empty: hits for any tag id are accepted")
	}
	if len(c.TrustedProxies) == 0 || len(c.GeoHeaders) == 0 {
		w = append(w, "no trusted geo source (trusted_proxies or geo.headers empty): every hit has an unknown region and takes consent.unknown_region ("+f.Consent.UnknownRegion+")")
	}
	if len(c.GeoHeaders) > 1 {
		w = append(w, "several geo.headers are trusted: the first present decides and disagreeing ones make the region unknown; list only the header your edge sets, or make it strip the others")
	}
	if f.Consent.Default == "denied" {
		w = append(w, "consent.default is denied: hits without consent signals leave as cookieless pings everywhere")
	}
	if !c.Enforce {
		w = append(w, "consent.enforce is false: DRY RUN, hits are forwarded unchanged")
	}
	if c.Upstream == nil && adsPossible(c.Policy) {
		w = append(w, "subdomain style with Google Ads / Floodlight hits: Google sees the gateway's IP on them, so every conversion appears to come from the gateway's location; the tag-gateway style (upstream: https://G-XXXX.fps.goog) passes the visitor's location in X-Forwarded-For and X-Forwarded-CountryRegion")
	}
	return w
}

// adsPossible reports whether Ads or Floodlight hits can pass the tag
// allowlist: it is empty or names an Ads (AW-), Floodlight (DC-) or
// container id (GTM-, GT-) that may fire them.
func adsPossible(p *consentmode.Policy) bool {
	if len(p.Tags) == 0 {
		return true
	}
	for t := range p.Tags {
		if !strings.HasPrefix(t, "G-") {
			return true
		}
	}
	return false
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
