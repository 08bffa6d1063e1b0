package config

import (
	"crypto/rand"
	"fmt"
	"net"
	"net/netip"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/consentgate/consentgate/consentmode"
)

// build turns the decoded file into a Config, one section at a time, and
// returns every problem found. Each section converts its keys and checks
// them in the same step: a value that does not convert (a bad URL, an
// unknown mode) is itself the problem, and a Config is only returned when
// there is none, so there is no second validation pass over the result.
// The sections run in this fixed order, which is also the order of the
// problems that share a line or an environment variable in the report.
func build(f *file, o *options) (*Config, []error) {
	b := &builder{f: f, c: &Config{Listen: f.Listen, AdminListen: f.AdminListen, AdminToken: f.Admin.Token, Enforce: f.Consent.Enforce}}
	b.listeners()
	b.upstream()
	b.policy()
	b.add(buildRegions(b.c.Policy, &f.Consent))
	b.add(buildCMP(b.c.Policy, f.Consent.CMPCookies))
	b.cookieless(o.fallbackSecret)
	b.clients()
	b.limits()
	b.timeouts()
	b.log()
	b.cache()
	b.add(buildDelivery(b.c, &f.Delivery))
	b.add(buildVendors(b.c, &f.Vendors))

	c := b.c
	c.Warnings = append(c.Warnings, warnings(c, f)...)
	c.Settings = flatten(f)
	c.PolicyVersion = policyVersion(c.Settings)
	c.fingerprint = fingerprint(f)
	return c, b.ps
}

// builder holds the Config being built from f and the problems found so
// far; its methods are the sections of build.
type builder struct {
	f  *file
	c  *Config
	ps []error
}

// bad records a problem of key.
func (b *builder) bad(key, format string, args ...any) {
	b.ps = append(b.ps, problem(key, format, args...))
}

// add records the problems of a section built by a function of its own.
func (b *builder) add(ps []error) { b.ps = append(b.ps, ps...) }

// listeners checks listen, admin_listen and admin.token.
func (b *builder) listeners() {
	f := b.f
	checkAddr := func(key, addr string) {
		if _, _, err := net.SplitHostPort(addr); err != nil {
			hint := ""
			if _, err := strconv.ParseUint(addr, 10, 16); err == nil {
				hint = fmt.Sprintf(" (did you mean \":%s\", every interface, or \"127.0.0.1:%s\", this host only?)", addr, addr)
			}
			b.bad(key, "%q is not host:port%s", addr, hint)
		}
	}
	checkAddr("listen", f.Listen)
	checkAddr("admin_listen", f.AdminListen)
	if tok := f.Admin.Token; tok != "" && (len(tok) < 16 || strings.ContainsAny(tok, " \t\r\n")) {
		b.bad("admin.token", "use at least 16 bytes, no spaces")
	}
	if !Loopback(f.AdminListen) && f.Admin.Token == "" {
		b.bad("admin_listen", "%q is reachable beyond this host and would expose /metrics, /debug/explain and /debug/pprof to anyone: set admin.token (a bearer token, or CONSENTGATE_ADMIN_TOKEN) or listen on 127.0.0.1", f.AdminListen)
	}
}

// upstream parses upstream and path_prefix.
func (b *builder) upstream() {
	f, c := b.f, b.c
	if f.Upstream != "" {
		u, err := url.Parse(f.Upstream)
		switch {
		case err != nil:
			b.bad("upstream", "%v", err)
		case u.Scheme != "http" && u.Scheme != "https":
			b.bad("upstream", "scheme must be http or https, not %q", u.Scheme)
		case u.Host == "":
			b.bad("upstream", "%q has no host", f.Upstream)
		case u.Path != "" && u.Path != "/", u.RawQuery != "", u.User != nil:
			b.bad("upstream", "%q must be a bare base URL (put the path in path_prefix)", f.Upstream)
		default:
			u.Path = ""
			c.Upstream = u
		}
	}
	if p := f.PathPrefix; p != "" {
		p = strings.TrimRight(p, "/")
		if !strings.HasPrefix(p, "/") || strings.ContainsAny(p, "?#;% ") {
			b.bad("path_prefix", "%q must start with / and hold no ?, #, ;, %% or spaces", f.PathPrefix)
		}
		c.PathPrefix = p
	}
}

