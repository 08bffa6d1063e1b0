package consentmode

import "bytes"

// Kind refines a family by what the endpoint does.
type Kind uint8

// Kinds.
const (
	KindCollect     Kind = iota // a measurement or conversion hit
	KindRemarketing             // remarketing / audience building
	KindViewThrough             // viewthroughconversion: remarketing unless it carries a conversion (en=conversion)
	KindFormData                // user-provided data upload (enhanced conversions)
	KindScript                  // a tag script
)

var kindNames = [...]string{"collect", "remarketing", "viewthrough", "form_data", "script"}

// String returns the kind's stable name.
func (k Kind) String() string {
	if int(k) < len(kindNames) {
		return kindNames[k]
	}
	return "unknown"
}

// Match says how a route's pattern matches a path.
type Match uint8

// Matches.
const (
	MatchExact         Match = iota // the path equals the pattern
	MatchPrefix                     // the path starts with the pattern
	MatchMatrix                     // the path is the pattern followed by ';' parameters (Floodlight)
	MatchSegmentMatrix              // the path starts with the pattern; its last segment is a ';' list (gtag Floodlight)
)

// Method is a set of HTTP methods.
type Method uint8

// Methods.
const (
	MethodGet Method = 1 << iota
	MethodPost
	MethodHead
)

// Route is one entry of the route table: which paths belong to which
// family, which Google host serves them in the subdomain deployment style,
// and which methods they accept. Tag-gateway deployments send every route
// to the one configured upstream instead, keeping the path prefix.
type Route struct {
	Name    string // stable metric label
	Pattern string
	Match   Match
	Family  Family
	Kind    Kind
	Host    string // Google's host for the subdomain style
	Methods Method
	// TagPrefix, when set, makes the path segment after Pattern a tag id
	// with this prefix ("AW-" for /pagead/conversion/<id>/).
	TagPrefix string
	// TagGatewayOnly routes make sense only behind a tag gateway upstream
	// (its own script paths).
	TagGatewayOnly bool
	Doc            string
}

