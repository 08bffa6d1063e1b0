package consentmode

import (
	"math/bits"
	"strings"
)

// Cond says when a rule applies, in terms of the effective consent state.
type Cond uint8

// Conditions.
const (
	Always                  Cond = iota
	IfAnalyticsDenied            // analytics_storage denied
	IfAdStorageDenied            // ad_storage denied
	IfAdUserDataDenied           // ad_user_data denied
	IfAdPersonalizationDen       // ad_personalization denied
	IfStorageDenied              // analytics_storage or ad_storage denied
	IfRedaction                  // ad_storage denied and consent.ads_data_redaction on
	IfAdUserDataDefault          // ad_user_data denied by the region default: no input said anything
	IfAnalyticsDeniedStrict      // analytics_storage denied and consent.profile strict
)

var condNames = [...]string{
	"always",
	"analytics_storage denied",
	"ad_storage denied",
	"ad_user_data denied",
	"ad_personalization denied",
	"analytics_storage or ad_storage denied",
	"ad_storage denied and ads_data_redaction",
	"ad_user_data denied by the region default (no consent object)",
	"analytics_storage denied, profile strict",
}

// String describes c for the rules table.
func (c Cond) String() string { return condNames[c] }

// holds reports whether c is true under st and p.
func (c Cond) holds(st *State, p *Policy) bool {
	switch c {
	case Always:
		return true
	case IfAnalyticsDenied:
		return st.Denied(AnalyticsStorage)
	case IfAdStorageDenied:
		return st.Denied(AdStorage)
	case IfAdUserDataDenied:
		return st.Denied(AdUserData)
	case IfAdPersonalizationDen:
		return st.Denied(AdPersonalization)
	case IfStorageDenied:
		return st.Denied(AnalyticsStorage) || st.Denied(AdStorage)
	case IfRedaction:
		return st.Denied(AdStorage) && p.AdsDataRedaction
	case IfAnalyticsDeniedStrict:
		return st.Denied(AnalyticsStorage) && p.Profile == ProfileStrict
	case IfAdUserDataDefault:
		return st.Denied(AdUserData) && st.Source[AdUserData] == SourceRegionDefault
	}
	return false
}

// Op is what a rule does to a parameter.
type Op uint8

// Ops, weakest first: when several rules match, the strongest wins.
const (
	OpKeep      Op = iota
	OpScrubURL     // the value is a URL: the in-URL rules apply inside it
	OpWriteBack    // rewritten to the enforced consent state
	OpEphemeral    // replaced by the page-scoped ephemeral value
	OpLinker       // a _gl linker: kept whole only when every part is allowed (LinkerParts)
	OpDrop         // removed
)

var opNames = [...]string{"keep", "scrub URL", "write back enforced state", "replace with page-scoped ephemeral value",
	"keep whole only when consent allows every part (linker table); else remove, keeping its click ids as plain parameters where allowed", "remove"}

// String describes o for the rules table.
func (o Op) String() string { return opNames[o] }

// Scope says where a rule's name is matched.
type Scope uint8

// Scopes.
const (
	InHit Scope = iota // a parameter of the hit (query, body line, Floodlight matrix, MP JSON key)
	InURL              // a query parameter inside a URL-valued parameter (dl, dr, url, ~oref, ...)
)

// Rule is one row of the per-parameter rule table: the consent model of
// docs/spec.md §1 kept as data (docs/rules.md prints it). The proxy,
// explain, audit and `rules` all read it.
type Rule struct {
	Families FamilySet
	// Name is an exact parameter name; a trailing '*' makes it a prefix
	// ("up.*"), a trailing '#' stands for one or more digits ("u#").
	Name  string
	Scope Scope
	When  Cond
	Op    Op
	Why   string
}

var (
	famGA4  = setOf(FamilyGA4)
	famWeb  = setOf(FamilyGA4, FamilyUA)
	famAds  = setOf(FamilyAds, FamilyFloodlight)
	famHits = setOf(FamilyGA4, FamilyAds, FamilyFloodlight, FamilyUA)
	// famClick: Google documents ads_data_redaction for Ads and Floodlight
	// only; GA4 keeps click ids (in dl too) under denied ad_storage.
	famClick = famAds
)