// policy starts c.Policy from ua, mp, consent.mode,
// consent.ads_data_redaction and tags; buildRegions, buildCMP and
// cookieless fill in the rest.
func (b *builder) policy() {
	f := b.f
	pol := consentmode.NewPolicy()
	b.c.Policy = pol
	pol.UAForward = f.UA.Forward
	pol.MPEnabled = f.MP.Enabled
	pol.AdsDataRedaction = f.Consent.AdsDataRedaction
	switch f.Consent.Mode {
	case "advanced":
		pol.Mode = consentmode.ModeAdvanced
	case "basic":
		pol.Mode = consentmode.ModeBasic
	default:
		b.bad("consent.mode", "%q is not advanced or basic", f.Consent.Mode)
	}
	switch f.Consent.Profile {
	case "strict", "":
	case "google":
		pol.Profile = consentmode.ProfileGoogle
	default:
		b.bad("consent.profile", "%q is not strict or google", f.Consent.Profile)
	}
	if len(f.Tags) > 0 {
		pol.Tags = make(map[string]bool, len(f.Tags))
		for i, raw := range f.Tags {
			t := strings.ToUpper(strings.TrimSpace(raw))
			if !validTag(t) {
				b.bad(fmt.Sprintf("tags[%d]", i), "%q is not a tag id (G-…, AW-…, DC-…, GTM-…, GT-…)", raw)
				continue
			}
			pol.Tags[t] = true
		}
	}
}

// cookieless sets the policy's key from cookieless.secret (fallback, or a
// random key, when it is empty) and its client id from cookieless.client_id.
func (b *builder) cookieless(fallback []byte) {
	f, c, pol := b.f, b.c, b.c.Policy
	secret := []byte(f.Cookieless.Secret)
	if len(secret) == 0 {
		secret = fallback
		if len(secret) == 0 {
			secret = make([]byte, 32)
			_, _ = rand.Read(secret) // crypto/rand.Read never fails on Linux
		}
		c.Warnings = append(c.Warnings, "cookieless.secret is not set: a random key is used, so replicas will not agree on ephemeral client ids")
	} else if msg := weakSecret(f.Cookieless.Secret); msg != "" {
		b.bad("cookieless.secret", "%s: generate one with `openssl rand -hex 32` and give every replica the same", msg)
	}
	pol.SetSecret(secret)
	switch f.Cookieless.ClientID {
	case "ephemeral", "":
		// consent.profile: google keeps the tag's ids, as Google's tags do.
		pol.ClientIDTag = pol.Profile == consentmode.ProfileGoogle
	case "tag":
		pol.ClientIDTag = true
	default:
		b.bad("cookieless.client_id", "%q is not ephemeral or tag", f.Cookieless.ClientID)
	}
}

// clients parses what the gateway trusts about its clients:
// cors.allowed_origins, trusted_proxies and geo.headers.
func (b *builder) clients() {
	f, c := b.f, b.c
	if len(f.CORS.AllowedOrigins) > 0 {
		c.CORSOrigins = make(map[string]bool)
		for i, o := range f.CORS.AllowedOrigins {
			u, err := url.Parse(o)
			if o == "*" || err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" || u.Path != "" || u.RawQuery != "" || strings.Contains(o, "*") {
				b.bad(fmt.Sprintf("cors.allowed_origins[%d]", i), "%q is not an origin like https://shop.example (no wildcards: requests carry credentials)", o)
				continue
			}
			c.CORSOrigins[strings.ToLower(o)] = true
		}
	}
	for i, s := range f.TrustedProxies {
		pfx, err := parsePrefix(s)
		if err != nil {
			b.bad(fmt.Sprintf("trusted_proxies[%d]", i), "%q is not an IP or CIDR", s)
			continue
		}
		c.TrustedProxies = append(c.TrustedProxies, pfx)
	}
	for i, h := range f.Geo.Headers {
		h = strings.TrimSpace(h)
		if h == "" || strings.ContainsAny(h, " :\t") {
			b.bad(fmt.Sprintf("geo.headers[%d]", i), "%q is not a header name", h)
			continue
		}
		c.GeoHeaders = append(c.GeoHeaders, h)
	}
}

