package main

import (
	"encoding/json"
	"fmt"
	"io"
	"sort"
	"strings"

	"github.com/consentgate/consentgate/config"
	"github.com/consentgate/consentgate/consentmode"
)

// rulesDoc is the effective rule table: everything `rules` prints, built
// from the same policy data and decision code the proxy runs.
type rulesDoc struct {
	PolicyVersion    string                  `json:"policy_version"`
	Mode             string                  `json:"mode"`
	Enforce          bool                    `json:"enforce"`
	AdsDataRedaction bool                    `json:"ads_data_redaction"`
	UAForward        bool                    `json:"ua_forward"`
	MPEnabled        bool                    `json:"mp_enabled"`
	ClientID         string                  `json:"cookieless_client_id"`
	Profile          string                  `json:"profile"`
	CORS             string                  `json:"cors"`
	Inputs           []consentmode.InputRule `json:"inputs"`
	Tags             []string                `json:"tags"`
	Outcomes         []outcomeDoc            `json:"outcomes"`
	Params           []paramDoc              `json:"parameters"`
	Cookies          []cookieDoc             `json:"cookies"`
	Headers          []headerDoc             `json:"headers"`
	ResponseHeaders  []string                `json:"response_headers_dropped"`
	Routes           []routeDoc              `json:"routes"`
	Regions          regionsDoc              `json:"regions"`
	CMPCookies       []cmpDoc                `json:"cmp_cookies"`
	Vendors          vendorsDoc              `json:"vendors"`
}

// vendorsDoc is the other vendors' part: the mapping (consentmode.VendorRules),
// the vendored Global Vendor List it reads TCF vendor ids from, and the
// configured vendors and event mapping.
type vendorsDoc struct {
	Enabled []string        `json:"enabled"`
	GVL     gvlDoc          `json:"gvl"`
	Rules   []vendorRuleDoc `json:"rules"`
	// Events is keyed by GA4 event name (rules --diff names them).
	Events map[string]vendorEvent `json:"events"`
}

type gvlDoc struct {
	VendorListVersion int            `json:"vendor_list_version"`
	TCFPolicyVersion  int            `json:"tcf_policy_version"`
	LastUpdated       string         `json:"last_updated"`
	IDs               map[string]int `json:"ids"`
}

type vendorRuleDoc struct {
	When    string            `json:"when"`
	Effect  map[string]string `json:"effect"`
	Why     string            `json:"why"`
	Sources []string          `json:"sources"`
}

type vendorEvent struct {
	Names      map[string]string `json:"names"`
	Conversion bool              `json:"conversion"`
}

type outcomeDoc struct {
	Route       string   `json:"route"`
	Family      string   `json:"family"`
	Situation   string   `json:"situation"`
	Action      string   `json:"action"`
	Removed     []string `json:"removed"`
	WrittenBack []string `json:"written_back"`
}

type paramDoc struct {
	Families []string `json:"families"`
	Name     string   `json:"name"`
	Where    string   `json:"where"`
	When     string   `json:"when"`
	Effect   string   `json:"effect"`
	Why      string   `json:"why"`
}

type headerDoc struct {
	Name     string `json:"name"`
	Rule     string `json:"rule"`
	Reported string `json:"reported_as,omitempty"`
	Why      string `json:"why"`
}

type cookieDoc struct {
	Name  string `json:"name"`
	Owner string `json:"owner"`
}

type routeDoc struct {
	Name    string `json:"name"`
	Path    string `json:"path"`
	Family  string `json:"family"`
	Kind    string `json:"kind"`
	Methods string `json:"methods"`
	Host    string `json:"google_host"`
	Styles  string `json:"styles"`
	Doc     string `json:"doc"`
}

type regionRuleDoc struct {
	Region    string            `json:"region"`
	Defaults  map[string]string `json:"defaults"`
	Signals   []string          `json:"signals"`
	TCFStrict bool              `json:"tcf_strict"`
	OptOutAUD bool              `json:"us_opt_out_denies_ad_user_data"`
}

type regionsDoc struct {
	Default regionRuleDoc   `json:"default"`
	Unknown regionRuleDoc   `json:"unknown"`
	Listed  []regionRuleDoc `json:"listed"`
}

