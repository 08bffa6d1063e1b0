package main

import (
	"net/url"
	"strings"

	"github.com/consentgate/consentgate/consentmode"
	"github.com/consentgate/consentgate/proxy"
)

// violation is a broken audit invariant: what would leave although the
// enforced consent forbids it.
type violation struct {
	Invariant string `json:"invariant"`
	Detail    string `json:"detail"`
}

// checkInvariants checks what an explanation would forward against the
// consent it enforces. It is deliberately written apart from the rule
// tables: it restates the product's promises directly, so a wrong rule,
// a wrong config (a dry run, say) or a bug in the rewrite shows up as a
// violation. original is the hit as received (its identifiers must not
// leave while denied); redaction is consent.ads_data_redaction.
func checkInvariants(e *proxy.Explanation, originalURL, originalBody string, redaction bool) []violation {
	d := &e.Decision
	if e.Error != "" {
		return nil // rejected: nothing leaves
	}
	c := &invariantCheck{d: d, f: e.Forward, strict: e.Profile != consentmode.ProfileGoogle.String()}
	if d.Action == consentmode.ActionBlock {
		if c.f != nil {
			c.add("blocked_forwards_nothing", "a blocked hit would be forwarded")
		}
		return c.vs
	}
	if c.f == nil {
		return nil
	}
	c.fwd = hitParams(c.f.URL, c.f.Body)
	c.cookies = cookieNames(c.f.Headers["Cookie"])
	c.analytics(hitParams(originalURL, originalBody))
	c.adStorage(redaction)
	c.adUserData()
	c.hygiene()
	return c.vs
}

// invariantCheck is one explanation being checked.
type invariantCheck struct {
	d       *consentmode.Decision
	f       *proxy.Forward
	fwd     map[string][]string // the forwarded parameters
	cookies []string            // the forwarded cookie names
	vs      []violation
	// strict is consent.profile strict: no user ids or properties leave
	// under denied analytics_storage (google keeps them, as Google does).
	strict bool
}

func (c *invariantCheck) add(inv, detail string) { c.vs = append(c.vs, violation{inv, detail}) }

func (c *invariantCheck) web() bool {
	return c.d.Family == consentmode.FamilyGA4 || c.d.Family == consentmode.FamilyUA
}

func (c *invariantCheck) ads() bool {
	return c.d.Family == consentmode.FamilyAds || c.d.Family == consentmode.FamilyFloodlight
}

// analytics: under denied analytics_storage no original client or session
// id, no user ids or properties, no analytics cookie; under any denied
// storage no linker. orig are the parameters of the hit as received.
func (c *invariantCheck) analytics(orig map[string][]string) {
	st := &c.d.Consent
	if c.web() && st.Denied(consentmode.AnalyticsStorage) {
		for _, k := range []string{"cid", "sid"} {
			if c.d.Reasons.Has(consentmode.ReasonTagClientID) {
				break // cookieless.client_id: tag kept the tag's page-scoped ids
			}
			for _, v := range orig[k] {
				if contains(c.fwd[k], v) {
					c.add("analytics_denied_no_original_ids", k+" "+"forwarded unchanged")
				}
			}
		}
		for k := range c.fwd {
			if c.strict && (k == "uid" || strings.HasPrefix(k, "up.") || strings.HasPrefix(k, "upn.")) {
				c.add("analytics_denied_no_user_ids", k+" forwarded")
			}
		}
		for _, ck := range c.cookies {
			if analyticsCookie(ck) {
				c.add("analytics_denied_no_analytics_cookies", "cookie "+ck+" forwarded")
			}
		}
	}
	if st.Denied(consentmode.AnalyticsStorage) || st.Denied(consentmode.AdStorage) {
		if c.d.Family != consentmode.FamilyMP && deniedLinker(c.fwd, st) {
			c.add("storage_denied_no_linker", "_gl with a part of a denied storage type forwarded")
		}
	}
}