// ParamRules is the per-parameter rule table. Order does not matter: for
// each parameter the strongest applicable op wins.
var ParamRules = []Rule{
	// Everything: identifiers the gateway sets itself, server-container extras.
	{famHits, "_uip", InHit, Always, OpDrop, "client-supplied IP; the gateway passes the client IP itself"},
	{famHits, "uip", InHit, Always, OpDrop, "client-supplied IP; the gateway passes the client IP itself"},
	{famHits, "sst.*", InHit, Always, OpDrop, "server-container parameters (server_container_url); answered with 204"},
	{famHits, "richsstsse", InHit, Always, OpDrop, "asks for a server-sent-events reply; answered with 204"},

	// Consent parameters: rewritten to the state the gateway enforced.
	{famHits, "gcs", InHit, Always, OpWriteBack, "storage types denied by the gateway set to 0; added when storage was enforced"},
	{famHits, "gcd", InHit, Always, OpWriteBack, "update half of each letter the gateway denied set to denied; added, stating all four enforced types, when the gateway enforced a denial on a hit without one"},
	{famHits, "npa", InHit, Always, OpWriteBack, "1 when ad_personalization is denied"},
	{famHits, "rdp", InHit, Always, OpWriteBack, "1 after a US opt-out"},
	{famHits, "dma_cps", InHit, Always, OpWriteBack, "- (no Google services) when ad_user_data or ad_personalization is denied"},
	{famHits, "gcu", InHit, Always, OpWriteBack, "removed when the gateway downgraded a type the hit claimed granted"},

	// GA4 (and UA when forwarded), analytics_storage denied: cookieless ping.
	{famWeb, "cid", InHit, IfAnalyticsDenied, OpEphemeral, "client id: page-scoped ephemeral value"},
	{famGA4, "sid", InHit, IfAnalyticsDenied, OpEphemeral, "session id: page-scoped ephemeral value"},
	// User-ID and user properties: Google's cookieless pings send them
	// "normally" (consent mode reference); profile strict removes them.
	{famWeb, "uid", InHit, IfAnalyticsDeniedStrict, OpDrop, "User-ID"},
	{famGA4, "sct", InHit, IfAnalyticsDenied, OpDrop, "session count"},
	{famGA4, "up.*", InHit, IfAnalyticsDeniedStrict, OpDrop, "user properties"},
	{famGA4, "upn.*", InHit, IfAnalyticsDeniedStrict, OpDrop, "numeric user properties"},
	{famGA4, "_fplc", InHit, IfAnalyticsDenied, OpDrop, "first-party linker cookie value"},
	{famGA4, "ecid", InHit, IfAnalyticsDenied, OpDrop, "undocumented per-browser id"},
	{famGA4, "_fid", InHit, IfAnalyticsDenied, OpDrop, "Firebase installation id"},
	{famGA4, "ep.ga_temp_client_id", InHit, IfAnalyticsDenied, OpDrop, "temporary client id, joinable with a later grant"},
	{setOf(FamilyUA), "_gid", InHit, IfAnalyticsDenied, OpDrop, "_gid cookie value"},
	{setOf(FamilyUA), "jid", InHit, IfAnalyticsDenied, OpDrop, "remarketing join id"},
	{setOf(FamilyUA), "gjid", InHit, IfAnalyticsDenied, OpDrop, "remarketing join id"},

	// URL-valued parameters, scrubbed by the in-URL rules below.
	{famWeb, "dl", InHit, Always, OpScrubURL, "page URL"},
	{famWeb, "dr", InHit, Always, OpScrubURL, "referrer URL"},
	{setOf(FamilyAds), "url", InHit, Always, OpScrubURL, "page URL"},
	{setOf(FamilyAds), "ref", InHit, Always, OpScrubURL, "referrer URL"},
	{setOf(FamilyAds), "dl", InHit, Always, OpScrubURL, "page URL"},
	{setOf(FamilyAds), "dr", InHit, Always, OpScrubURL, "referrer URL"},
	{setOf(FamilyFloodlight), "~oref", InHit, Always, OpScrubURL, "page URL"},
	{setOf(FamilyFloodlight), "u#", InHit, Always, OpScrubURL, "custom variables (URLs are scrubbed like page URLs)"},
	{famHits, "_gl", InHit, Always, OpLinker, "cross-domain linker: carries client id, session id and click data"},
	{famHits, "_gl", InURL, Always, OpLinker, "cross-domain linker, also inside values at any depth of encoding"},

	// GA4, ad_storage / ad_user_data denied.
	{famGA4, "_gaz", InHit, IfAdStorageDenied, OpDrop, "Google signals join flag"},
	{famGA4, "em", InHit, IfAdUserDataDenied, OpDrop, "user-provided data"},
	{famGA4, "emd", InHit, IfAdUserDataDenied, OpDrop, "user-provided data"},

	// Ads and Floodlight, ad_storage denied: cookie-derived values.
	{famAds, "auid", InHit, IfAdStorageDenied, OpDrop, "_gcl_au cookie value"},
	{setOf(FamilyFloodlight), "auiddc", InHit, IfAdStorageDenied, OpDrop, "_gcl_au cookie value (Floodlight)"},
	{famAds, "gclaw", InHit, IfAdStorageDenied, OpDrop, "stored click ids (_gcl_aw)"},
	{famAds, "gclgb", InHit, IfAdStorageDenied, OpDrop, "stored gbraid values (_gcl_gb)"},
	{famAds, "gac", InHit, IfAdStorageDenied, OpDrop, "GA-linked click ids"},
	{famAds, "gacgb", InHit, IfAdStorageDenied, OpDrop, "GA-linked gbraid values"},
	{famAds, "gacmcov", InHit, IfAdStorageDenied, OpDrop, "GA-linked click coverage"},
	{famAds, "gcldc", InHit, IfAdStorageDenied, OpDrop, "stored click ids (_gcl_dc)"},
	{famAds, "gclgs", InHit, IfAdStorageDenied, OpDrop, "cookie-derived click state"},
	{famAds, "gclst", InHit, IfAdStorageDenied, OpDrop, "cookie-derived click state"},
	{famAds, "gcllp", InHit, IfAdStorageDenied, OpDrop, "cookie-derived last page"},
	{famAds, "gcl_ctr", InHit, IfAdStorageDenied, OpDrop, "cookie-derived counter"},
	{famAds, "gclha", InHit, IfAdStorageDenied, OpDrop, "cookie-derived click hash"},
	// Device advertising ids (IDFA, Android advertising id): Google's consent
	// mode reference puts device identifiers under ad_storage. Floodlight
	// names it dc_rdid, Ads rdid (with idtype=advertisingid or idfa); either
	// may reach both families' endpoints.
	{famAds, "dc_rdid", InHit, IfAdStorageDenied, OpDrop, "device advertising id (IDFA, Android advertising id)"},
	{famAds, "rdid", InHit, IfAdStorageDenied, OpDrop, "device advertising id (IDFA, Android advertising id)"},

	// Ads and Floodlight, ad_user_data denied: user-provided data.
	{famAds, "em", InHit, IfAdUserDataDenied, OpDrop, "enhanced conversions: hashed user data"},
	{famAds, "emd", InHit, IfAdUserDataDenied, OpDrop, "enhanced conversions: user data"},
	{famAds, "ecsid", InHit, IfAdUserDataDenied, OpDrop, "enhanced conversions session id"},
	{famAds, "user_data_mode", InHit, IfAdUserDataDenied, OpDrop, "enhanced conversions mode"},
	{famAds, "userId", InHit, IfAdUserDataDenied, OpDrop, "remarketing user id"},
	{famAds, "uid", InHit, IfAdUserDataDenied, OpDrop, "user id"},

	// Click ids: kept (modelling and url_passthrough rely on them) unless
	// ads_data_redaction is on and ad_storage denied.
	{famClick, "gclid", InHit, IfRedaction, OpDrop, "ad click id"},
	{famClick, "dclid", InHit, IfRedaction, OpDrop, "ad click id"},
	{famClick, "gbraid", InHit, IfRedaction, OpDrop, "ad click id"},
	{famClick, "wbraid", InHit, IfRedaction, OpDrop, "ad click id"},
	{famClick, "gclsrc", InHit, IfRedaction, OpDrop, "ad click id source"},
	{famClick, "gclid", InURL, IfRedaction, OpDrop, "ad click id in a URL"},
	{famClick, "dclid", InURL, IfRedaction, OpDrop, "ad click id in a URL"},
	{famClick, "gbraid", InURL, IfRedaction, OpDrop, "ad click id in a URL"},
	{famClick, "wbraid", InURL, IfRedaction, OpDrop, "ad click id in a URL"},
	{famClick, "gclsrc", InURL, IfRedaction, OpDrop, "ad click id source in a URL"},

	// Measurement Protocol (top-level JSON keys). user_id follows
	// analytics_storage as uid does on the web; the sender answers for
	// that on the Measurement Protocol, so it stays, except on a hit
	// without a consent object where the fail-closed default denied
	// ad_user_data (as before).
	{setOf(FamilyMP), "user_id", InHit, IfAdUserDataDefault, OpDrop, "User-ID (analytics_storage is the sender's; dropped without a consent object where ad_user_data defaults to denied)"},
	{setOf(FamilyMP), "user_data", InHit, IfAdUserDataDenied, OpDrop, "user-provided data"},
}