type cmpDoc struct {
	Name     string            `json:"name"`
	Format   string            `json:"format"`
	Keys     map[string]string `json:"keys,omitempty"`
	Granted  []string          `json:"granted,omitempty"`
	Denied   []string          `json:"denied,omitempty"`
	Required bool              `json:"required"`
}

func buildRulesDoc(cfg *config.Config) *rulesDoc {
	p := cfg.Policy
	d := &rulesDoc{PolicyVersion: cfg.PolicyVersion, Mode: p.Mode.String(), Enforce: cfg.Enforce,
		AdsDataRedaction: p.AdsDataRedaction, UAForward: p.UAForward, MPEnabled: p.MPEnabled, ResponseHeaders: consentmode.ResponseHeaders,
		ClientID: "ephemeral", Profile: p.Profile.String(), CORS: cfg.CORSRule(), Inputs: consentmode.InputRules}
	if p.ClientIDTag {
		d.ClientID = "tag"
	}
	for _, h := range consentmode.RequestHeaders {
		d.Headers = append(d.Headers, headerDoc{h.Name, h.Op.String(), h.Field, h.Why})
	}
	for t := range p.Tags {
		d.Tags = append(d.Tags, t)
	}
	sort.Strings(d.Tags)
	for _, o := range consentmode.Table(p) {
		d.Outcomes = append(d.Outcomes, outcomeDoc{o.Route, o.Family.String(), o.Situation, o.Action.String(), o.Removed, o.WrittenBack})
	}
	for _, r := range consentmode.ParamRules {
		var fams []string
		for _, f := range consentmode.Families() {
			if r.Families.Has(f) {
				fams = append(fams, f.String())
			}
		}
		where := "hit"
		if r.Scope == consentmode.InURL {
			where = "inside URL values"
		}
		d.Params = append(d.Params, paramDoc{fams, r.Name, where, r.When.String(), r.Op.String(), r.Why})
	}
	for _, c := range consentmode.CookieRules {
		d.Cookies = append(d.Cookies, cookieDoc{c.Name, c.Owner.String()})
	}
	for _, r := range consentmode.Routes {
		path := r.Pattern
		switch r.Match {
		case consentmode.MatchPrefix:
			path += "…"
		case consentmode.MatchMatrix:
			path += ";…"
		case consentmode.MatchSegmentMatrix:
			path += "…;…"
		}
		styles := "both"
		if r.TagGatewayOnly {
			styles = "tag gateway"
		}
		d.Routes = append(d.Routes, routeDoc{r.Name, path, r.Family.String(), r.Kind.String(), strings.TrimSuffix(r.AllowHeader(), ", OPTIONS"), r.Host, styles, r.Doc})
	}
	d.Regions.Default = regionRule("default", p.Default)
	d.Regions.Unknown = regionRule("unknown", p.Unknown)
	for reg, rule := range p.Regions {
		d.Regions.Listed = append(d.Regions.Listed, regionRule(reg.String(), rule))
	}
	sort.Slice(d.Regions.Listed, func(i, j int) bool { return d.Regions.Listed[i].Region < d.Regions.Listed[j].Region })
	for _, c := range p.CMPCookies {
		cd := cmpDoc{Name: c.Name, Format: c.Format.String(), Granted: c.Granted, Denied: c.Denied, Required: c.Required}
		for t, k := range c.Keys {
			if k != "" {
				if cd.Keys == nil {
					cd.Keys = map[string]string{}
				}
				cd.Keys[consentmode.Type(t).String()] = k
			}
		}
		d.CMPCookies = append(d.CMPCookies, cd)
	}
	d.Vendors = buildVendorsDoc(cfg)
	return d
}