// limits checks the limits section into c.Limits.
func (b *builder) limits() {
	l := b.f.Limits
	b.c.Limits = Limits{MaxBodyBytes: l.MaxBodyBytes, MaxURLBytes: l.MaxURLBytes, MaxHeaderBytes: l.MaxHeaderBytes, MaxResponseBytes: l.MaxResponseBytes,
		MaxConnsPerUpstream: l.MaxConnsPerUpstream, MaxConnections: l.MaxConnections, ReduceMemory: l.ReduceMemory,
		MaxConnsPerIP: l.MaxConnsPerIP, MaxReadingRequests: l.MaxReadingRequests, MaxBufferedBytes: l.MaxBufferedBytes}
	for _, x := range []struct {
		key string
		v   int
	}{{"limits.max_body_bytes", l.MaxBodyBytes}, {"limits.max_url_bytes", l.MaxURLBytes}, {"limits.max_header_bytes", l.MaxHeaderBytes},
		{"limits.max_response_bytes", l.MaxResponseBytes}, {"limits.max_conns_per_upstream", l.MaxConnsPerUpstream},
		{"limits.max_conns_per_ip", l.MaxConnsPerIP}, {"limits.max_reading_requests", l.MaxReadingRequests}, {"limits.max_buffered_bytes", l.MaxBufferedBytes}} {
		if x.v <= 0 {
			b.bad(x.key, "must be positive, not %d", x.v)
		}
	}
	if l.MaxConnections < 0 {
		b.bad("limits.max_connections", "must be positive, or 0 for the default from the open-file limit, not %d", l.MaxConnections)
	}
	if l.MaxBufferedBytes > 0 && l.MaxBodyBytes > 0 && l.MaxBufferedBytes < l.MaxBodyBytes+l.MaxHeaderBytes {
		b.bad("limits.max_buffered_bytes", "%d must hold at least one whole request (max_body_bytes + max_header_bytes = %d)", l.MaxBufferedBytes, l.MaxBodyBytes+l.MaxHeaderBytes)
	}
	if l.MaxURLBytes > 0 && l.MaxHeaderBytes > 0 && l.MaxURLBytes >= l.MaxHeaderBytes {
		b.bad("limits.max_url_bytes", "%d must be below limits.max_header_bytes (%d): the request line is part of the header", l.MaxURLBytes, l.MaxHeaderBytes)
	}
}

// timeouts checks the timeouts section into c.Timeouts.
func (b *builder) timeouts() {
	t := b.f.Timeouts
	b.c.Timeouts = Timeouts{t.Read, t.Write, t.Idle, t.Upstream, t.UpstreamConnWait, t.UpstreamIdle, t.Drain, t.Shutdown}
	for _, x := range []struct {
		key string
		v   time.Duration
	}{{"timeouts.read", t.Read}, {"timeouts.write", t.Write}, {"timeouts.idle", t.Idle}, {"timeouts.upstream", t.Upstream},
		{"timeouts.upstream_conn_wait", t.UpstreamConnWait}, {"timeouts.upstream_idle", t.UpstreamIdle}, {"timeouts.shutdown", t.Shutdown}} {
		if x.v <= 0 {
			b.bad(x.key, "must be positive, not %s", x.v)
		}
	}
	if t.Drain < 0 {
		b.bad("timeouts.drain", "must not be negative")
	}
	if t.Shutdown > 0 && t.Shutdown <= t.Upstream+t.UpstreamConnWait {
		b.bad("timeouts.shutdown", "%s must exceed timeouts.upstream + timeouts.upstream_conn_wait (%s): in-flight hits must be able to finish", t.Shutdown, t.Upstream+t.UpstreamConnWait)
	}
}