// CookieRule says which storage consent owns a first-party cookie. Only
// cookies listed here ever travel upstream, and only while their owner is
// granted and the hit is not cookieless.
type CookieRule struct {
	Name  string // exact name, or a prefix ending in '*'
	Owner Type
}

// CookieRules lists the Google cookies that may travel.
var CookieRules = []CookieRule{
	{"_ga", AnalyticsStorage},
	{"_ga_*", AnalyticsStorage},
	{"_gid", AnalyticsStorage},
	{"FPID", AnalyticsStorage},
	{"FPLC", AnalyticsStorage},
	{"FPGSID", AnalyticsStorage},
	{"_gcl_*", AdStorage},
	{"FPAU", AdStorage},
	{"FPGCL*", AdStorage},
}

// Field identifies a removable item: a parameter of the rule table, a
// cookie of the cookie table, a header, or a pseudo field.
type Field uint8

// Pseudo fields that are in no rule table. The header fields come from
// RequestHeaders.
var pseudoFields = []string{
	"email",        // an e-mail address redacted from a value
	"cookie:other", // a cookie not in CookieRules
}

// FieldSet is a set of fields. It is a plain value: comparable, free to copy.
// Its 256 bits cover every Field (a uint8); TestCatalogueFits fails if the
// tables ever name more fields than that.
type FieldSet [4]uint64