func buildVendorsDoc(cfg *config.Config) vendorsDoc {
	g := consentmode.VendorGVL
	d := vendorsDoc{Enabled: []string{}, Events: map[string]vendorEvent{}, GVL: gvlDoc{g.VendorListVersion, g.TCFPolicyVersion, g.LastUpdated, map[string]int{}}}
	for v := range consentmode.Vendor(consentmode.NumVendors) {
		if cfg.Vendors.On[v] != nil {
			d.Enabled = append(d.Enabled, v.String())
		}
		if id := consentmode.VendorGVLID(v); id > 0 {
			d.GVL.IDs[v.String()] = id
		}
	}
	for _, r := range consentmode.VendorRules {
		rd := vendorRuleDoc{When: r.Cond.String(), Effect: map[string]string{}, Why: r.Why, Sources: r.Sources}
		for v := range consentmode.Vendor(consentmode.NumVendors) {
			rd.Effect[v.String()] = r.Effect[v].String()
		}
		d.Rules = append(d.Rules, rd)
	}
	for name, e := range cfg.Vendors.Events {
		ed := vendorEvent{Names: map[string]string{}, Conversion: e.Conversion}
		for v, n := range e.Name {
			if n != "" {
				ed.Names[consentmode.Vendor(v).String()] = n
			}
		}
		d.Events[name] = ed
	}
	return d
}

// writeVendorsMarkdown writes the other vendors' mapping and event table.
func writeVendorsMarkdown(w io.Writer, d *rulesDoc) {
	v := d.Vendors
	names := consentmode.VendorNames()
	enabled := "none"
	if len(v.Enabled) > 0 {
		enabled = strings.Join(v.Enabled, ", ")
	}
	fmt.Fprintf(w, "\n## Other vendors\n\nConversions for other vendors are built from GA4 hits (and checked on the envelope routes) under the same consent state (docs/vendors.md). Enabled: %s. ", enabled)
	fmt.Fprintf(w, "Every row whose condition holds applies; a block wins. A consent type that is not granted counts as denied. ")
	fmt.Fprintf(w, "TCF vendor ids come from the vendored Global Vendor List, version %d (TCF policy %d, %s):", v.GVL.VendorListVersion, v.GVL.TCFPolicyVersion, v.GVL.LastUpdated)
	for _, n := range names {
		if id, ok := v.GVL.IDs[n]; ok {
			fmt.Fprintf(w, " %s %d", n, id)
		}
	}
	fmt.Fprintf(w, ".\n\n| when | %s | why |\n|---|---|---|---|---|\n", strings.Join(names, " | "))
	for _, r := range v.Rules {
		fmt.Fprintf(w, "| %s |", r.When)
		for _, n := range names {
			fmt.Fprintf(w, " %s |", r.Effect[n])
		}
		links := make([]string, len(r.Sources))
		for i, s := range r.Sources {
			links[i] = fmt.Sprintf("[%d](%s)", i+1, s)
		}
		fmt.Fprintf(w, " %s (sources: %s) |\n", cell(r.Why), strings.Join(links, " "))
	}
	fmt.Fprintf(w, "\n| GA4 event | %s | conversion |\n|---|---|---|---|---|\n", strings.Join(names, " | "))
	for _, name := range sortedKeys(v.Events) {
		e := v.Events[name]
		fmt.Fprintf(w, "| `%s` |", name)
		for _, n := range names {
			x := e.Names[n]
			if x == "" {
				x = "-"
			}
			fmt.Fprintf(w, " %s |", x)
		}
		fmt.Fprintf(w, " %v |\n", e.Conversion)
	}
}

func regionRule(name string, r consentmode.RegionRule) regionRuleDoc {
	d := regionRuleDoc{Region: name, Defaults: map[string]string{}, TCFStrict: r.TCFStrict, OptOutAUD: r.OptOutDeniesAdUserData}
	for t := range consentmode.NumTypes {
		v := r.Defaults[t]
		if v == consentmode.Unset {
			v = consentmode.Denied
		}
		d.Defaults[consentmode.Type(t).String()] = v.String()
	}
	for _, s := range consentmode.Signals() {
		if r.Signals.Has(s) {
			d.Signals = append(d.Signals, s.String())
		}
	}
	return d
}

