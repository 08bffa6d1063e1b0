package consentmode

import "strings"

// Situation is one consent situation of the effective rules table.
type Situation struct {
	Name  string
	State [NumTypes]Value
}

// Situations are the rows `consentgate rules` evaluates for every family.
var Situations = []Situation{
	{"all granted", [NumTypes]Value{Granted, Granted, Granted, Granted}},
	{"analytics_storage denied", [NumTypes]Value{Granted, Denied, Granted, Granted}},
	{"ad_storage denied", [NumTypes]Value{Denied, Granted, Granted, Granted}},
	{"ad_user_data denied", [NumTypes]Value{Granted, Granted, Denied, Granted}},
	{"ad_personalization denied", [NumTypes]Value{Granted, Granted, Granted, Denied}},
	{"all denied", [NumTypes]Value{Denied, Denied, Denied, Denied}},
}

// Outcome is what the policy does to a representative hit of one route in
// one situation: the row of the effective rules table. It is computed by
// running Decide, so it cannot drift from what the proxy does.
type Outcome struct {
	Route     string
	Family    Family
	Situation string
	Action    Action
	Removed   []string
	Reasons   []string
	// WrittenBack lists the consent parameters the rewrite changed or
	// added ("gcs=G100", "npa=1").
	WrittenBack []string
}

// tableRoutes are the routes the rules table shows, one per kind of behaviour.
var tableRoutes = []string{"ga4_collect", "ads_conversion", "ads_rmkt_collect", "ads_ccm_form_data", "floodlight_activity", "ua_collect", "mp_collect"}

// Table evaluates every situation for a representative hit of each table
// route: a hit that carries every parameter of the rule table for its
// family, the Google cookies, and e-mail and linker data in its URLs.
func Table(p *Policy) []Outcome {
	var out []Outcome
	var w Work
	for _, name := range tableRoutes {
		ri := -1
		for i := range Routes {
			if Routes[i].Name == name {
				ri = i
			}
		}
		r := &Routes[ri]
		for _, s := range Situations {
			in := sampleHit(ri, r, s.State)
			d := Decide(in, p, &w)
			o := Outcome{Route: r.Name, Family: r.Family, Situation: s.Name, Action: d.Action, Removed: d.Removed.Names(), Reasons: d.Reasons.Strings()}
			if d.Action != ActionBlock {
				o.WrittenBack = writtenBack(in, &w)
			}
			out = append(out, o)
		}
	}
	return out
}

// sampleHit builds the representative hit of a route with the consent
// state st carried in gcd (or the MP consent object).
func sampleHit(ri int, r *Route, st [NumTypes]Value) *Input {
	in := &Input{Route: ri, Family: r.Family, Kind: r.Kind, Region: MustRegion("US"), Day: 20000,
		Cookie: []byte("_ga=GA1.1.1.1; _ga_X=GS1; _gid=1; _gcl_au=1.1.1; FPID=1; session=1")}
	letter := func(v Value) byte {
		if v == Denied {
			return 'q'
		}
		return 'v'
	}
	gcd := []byte("13v3v3v2v5l1")
	for t, off := range gcdLetterOffset {
		gcd[off] = letter(st[t])
	}
	if r.Family == FamilyMP {
		mp := func(v Value) string {
			if v == Denied {
				return `"DENIED"`
			}
			return `"GRANTED"`
		}
		in.Query = []byte("measurement_id=G-SAMPLE&api_secret=s")
		in.Body = []byte(`{"client_id":"1.2","user_id":"u","user_data":{"sha256_email_address":["x"]},"consent":{"ad_user_data":` +
			mp(st[AdUserData]) + `,"ad_personalization":` + mp(st[AdPersonalization]) + `},"events":[{"name":"purchase","params":{"note":"jo@example.com"}}]}`)
		return in
	}
	var q strings.Builder
	q.WriteString("tid=G-SAMPLE&_p=1&gcd=")
	q.Write(gcd)
	if r.Family == FamilyAds && r.TagPrefix != "" {
		in.PathTag = []byte("123")
	}
	if r.Family == FamilyAds && r.Kind == KindViewThrough {
		q.WriteString("&en=gtag.config")
	}
	seen := map[string]bool{"gcs": true, "gcd": true, "npa": true, "rdp": true, "tid": true}
	for i := range ParamRules {
		rule := &ParamRules[i]
		if !rule.Families.Has(r.Family) || rule.Scope != InHit || seen[rule.Name] {
			continue
		}
		seen[rule.Name] = true
		name := strings.NewReplacer("*", "x", "#", "1").Replace(rule.Name)
		value := "1"
		if rule.Op == OpScrubURL {
			value = "https%3A%2F%2Fshop.example%2F%3F_gl%3D1*abc%26gclid%3DCj0%26mail%3Djo%2540example.com"
		}
		q.WriteString("&" + name + "=" + value)
	}
	if r.Family == FamilyFloodlight {
		in.Matrix = []byte(strings.ReplaceAll(q.String(), "&", ";"))
		in.Matrix = []byte("src=1;" + string(in.Matrix))
	} else {
		in.Query = []byte(q.String())
	}
	return in
}

// writtenBack compares the consent parameters of the input and the rewrite.
func writtenBack(in *Input, w *Work) []string {
	src, dst, sep := in.Query, w.Query, byte('&')
	if in.Family == FamilyFloodlight {
		src, dst, sep = in.Matrix, w.Matrix, ';'
	}
	before := map[string]string{}
	for _, kv := range strings.Split(string(src), string(sep)) {
		k, v, _ := strings.Cut(kv, "=")
		before[k] = v
	}
	var out []string
	for _, kv := range strings.Split(string(dst), string(sep)) {
		k, v, _ := strings.Cut(kv, "=")
		switch k {
		case "gcs", "gcd", "npa", "rdp", "dma_cps", "gcu":
			if old, ok := before[k]; !ok || old != v {
				out = append(out, kv)
			}
		}
	}
	return out
}