// log checks the log section into c.Log, the Kafka stream included.
func (b *builder) log() {
	f, c := b.f, b.c
	c.Log = Log{Level: f.Log.Level, Format: f.Log.Format, DecisionOutput: f.Log.Decisions.Output, SampleForward: f.Log.Decisions.SampleForward}
	if !slices.Contains([]string{"debug", "info", "warn", "error"}, c.Log.Level) {
		b.bad("log.level", "%q is not debug, info, warn or error", c.Log.Level)
	}
	if !slices.Contains([]string{"json", "console", "auto"}, c.Log.Format) {
		b.bad("log.format", "%q is not json, console or auto", c.Log.Format)
	}
	if c.Log.DecisionOutput == "" {
		b.bad("log.decisions.output", "empty (use stdout, stderr, off or a file path)")
	}
	c.Log.Checkpoint, c.Log.SigningKey = f.Log.Decisions.Checkpoint, f.Log.Decisions.SigningKey
	if c.Log.Checkpoint <= 0 {
		b.bad("log.decisions.checkpoint", "%s must be positive", c.Log.Checkpoint)
	}
	if c.Log.SampleForward < 0 || c.Log.SampleForward > 1 {
		b.bad("log.decisions.sample_forward", "%v is not between 0 and 1", c.Log.SampleForward)
	}
	var kps []error
	c.Log.Kafka, kps = buildKafka(&f.Log.Decisions.Kafka)
	b.add(kps)
	c.Warnings = append(c.Warnings, kafkaWarnings(c.Log.Kafka)...)
}