func cmdRules(args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("rules")
	path := configFlag(fs)
	asJSON := fs.Bool("json", false, "print JSON instead of Markdown")
	diff := fs.Bool("diff", false, "compare the rule tables of two configs: OLD NEW")
	if err := parseFlags(fs, reorder(args, map[string]bool{"json": true, "diff": true, "h": true, "help": true}), stdout, stderr); err != nil {
		return err
	}
	if *diff {
		if fs.NArg() != 2 {
			return usageError(fs, stderr, "--diff takes two config files: OLD NEW")
		}
		return rulesDiff(fs.Arg(0), fs.Arg(1), *asJSON, stdout)
	}
	if fs.NArg() > 0 {
		return usageError(fs, stderr, "unexpected argument "+fs.Arg(0))
	}
	cfg, err := config.Load(*path)
	if err != nil {
		return err
	}
	d := buildRulesDoc(cfg)
	if *asJSON {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(d)
	}
	writeRulesMarkdown(stdout, d)
	return nil
}

func cell(s string) string { return strings.ReplaceAll(s, "|", "\\|") }

// writeHeadersMarkdown writes the header table, one row per treatment.
func writeHeadersMarkdown(w io.Writer, d *rulesDoc) {
	fmt.Fprintf(w, "\n## Headers\n\nAn allowlist: only the forwarded headers travel. Exact names win over prefixes (`*`).\n\n| request header | rule | reported as | why |\n|---|---|---|---|\n")
	var order []headerDoc
	names := map[headerDoc][]string{}
	for _, h := range d.Headers {
		k := h
		k.Name = ""
		if _, ok := names[k]; !ok {
			order = append(order, k)
		}
		names[k] = append(names[k], h.Name)
	}
	for _, k := range order {
		fmt.Fprintf(w, "| %s | %s | %s | %s |\n", cell(strings.Join(names[k], ", ")), k.Rule, k.Reported, cell(k.Why))
	}
	fmt.Fprintf(w, "\nResponse headers never relayed: %s, and the headers named in Connection. Set-Cookie is relayed only for the cookies of the cookie table whose owner is granted, never on a cookieless or blocked hit.\n",
		strings.Join(d.ResponseHeaders, ", "))
}

// writeRegionsMarkdown writes the region table, listed regions with the
// same rules on one row.
func writeRegionsMarkdown(w io.Writer, d *rulesDoc) {
	fmt.Fprintf(w, "\n## Regions\n\nA consent type no input has set takes its region's default. The most specific region wins (`US-CA` over `US`).\n\n")
	fmt.Fprintf(w, "| region | %s | signals honoured | tcf_strict | opt-out denies ad_user_data |\n|---|---|---|---|---|---|---|---|\n", strings.Join(consentmode.TypeNames(), " | "))
	rows := append([]regionRuleDoc{d.Regions.Default, d.Regions.Unknown}, d.Regions.Listed...)
	// Collapse listed regions with identical rules to keep the table short.
	type key struct {
		defaults, signals string
		strict, aud       bool
	}
	var order []key
	groups := map[key][]string{}
	for _, r := range rows {
		k := key{fmt.Sprint(r.Defaults), strings.Join(r.Signals, ", "), r.TCFStrict, r.OptOutAUD}
		if r.Region == "default" || r.Region == "unknown" {
			k.signals += "\x00" + r.Region // keep these two on their own rows
		}
		if _, ok := groups[k]; !ok {
			order = append(order, k)
		}
		groups[k] = append(groups[k], r.Region)
	}
	for _, k := range order {
		names := groups[k]
		var r regionRuleDoc
		for _, x := range rows {
			if x.Region == names[0] {
				r = x
			}
		}
		label := strings.Join(names, " ")
		switch names[0] {
		case "default":
			label = "any other region"
		case "unknown":
			label = "unknown region"
		}
		fmt.Fprintf(w, "| %s |", label)
		for _, t := range consentmode.TypeNames() {
			fmt.Fprintf(w, " %s |", r.Defaults[t])
		}
		fmt.Fprintf(w, " %s | %v | %v |\n", strings.Join(r.Signals, ", "), r.TCFStrict, r.OptOutAUD)
	}
}