// adStorage: under denied ad_storage no ad ids or ad cookies, and with
// redaction (Ads and Floodlight) no click ids.
func (c *invariantCheck) adStorage(redaction bool) {
	if !c.d.Consent.Denied(consentmode.AdStorage) {
		return
	}
	if c.ads() {
		for _, k := range []string{"auid", "auiddc", "gclaw", "gclgb", "gac", "gacgb"} {
			if len(c.fwd[k]) > 0 {
				c.add("ad_storage_denied_no_ad_ids", k+" forwarded")
			}
		}
	}
	for _, ck := range c.cookies {
		if strings.HasPrefix(ck, "_gcl_") || strings.HasPrefix(ck, "FPGCL") || ck == "FPAU" {
			c.add("ad_storage_denied_no_ad_cookies", "cookie "+ck+" forwarded")
		}
	}
	if redaction && c.ads() { // documented for Ads and Floodlight only: GA4 keeps click ids
		for _, k := range []string{"gclid", "dclid", "gbraid", "wbraid", "gclsrc"} {
			if len(c.fwd[k]) > 0 || clickIDInURLs(c.fwd, k) {
				c.add("redaction_no_click_ids", k+" forwarded")
			}
		}
	}
}

// adUserData: under denied ad_user_data no user-provided data.
func (c *invariantCheck) adUserData() {
	if !c.d.Consent.Denied(consentmode.AdUserData) {
		return
	}
	for _, k := range []string{"em", "emd"} {
		if (c.ads() || c.d.Family == consentmode.FamilyGA4) && len(c.fwd[k]) > 0 {
			c.add("ad_user_data_denied_no_user_data", k+" forwarded")
		}
	}
	if c.d.Family == consentmode.FamilyMP && (strings.Contains(c.f.Body, `"user_data"`) || strings.Contains(c.f.Body, `"user_id"`)) {
		c.add("ad_user_data_denied_no_user_data", "user_id or user_data forwarded")
	}
}

// hygiene, whatever the consent: no e-mail address anywhere, a Referer
// cut to its origin, no credentials.
func (c *invariantCheck) hygiene() {
	f := c.f
	if holdsEmailDeep(f.URL) || holdsEmailDeep(f.Body) {
		c.add("no_email", "an e-mail address would be forwarded")
	}
	for name, v := range f.Headers {
		if name != "Cookie" && holdsEmailDeep(v) {
			c.add("no_email", "an e-mail address in header "+name)
		}
	}
	if ref := f.Headers["Referer"]; ref != "" {
		if u, err := url.Parse(ref); err != nil || (u.Path != "" && u.Path != "/") || u.RawQuery != "" || u.Fragment != "" || u.User != nil {
			c.add("referer_origin_only", "Referer carries more than an origin")
		}
	}
	for _, h := range []string{"Authorization", "Proxy-Authorization", "X-Api-Key"} {
		if _, ok := f.Headers[h]; ok {
			c.add("no_credentials", h+" forwarded")
		}
	}
}

// hitParams collects the parameters of a URL (query and Floodlight
// matrix) and of a parameter-list body, decoded.
func hitParams(rawURL, body string) map[string][]string {
	m := map[string][]string{}
	add := func(list, sep string) {
		for _, kv := range strings.Split(list, sep) {
			if kv == "" {
				continue
			}
			k, v, _ := strings.Cut(kv, "=")
			if dk, err := url.QueryUnescape(k); err == nil {
				k = dk
			}
			if dv, err := url.QueryUnescape(v); err == nil {
				v = dv
			}
			m[k] = append(m[k], v)
		}
	}
	path, query, _ := strings.Cut(rawURL, "?")
	if _, matrix, ok := strings.Cut(path, ";"); ok {
		add(matrix, ";")
	}
	add(query, "&")
	if strings.HasPrefix(strings.TrimSpace(body), "{") {
		return m
	}
	for _, line := range strings.Split(body, "\n") {
		add(strings.TrimSuffix(line, "\r"), "&")
	}
	return m
}

func contains(list []string, v string) bool {
	for _, x := range list {
		if x == v {
			return true
		}
	}
	return false
}

func cookieNames(header string) []string {
	var names []string
	for _, c := range strings.Split(header, ";") {
		if name, _, _ := strings.Cut(strings.TrimSpace(c), "="); name != "" {
			names = append(names, name)
		}
	}
	return names
}