// Add adds f to s.
func (s *FieldSet) Add(f Field) { s[f>>6] |= 1 << (f & 63) }

// Union adds every field of o to s.
func (s *FieldSet) Union(o *FieldSet) {
	for i := range s {
		s[i] |= o[i]
	}
}

// Has reports whether f is in s.
func (s *FieldSet) Has(f Field) bool { return s[f>>6]&(1<<(f&63)) != 0 }

// Len returns the number of fields in s.
func (s *FieldSet) Len() int {
	return bits.OnesCount64(s[0]) + bits.OnesCount64(s[1]) + bits.OnesCount64(s[2]) + bits.OnesCount64(s[3])
}

// All calls yield for each field in s, in catalogue order.
func (s *FieldSet) All(yield func(Field) bool) {
	for i, w := range s {
		for ; w != 0; w &= w - 1 {
			if !yield(Field(i<<6 + bits.TrailingZeros64(w))) {
				return
			}
		}
	}
}

// Names returns the names of the fields in s. It allocates; use All on the hot path.
func (s *FieldSet) Names() []string {
	out := make([]string, 0, s.Len())
	for f := range s.All {
		out = append(out, f.String())
	}
	return out
}

// String returns the field's name: a parameter name ("cid", "up.*"), a
// cookie ("cookie:_ga"), a header ("header:Referer") or a pseudo field.
func (f Field) String() string {
	if int(f) < len(catalogue.names) {
		return catalogue.names[f]
	}
	return "unknown"
}

// FieldNames returns every field name of the catalogue, in order.
func FieldNames() []string { return append([]string(nil), catalogue.names...) }

// LookupField returns the field with the given name.
func LookupField(name string) (Field, bool) {
	f, ok := catalogue.byName[name]
	return f, ok
}

// ruleCatalogue is the read-only index built once from the tables above.
type ruleCatalogue struct {
	names  []string
	byName map[string]Field

	// For InHit and InURL: rules by exact name, and the pattern rules.
	exact    [2]map[string][]ruleRef
	patterns [2][]ruleRef

	cookieField []Field // per CookieRules entry
}

type ruleRef struct {
	rule  *Rule
	field Field
}

var catalogue = buildCatalogue()