func writeRulesMarkdown(w io.Writer, d *rulesDoc) {
	fmt.Fprintf(w, "# consentgate effective rules\n\n")
	fmt.Fprintf(w, "Policy version `%s`. Mode **%s**, profile **%s**, enforce **%v**, ads_data_redaction **%v** (Ads and Floodlight only), ua.forward **%v**, mp.enabled **%v**, cookieless.client_id **%s**.\n",
		d.PolicyVersion, d.Mode, d.Profile, d.Enforce, d.AdsDataRedaction, d.UAForward, d.MPEnabled, d.ClientID)
	fmt.Fprintf(w, "CORS: %s.\n", d.CORS)
	if len(d.Tags) == 0 {
		fmt.Fprintf(w, "Tag allowlist: none (any tag id).\n\n")
	} else {
		fmt.Fprintf(w, "Tag allowlist: %s (any other tag id: block).\n\n", strings.Join(d.Tags, ", "))
	}

	fmt.Fprintf(w, "## What happens to a hit\n\n")
	fmt.Fprintf(w, "Each row runs the gateway's own decision on a representative hit of the route that carries every parameter of the rules below, Google cookies, and a page URL with `_gl`, `gclid` and an e-mail address. `removed` lists what would not leave.\n\n")
	fmt.Fprintf(w, "| route | consent | action | removed | consent written back |\n|---|---|---|---|---|\n")
	for _, o := range d.Outcomes {
		fmt.Fprintf(w, "| %s | %s | **%s** | %s | %s |\n", o.Route, o.Situation, o.Action, cell(strings.Join(o.Removed, " ")), strings.Join(o.WrittenBack, " "))
	}

	fmt.Fprintf(w, "\n## Per-parameter rules\n\nFor each parameter the strongest applicable effect wins. E-mail addresses are redacted from every value, always.\n\n")
	fmt.Fprintf(w, "| families | parameter | where | when | effect | why |\n|---|---|---|---|---|---|\n")
	for _, p := range d.Params {
		fmt.Fprintf(w, "| %s | `%s` | %s | %s | %s | %s |\n", strings.Join(p.Families, ", "), p.Name, p.Where, p.When, p.Effect, cell(p.Why))
	}
	fmt.Fprintf(w, "\n## Cookies\n\nOnly these travel upstream, only while their owner is granted, never on a cookieless hit, never to the Measurement Protocol or script routes.\n\n| cookie | owner |\n|---|---|\n")
	for _, c := range d.Cookies {
		fmt.Fprintf(w, "| `%s` | %s |\n", c.Name, c.Owner)
	}
	writeHeadersMarkdown(w, d)
	fmt.Fprintf(w, "\n## Consent inputs\n\nMerged in this order. A denial from any input wins over every grant; the first input that denied a type is its reported source.\n\n| input | from | types | effect |\n|---|---|---|---|\n")
	for _, in := range d.Inputs {
		fmt.Fprintf(w, "| `%s` | %s | %s | %s |\n", in.Input, cell(in.From), cell(in.Types), cell(in.Effect))
	}
	writeRegionsMarkdown(w, d)
	writeVendorsMarkdown(w, d)
	fmt.Fprintf(w, "\n## CMP cookies (deny-only)\n\n")
	if len(d.CMPCookies) == 0 {
		fmt.Fprintf(w, "None configured.\n")
	} else {
		fmt.Fprintf(w, "| cookie | format | keys | granted | denied | required |\n|---|---|---|---|---|---|\n")
		for _, c := range d.CMPCookies {
			keys := "Google's TCF mapping"
			if c.Format != "tcf" {
				var ks []string
				for t, k := range c.Keys {
					ks = append(ks, t+"="+k)
				}
				sort.Strings(ks)
				keys = strings.Join(ks, " ")
			}
			fmt.Fprintf(w, "| `%s` | %s | %s | %s | %s | %v |\n", c.Name, c.Format, keys, strings.Join(c.Granted, " "), strings.Join(c.Denied, " "), c.Required)
		}
	}
	fmt.Fprintf(w, "\n## Routes\n\n| route | path | family | kind | methods | Google host (subdomain style) | styles |\n|---|---|---|---|---|---|---|\n")
	for _, r := range d.Routes {
		fmt.Fprintf(w, "| %s | `%s` | %s | %s | %s | %s | %s |\n", r.Name, r.Path, r.Family, r.Kind, r.Methods, r.Host, r.Styles)
	}
}