// cache checks the cache section into c.Cache.
func (b *builder) cache() {
	k := b.f.Cache
	b.c.Cache = Cache{k.MaxBytes, k.MinTTL, k.MaxTTL, k.StaleFor, k.BrowserMaxAge}
	if k.MaxBytes <= 0 {
		b.bad("cache.max_bytes", "must be positive")
	}
	if k.MinTTL <= 0 || k.MaxTTL < k.MinTTL {
		b.bad("cache.min_ttl", "need 0 < cache.min_ttl <= cache.max_ttl (have %s, %s)", k.MinTTL, k.MaxTTL)
	}
	if k.StaleFor < 0 {
		b.bad("cache.stale_for", "must not be negative")
	}
	if k.BrowserMaxAge < 0 {
		b.bad("cache.browser_max_age", "must not be negative")
	}
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
	d.PipelineConns, d.HTTP2 = f.Pipeline, f.HTTP2
	if f.Pipeline < 0 {
		ps = append(ps, problem("delivery.pipeline_conns", "%d is negative (0: a connection per worker)", f.Pipeline))
	}
	if dir, err := spoolPath(f.Spool.Dir); err != nil {
		ps = append(ps, problem("delivery.spool.dir", "%q: %v", f.Spool.Dir, err))
	} else {
		f.Spool.Dir = dir // Settings and `consentgate config` show where it really is
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

// spoolPath makes the spool directory absolute. A relative one is taken
// below the service's state directory when the platform gives one
// ($STATE_DIRECTORY, set by systemd's StateDirectory=), else below the
// working directory at start: started from another directory, the gateway
// would otherwise make a fresh spool and never replay the old one, and the
// start log could not say where the hits are kept.
func spoolPath(dir string) (string, error) {
	switch {
	case dir == "":
		return "", nil // no spool
	case filepath.IsAbs(dir):
		return filepath.Clean(dir), nil
	}
	base, _, _ := strings.Cut(os.Getenv("STATE_DIRECTORY"), ":")
	if !filepath.IsAbs(base) {
		wd, err := os.Getwd()
		if err != nil {
			return "", fmt.Errorf("relative, and the working directory is unknown: %w", err)
		}
		base = wd
	}
	return filepath.Join(base, dir), nil
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

// setSignalSwitches turns r's signals (and its tcf_strict and
// us_opt_out_denies_ad_user_data options) on or off as the switches of m,
// the map at key (consent.signals or consent.regions.<code>.signals), say.
// It reports the keys that name no switch.
func setSignalSwitches(key string, r *consentmode.RegionRule, m map[string]bool) []error {
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

// buildRegions fills in the policy's region rules from consent.signals,
// consent.default, consent.unknown_region, consent.denied_regions and
// consent.regions.
func buildRegions(p *consentmode.Policy, cf *consentFile) []error {
	var ps []error
	base := consentmode.RegionRule{Signals: consentmode.AllSignals}
	ps = append(ps, setSignalSwitches("consent.signals", &base, cf.Signals)...)

	def, err := consentValue("consent.default", cf.Default)
	if err != nil {
		ps = append(ps, err)
	}
	unk, err := consentValue("consent.unknown_region", cf.UnknownRegion)
	if err != nil {
		ps = append(ps, err)
	}
	p.Default = withDefaults(base, def)
	p.Unknown = withDefaults(base, unk)
	ps = append(ps, buildRegionCodes(p, cf)...)

	denied := cf.DeniedRegions
	if len(denied) == 0 {
		denied = consentmode.DefaultDeniedRegions
	}
	p.Regions = make(map[consentmode.Region]consentmode.RegionRule, len(denied)+len(cf.Regions))
	for i, code := range denied {
		r, ok := consentmode.ParseRegion([]byte(code))
		if r = p.Resolve(r); !ok || r.IsUnknown() {
			ps = append(ps, problem(fmt.Sprintf("consent.denied_regions[%d]", i), "%q is not an ISO 3166 code", code))
			continue
		}
		p.Regions[r] = withDefaults(base, consentmode.Denied)
	}

	for _, code := range regionOrder(cf.Regions) {
		ps = append(ps, buildRegion(p, code, cf.Regions[code])...)
	}
	return ps
}

// buildRegionCodes reads consent.user_assigned_regions and
// consent.region_aliases into the policy.
func buildRegionCodes(p *consentmode.Policy, cf *consentFile) []error {
	var ps []error
	p.UserAssigned = make(map[consentmode.Region]bool, len(cf.UserAssigned))
	for i, code := range cf.UserAssigned {
		r, ok := consentmode.ParseRegion([]byte(code))
		if !ok || r.HasSubdivision() || consentmode.KnownCountry(r) {
			ps = append(ps, problem(fmt.Sprintf("consent.user_assigned_regions[%d]", i), "%q is not a two-letter code outside ISO 3166-1's assigned ones (such as XK)", code))
			continue
		}
		p.UserAssigned[r] = true
	}
	p.RegionAliases = make(map[consentmode.Region]consentmode.Region, len(cf.RegionAliases))
	for from, to := range cf.RegionAliases {
		f, ok1 := consentmode.ParseRegion([]byte(from))
		t, ok2 := consentmode.ParseRegion([]byte(to))
		if !ok1 || !ok2 || f.HasSubdivision() || t.HasSubdivision() || consentmode.KnownCountry(f) || !consentmode.KnownCountry(t) {
			ps = append(ps, problem("consent.region_aliases."+from, "maps a code ISO 3166-1 does not assign to an assigned country, such as UK: GB (got %s: %s)", from, to))
			continue
		}
		p.RegionAliases[f] = t
	}
	return ps
}

// withDefaults returns r with every consent type defaulting to v.
func withDefaults(r consentmode.RegionRule, v consentmode.Value) consentmode.RegionRule {
	r.Defaults = [consentmode.NumTypes]consentmode.Value{v, v, v, v}
	return r
}

// regionOrder lists the codes of consent.regions countries first, so that
// subdivisions inherit their country's override.
func regionOrder(regions map[string]regionFile) []string {
	codes := make([]string, 0, len(regions))
	for code := range regions {
		codes = append(codes, code)
	}
	sort.Slice(codes, func(i, j int) bool {
		if len(codes[i]) != len(codes[j]) {
			return len(codes[i]) < len(codes[j])
		}
		return codes[i] < codes[j]
	})
	return codes
}

// buildRegion sets the rule of consent.regions.<code>: the rule the
// region had so far (its country's, a denied region's or the default),
// with rf's values over it.
func buildRegion(p *consentmode.Policy, code string, rf regionFile) []error {
	var ps []error
	key := "consent.regions." + code
	reg, ok := consentmode.ParseRegion([]byte(code))
	if reg = p.Resolve(reg); !ok || reg.IsUnknown() {
		return append(ps, problem(key, "%q is not an ISO 3166-1 or -2 code such as DE or US-CA", code))
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
	ps = append(ps, setSignalSwitches(key+".signals", &rule, rf.Signals)...)
	p.Regions[reg] = rule
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
					ps = append(ps, problem(key+".keys."+tn, "%q is not a consent type (have %s)", tn, strings.Join(consentmode.TypeNames(), ", ")))
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