// Fields of the pseudo entries, looked up once.
var (
	fieldEmail        = mustField("email")
	fieldCookieOther  = mustField("cookie:other")
	fieldCookieHeader = mustField("header:Cookie")
	fieldLinker       = mustField("_gl")
)

// mustField returns the field named by one of the tables above. A name
// that is not there is a programming error in a static table, not
// something input can cause: it panics while the package initialises, so
// every test and every start of the binary catch it at once.
func mustField(name string) Field {
	f, ok := catalogue.byName[name]
	if !ok {
		panic("consentmode: field " + name + " is not in the rule catalogue")
	}
	return f
}

func buildCatalogue() *ruleCatalogue {
	c := &ruleCatalogue{byName: map[string]Field{}}
	add := func(name string) Field {
		if f, ok := c.byName[name]; ok {
			return f
		}
		f := Field(len(c.names))
		c.names = append(c.names, name)
		c.byName[name] = f
		return f
	}
	c.exact = [2]map[string][]ruleRef{{}, {}}
	for i := range ParamRules {
		r := &ParamRules[i]
		ref := ruleRef{rule: r, field: add(r.Name)}
		if strings.HasSuffix(r.Name, "*") || strings.HasSuffix(r.Name, "#") {
			c.patterns[r.Scope] = append(c.patterns[r.Scope], ref)
		} else {
			c.exact[r.Scope][r.Name] = append(c.exact[r.Scope][r.Name], ref)
		}
	}
	for _, r := range CookieRules {
		c.cookieField = append(c.cookieField, add("cookie:"+r.Name))
	}
	for _, n := range pseudoFields {
		add(n)
	}
	for _, h := range RequestHeaders {
		if h.Field != "" {
			add(h.Field)
		}
	}
	// FieldSet holds 256 fields; TestCatalogueFits keeps the tables under that.
	return c
}

// matchName reports whether key matches a rule name (exact, prefix '*', digits '#').
func matchName(pattern string, key []byte) bool {
	switch pattern[len(pattern)-1] {
	case '*':
		p := pattern[:len(pattern)-1]
		return len(key) >= len(p) && string(key[:len(p)]) == p
	case '#':
		p := pattern[:len(pattern)-1]
		if len(key) <= len(p) || string(key[:len(p)]) != p {
			return false
		}
		for _, c := range key[len(p):] {
			if c < '0' || c > '9' {
				return false
			}
		}
		return true
	}
	return pattern == string(key)
}

// lookup returns the strongest op of the rules for key that apply to
// family f under st, and the field to report when it removes something.
func (c *ruleCatalogue) lookup(scope Scope, f Family, key []byte, st *State, p *Policy) (Op, Field) {
	op, field := OpKeep, Field(0)
	for _, ref := range c.exact[scope][string(key)] {
		if ref.rule.Families.Has(f) && ref.rule.Op > op && ref.rule.When.holds(st, p) {
			op, field = ref.rule.Op, ref.field
		}
	}
	for _, ref := range c.patterns[scope] {
		if len(key) > 0 && key[0] == ref.rule.Name[0] && ref.rule.Families.Has(f) && ref.rule.Op > op && matchName(ref.rule.Name, key) && ref.rule.When.holds(st, p) {
			op, field = ref.rule.Op, ref.field
		}
	}
	return op, field
}

// cookieRule returns the index in CookieRules of the rule for a cookie name, or -1.
func cookieRule(name []byte) int {
	for i, r := range CookieRules {
		if matchName(r.Name, name) {
			return i
		}
	}
	return -1
}

// AppendGoogleCookies appends the cookies of a Cookie header that are in
// CookieRules, whatever the consent (the dry run's hygiene).
func AppendGoogleCookies(dst, header []byte) []byte {
	for piece, name := range cookiePieces(header) {
		if cookieRule(name) >= 0 {
			dst = appendCookie(dst, piece)
		}
	}
	return dst
}

// appendCookie appends one "name=value" piece to a Cookie header value.
func appendCookie(dst, piece []byte) []byte {
	if len(dst) > 0 {
		dst = append(dst, "; "...)
	}
	return append(dst, piece...)
}

// CookieAllowed reports whether a cookie set or sent under the given state
// may travel: it is a Google cookie of CookieRules and its owner is granted.
func CookieAllowed(name []byte, st *State) bool {
	i := cookieRule(name)
	return i >= 0 && st.Granted(CookieRules[i].Owner)
}
