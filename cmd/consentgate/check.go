package main

import (
	"fmt"
	"io"
	"sort"
	"strconv"
	"strings"

	"github.com/consentgate/consentgate/config"
	"github.com/consentgate/consentgate/consentmode"
)

func cmdCheck(args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("check")
	path := configFlag(fs)
	if err := parseFlags(fs, args, stdout, stderr); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return usageError(fs, stderr, "unexpected argument "+fs.Arg(0))
	}
	cfg, err := config.Load(*path)
	if err != nil {
		fmt.Fprintln(stderr, err)
		return errFailed
	}
	fmt.Fprintf(stdout, "%s: OK (policy version %s)\n", cfg.Source, cfg.PolicyVersion)
	clientID := "ephemeral"
	if cfg.Policy.ClientIDTag {
		clientID = "tag"
	}
	fmt.Fprintf(stdout, "consent: mode %s, profile %s, cookieless.client_id %s\n", cfg.Policy.Mode, cfg.Policy.Profile, clientID)
	if cfg.Upstream == nil || len(cfg.CORSOrigins) > 0 {
		// In tag-gateway style the tags call the gateway on the site's
		// own host: same-origin, no CORS to choose.
		fmt.Fprintf(stdout, "cors: %s\n", cfg.CORSRule())
	}
	if line := vendorsLine(&cfg.Vendors); line != "" {
		fmt.Fprintf(stdout, "vendors: %s\n", line)
	}
	for _, w := range cfg.Warnings {
		fmt.Fprintf(stdout, "warning: %s\n", w)
	}
	return nil
}

// vendorsLine says which other vendors are on, where their calls go, how
// many GA4 events map to each, and whether the envelope routes are open
// ("" when no vendor is on).
func vendorsLine(v *config.Vendors) string {
	if !v.Any() {
		return ""
	}
	var parts []string
	for i, o := range v.On {
		if o == nil {
			continue
		}
		n := 0
		for _, e := range v.Events {
			if e.Name[i] != "" {
				n++
			}
		}
		parts = append(parts, fmt.Sprintf("%s %s (%s, %d GA4 events mapped)", consentmode.Vendor(i), o.ID, o.Endpoint, n))
	}
	routes := "envelope routes off (vendors.envelope_token is empty)"
	if v.EnvelopeToken != "" {
		routes = "envelope routes on (/vendors/<name>/events, bearer token)"
	}
	return strings.Join(parts, "; ") + "; " + routes
}

// cmdConfig prints the effective configuration, one key a line in the
// order of the reference (docs/operators.md), each with its source, like
// nginx -T: what serve would run with, and why.
func cmdConfig(args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("config")
	path := configFlag(fs)
	if err := parseFlags(fs, args, stdout, stderr); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return usageError(fs, stderr, "unexpected argument "+fs.Arg(0))
	}
	cfg, err := config.Load(*path)
	if err != nil {
		fmt.Fprintln(stderr, err)
		return errFailed
	}
	writeEffective(stdout, cfg)
	return nil
}

// writeEffective writes cfg's settings as "key: value  # source" lines.
func writeEffective(w io.Writer, cfg *config.Config) {
	order := map[string]int{}
	for i, k := range config.Keys() {
		order[k.Name] = i
	}
	rank := func(key string) int {
		if i, ok := order[templateKey(key)]; ok {
			return i
		}
		return len(order)
	}
	keys := make([]string, 0, len(cfg.Settings))
	width := 0
	for k, v := range cfg.Settings {
		keys = append(keys, k)
		if n := len(k) + 2 + len(showSetting(v)); n <= 60 {
			width = max(width, n)
		}
	}
	sort.Slice(keys, func(i, j int) bool {
		if ri, rj := rank(keys[i]), rank(keys[j]); ri != rj {
			return ri < rj
		}
		return keys[i] < keys[j]
	})
	fmt.Fprintf(w, "# consentgate %s: the effective configuration of %s (policy version %s)\n", version, cfg.Source, cfg.PolicyVersion)
	for _, k := range keys {
		fmt.Fprintf(w, "%-*s  # %s\n", width, k+": "+showSetting(cfg.Settings[k]), cfg.Sources[k])
	}
}

// templateKey turns a concrete key into its row of config.Keys:
// consent.regions.us-ca.default → consent.regions.<CODE>.default,
// consent.cmp_cookies[0].preset → consent.cmp_cookies[].preset.
func templateKey(key string) string {
	if rest, ok := strings.CutPrefix(key, "consent.regions."); ok {
		if _, field, ok := strings.Cut(rest, "."); ok {
			return "consent.regions.<CODE>." + strings.SplitN(field, ".", 2)[0]
		}
	}
	if i := strings.Index(key, "["); i >= 0 {
		if j := strings.Index(key[i:], "]"); j >= 0 {
			key = key[:i] + "[]" + key[i+j+1:]
		}
		if i := strings.LastIndex(key, ".keys."); i >= 0 {
			key = key[:i+len(".keys")]
		}
	}
	return key
}

// showSetting quotes a value YAML would not read back as the same string.
func showSetting(v string) string {
	if v == "" || strings.HasPrefix(v, ":") || strings.ContainsAny(v, "#") {
		return strconv.Quote(v)
	}
	return v
}