// Routes is the route table: one place, read by the proxy, `rules` and the README.
var Routes = []Route{
	{Name: "ga4_collect", Pattern: "/g/collect", Match: MatchExact, Family: FamilyGA4, Host: "region1.google-analytics.com", Methods: MethodGet | MethodPost,
		Doc: "GA4 hits, also those meant for www./region1.google-analytics.com, analytics.google.com and stats.g.doubleclick.net"},

	{Name: "ads_conversion", Pattern: "/pagead/conversion/", Match: MatchPrefix, Family: FamilyAds, Host: "www.googleadservices.com", Methods: MethodGet | MethodPost, TagPrefix: "AW-", Doc: "Google Ads conversion"},
	{Name: "ads_ccm_conversion", Pattern: "/ccm/conversion/", Match: MatchPrefix, Family: FamilyAds, Host: "www.googleadservices.com", Methods: MethodGet | MethodPost, TagPrefix: "AW-", Doc: "Google Ads conversion (ccm twin)"},
	{Name: "ads_1p_conversion", Pattern: "/pagead/1p-conversion/", Match: MatchPrefix, Family: FamilyAds, Host: "www.google.com", Methods: MethodGet | MethodPost, TagPrefix: "AW-", Doc: "Google Ads first-party conversion mirror"},
	{Name: "ads_viewthrough", Pattern: "/pagead/viewthroughconversion/", Match: MatchPrefix, Family: FamilyAds, Kind: KindViewThrough, Host: "googleads.g.doubleclick.net", Methods: MethodGet | MethodPost, TagPrefix: "AW-", Doc: "view-through conversion; remarketing unless en=conversion"},
	{Name: "ads_landing", Pattern: "/pagead/landing", Match: MatchExact, Family: FamilyAds, Host: "www.google.com", Methods: MethodGet, Doc: "conversion linker landing ping"},
	{Name: "ads_ccm_collect", Pattern: "/ccm/collect", Match: MatchExact, Family: FamilyAds, Host: "www.google.com", Methods: MethodGet | MethodPost, Doc: "Google Ads measurement (page_view, events)"},
	{Name: "ads_ccm_s_collect", Pattern: "/ccm/s/collect", Match: MatchExact, Family: FamilyAds, Host: "ad.doubleclick.net", Methods: MethodGet | MethodPost, Doc: "Google Ads server-side measurement beacon"},
	{Name: "ads_rmkt_collect", Pattern: "/rmkt/collect/", Match: MatchPrefix, Family: FamilyAds, Kind: KindRemarketing, Host: "www.google.com", Methods: MethodGet | MethodPost, TagPrefix: "AW-", Doc: "remarketing"},
	{Name: "ads_1p_user_list", Pattern: "/pagead/1p-user-list/", Match: MatchPrefix, Family: FamilyAds, Kind: KindRemarketing, Host: "www.google.com", Methods: MethodGet | MethodPost, TagPrefix: "AW-", Doc: "first-party remarketing list"},
	{Name: "ads_ccm_form_data", Pattern: "/ccm/form-data/", Match: MatchPrefix, Family: FamilyAds, Kind: KindFormData, Host: "www.google.com", Methods: MethodGet | MethodPost, TagPrefix: "AW-", Doc: "user-provided data (enhanced conversions)"},
	{Name: "ads_pagead_form_data", Pattern: "/pagead/form-data/", Match: MatchPrefix, Family: FamilyAds, Kind: KindFormData, Host: "www.google.com", Methods: MethodGet | MethodPost, TagPrefix: "AW-", Doc: "user-provided data (enhanced conversions)"},
	{Name: "ads_td_rul", Pattern: "/td/rul/", Match: MatchPrefix, Family: FamilyAds, Kind: KindRemarketing, Host: "td.doubleclick.net", Methods: MethodGet | MethodPost, TagPrefix: "AW-", Doc: "Protected Audience join"},
	{Name: "ads_td_ga_rul", Pattern: "/td/ga/rul", Match: MatchExact, Family: FamilyAds, Kind: KindRemarketing, Host: "td.doubleclick.net", Methods: MethodGet | MethodPost, Doc: "Protected Audience join for GA4 audiences"},
	{Name: "ads_ga_audiences", Pattern: "/ads/ga-audiences", Match: MatchExact, Family: FamilyAds, Kind: KindRemarketing, Host: "www.google.com", Methods: MethodGet | MethodPost, Doc: "GA4 audiences for Google Ads"},

	{Name: "floodlight_activity", Pattern: "/activity", Match: MatchMatrix, Family: FamilyFloodlight, Host: "ad.doubleclick.net", Methods: MethodGet | MethodPost, Doc: "Floodlight counter/sales (path-matrix parameters)"},
	{Name: "floodlight_activityi", Pattern: "/activityi", Match: MatchMatrix, Family: FamilyFloodlight, Host: "ad.doubleclick.net", Methods: MethodGet | MethodPost, Doc: "Floodlight iframe/image mirror (<src>.fls.doubleclick.net)"},
	{Name: "floodlight_ddm_activity", Pattern: "/ddm/activity", Match: MatchMatrix, Family: FamilyFloodlight, Host: "ad.doubleclick.net", Methods: MethodGet | MethodPost, Doc: "Floodlight (ddm)"},
	{Name: "floodlight_ddm_fls", Pattern: "/ddm/fls/", Match: MatchSegmentMatrix, Family: FamilyFloodlight, Host: "adservice.google.com", Methods: MethodGet | MethodPost, Doc: "Floodlight (gtag)"},

	{Name: "ua_collect", Pattern: "/collect", Match: MatchExact, Family: FamilyUA, Host: "www.google-analytics.com", Methods: MethodGet | MethodPost, Doc: "Universal Analytics (sunset; blocked unless ua.forward)"},
	{Name: "ua_j_collect", Pattern: "/j/collect", Match: MatchExact, Family: FamilyUA, Host: "www.google-analytics.com", Methods: MethodGet | MethodPost, Doc: "Universal Analytics (sunset)"},
	{Name: "ua_r_collect", Pattern: "/r/collect", Match: MatchExact, Family: FamilyUA, Host: "www.google-analytics.com", Methods: MethodGet | MethodPost, Doc: "Universal Analytics (sunset)"},

	{Name: "mp_collect", Pattern: "/mp/collect", Match: MatchExact, Family: FamilyMP, Host: "region1.google-analytics.com", Methods: MethodPost, Doc: "GA4 Measurement Protocol (off unless mp.enabled)"},
	{Name: "mp_debug_collect", Pattern: "/debug/mp/collect", Match: MatchExact, Family: FamilyMP, Host: "region1.google-analytics.com", Methods: MethodPost, Doc: "GA4 Measurement Protocol validation"},

	{Name: "script_gtag_js", Pattern: "/gtag/js", Match: MatchExact, Family: FamilyScript, Kind: KindScript, Host: "www.googletagmanager.com", Methods: MethodGet | MethodHead, Doc: "gtag.js"},
	{Name: "script_gtm_js", Pattern: "/gtm.js", Match: MatchExact, Family: FamilyScript, Kind: KindScript, Host: "www.googletagmanager.com", Methods: MethodGet | MethodHead, Doc: "Google Tag Manager container"},
	{Name: "script_gtag_destination", Pattern: "/gtag/destination", Match: MatchExact, Family: FamilyScript, Kind: KindScript, Host: "www.googletagmanager.com", Methods: MethodGet | MethodHead, Doc: "gtag destination script"},
	{Name: "script_gtag_dot_js", Pattern: "/gtag.js", Match: MatchExact, Family: FamilyScript, Kind: KindScript, Host: "www.googletagmanager.com", Methods: MethodGet | MethodHead, TagGatewayOnly: true, Doc: "tag gateway script path"},
	{Name: "script_root", Pattern: "/", Match: MatchExact, Family: FamilyScript, Kind: KindScript, Host: "www.googletagmanager.com", Methods: MethodGet | MethodHead, TagGatewayOnly: true, Doc: "tag gateway script path (/?id=TAG)"},
}