func analyticsCookie(c string) bool {
	return c == "_ga" || strings.HasPrefix(c, "_ga_") || c == "_gid" || c == "FPID" || c == "FPLC" || c == "FPGSID"
}

// urlValues are the parameters that carry URLs.
var urlValues = []string{"dl", "dr", "url", "ref", "~oref", "u1", "u2", "u3", "u4", "u5", "u6", "u7", "u8", "u9", "u10"}

// deniedLinker reports whether a _gl linker leaves (as a parameter or in
// a URL-valued one) with a part whose storage type is denied: _ga, _ga_*
// and _fplc are analytics_storage's, _gcl_* ad_storage's, anything else
// (or a value that is not a linker) needs both.
func deniedLinker(params map[string][]string, st *consentmode.State) bool {
	values := append([]string(nil), params["_gl"]...)
	for _, k := range urlValues {
		for _, v := range params[k] {
			if u, err := url.Parse(v); err == nil {
				values = append(values, u.Query()["_gl"]...)
				if frag, err := url.ParseQuery(u.Fragment); err == nil {
					values = append(values, frag["_gl"]...)
				}
			}
		}
	}
	an, ad := st.Granted(consentmode.AnalyticsStorage), st.Granted(consentmode.AdStorage)
	for _, v := range values {
		parts := strings.Split(v, "*")
		if len(parts) < 4 || len(parts)%2 != 0 || parts[0] != "1" {
			if !an || !ad {
				return true
			}
			continue
		}
		for i := 2; i < len(parts); i += 2 {
			name := parts[i]
			switch {
			case name == "_ga" || strings.HasPrefix(name, "_ga_") || name == "_fplc":
				if !an {
					return true
				}
			case strings.HasPrefix(name, "_gcl_"):
				if !ad {
					return true
				}
			default:
				if !an || !ad {
					return true
				}
			}
		}
	}
	return false
}

// clickIDInURLs reports whether the parameter name appears in the query
// or fragment of a URL-valued parameter.
func clickIDInURLs(params map[string][]string, name string) bool {
	for _, k := range urlValues {
		for _, v := range params[k] {
			if u, err := url.Parse(v); err == nil {
				if u.Query().Has(name) {
					return true
				}
				if frag, err := url.ParseQuery(u.Fragment); err == nil && frag.Has(name) {
					return true
				}
			}
		}
	}
	return false
}

// holdsEmailDeep looks for an e-mail address through up to three layers of
// percent-encoding.
func holdsEmailDeep(s string) bool {
	for range 4 {
		if emailLike(s) {
			return true
		}
		d, err := url.PathUnescape(s)
		if err != nil || d == s {
			return false
		}
		s = d
	}
	return false
}

// emailLike is a plain restatement of an e-mail address: local@domain.tld.
func emailLike(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] != '@' || i == 0 {
			continue
		}
		l := i - 1
		if !localChar(s[l]) && s[l] != '"' && s[l] < 0x80 { // quoted and UTF-8 local parts too
			continue
		}
		rest := s[i+1:]
		if strings.HasPrefix(rest, "[") && strings.IndexByte(rest, ']') > 1 { // address literal
			return true
		}
		end := 0
		for end < len(rest) && (alnum(rest[end]) || rest[end] == '.' || rest[end] == '-' || rest[end] >= 0x80) {
			end++
		}
		domain := strings.TrimRight(rest[:end], ".")
		dot := strings.LastIndexByte(domain, '.')
		if dot <= 0 || len(domain)-dot-1 < 2 {
			continue
		}
		tld := domain[dot+1:]
		letters := true
		for j := 0; j < len(tld); j++ {
			if !(tld[j] >= 'a' && tld[j] <= 'z' || tld[j] >= 'A' && tld[j] <= 'Z' || tld[j] >= 0x80) {
				letters = false
			}
		}
		if letters || strings.HasPrefix(strings.ToLower(tld), "xn--") {
			return true
		}
	}
	return false
}

func alnum(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9'
}

func localChar(c byte) bool {
	return alnum(c) || strings.IndexByte("._%+-'", c) >= 0
}