// MatchRoute returns the index in Routes of the route for path (the
// request path with any path_prefix removed). Exact matches win over
// prefix matches.
func MatchRoute(path []byte) (int, bool) {
	found := -1
	for i := range Routes {
		r := &Routes[i]
		switch r.Match {
		case MatchExact:
			if string(path) == r.Pattern {
				return i, true
			}
		case MatchPrefix, MatchSegmentMatrix:
			if found < 0 && len(path) > len(r.Pattern) && string(path[:len(r.Pattern)]) == r.Pattern {
				found = i
			}
		case MatchMatrix:
			if found < 0 && len(path) > len(r.Pattern) && string(path[:len(r.Pattern)]) == r.Pattern && path[len(r.Pattern)] == ';' {
				found = i
			}
		}
	}
	return found, found >= 0
}

// Allows reports whether the route accepts the method.
func (r *Route) Allows(method []byte) bool {
	switch string(method) {
	case "GET":
		return r.Methods&MethodGet != 0
	case "POST":
		return r.Methods&MethodPost != 0
	case "HEAD":
		return r.Methods&MethodHead != 0
	}
	return false
}

// AllowHeader returns the value of an Allow header for the route.
func (r *Route) AllowHeader() string {
	s := ""
	for _, m := range []struct {
		bit  Method
		name string
	}{{MethodGet, "GET"}, {MethodHead, "HEAD"}, {MethodPost, "POST"}} {
		if r.Methods&m.bit != 0 {
			if s != "" {
				s += ", "
			}
			s += m.name
		}
	}
	return s + ", OPTIONS"
}

// HasMatrix reports whether the route's path carries a parameter list.
func (r *Route) HasMatrix() bool { return r.Match == MatchMatrix || r.Match == MatchSegmentMatrix }

// SplitPath splits a matched path into the part that names the route and
// the parameter list the path carries (without a trailing '?'): after the
// first ';' for MatchMatrix ("/activity" and "src=1;type=a"), the whole
// last segment for MatchSegmentMatrix ("/ddm/fls/i/" and
// "dc_pre=x;src=1"). Other routes carry none. The results alias path.
func (r *Route) SplitPath(path []byte) (head, matrix []byte) {
	switch r.Match {
	case MatchMatrix:
		if i := bytes.IndexByte(path, ';'); i >= 0 {
			return path[:i], trimQuestion(path[i+1:])
		}
	case MatchSegmentMatrix:
		for i := len(path) - 1; i >= 0; i-- {
			if path[i] == '/' {
				return path[:i+1], trimQuestion(path[i+1:])
			}
		}
	}
	return path, nil
}

// AppendPath appends head and a (rewritten) parameter list as a path,
// the inverse of SplitPath.
func (r *Route) AppendPath(dst, head, matrix []byte) []byte {
	dst = append(dst, head...)
	if r.Match == MatchMatrix {
		dst = append(dst, ';')
	}
	return append(dst, matrix...)
}

func trimQuestion(b []byte) []byte {
	if len(b) > 0 && b[len(b)-1] == '?' {
		return b[:len(b)-1]
	}
	return b
}

// PathTag returns the tag id segment that follows a TagPrefix route's
// pattern ("1071635065" of /pagead/conversion/1071635065/), or nil.
func (r *Route) PathTag(path []byte) []byte {
	if r.TagPrefix == "" || len(path) <= len(r.Pattern) {
		return nil
	}
	seg, _, _ := cutByte(path[len(r.Pattern):], '/')
	return seg
}
