package consentmode

// HeaderOp is what the gateway does with a request header.
type HeaderOp uint8

// Header ops.
const (
	HeaderDrop      HeaderOp = iota // never forwarded; Field names it in Removed
	HeaderForward                   // forwarded, e-mail addresses in the value redacted
	HeaderOrigin                    // forwarded cut to its origin (Referer)
	HeaderCookies                   // rebuilt from CookieRules by Decide
	HeaderTransport                 // written by the gateway's own HTTP client: not copied, not reported
)

var headerOpNames = [...]string{"dropped", "forwarded (e-mail addresses redacted)", "cut to its origin",
	"only the cookies of the cookie table whose owner is granted; none on a cookieless hit", "set by the gateway itself"}

// String describes o for the rules table.
func (o HeaderOp) String() string { return headerOpNames[o] }

// HeaderRule is one row of the request header table.
type HeaderRule struct {
	// Name is a header name as browsers and CDNs spell it; a trailing '*'
	// makes it a prefix. HeaderGeo, HeaderListed and HeaderOther stand for
	// the configured geo headers, the headers named in Connection and
	// every header no other row names.
	Name string
	Op   HeaderOp
	// Field is what Removed reports when the header does not travel
	// whole ("header:Referer"); empty for headers that are never reported.
	Field string
	Why   string
}

// Names of the header rows that match no fixed name.
const (
	HeaderGeo    = "geo headers (geo.headers)"
	HeaderListed = "headers named in Connection"
	HeaderOther  = "any other request header"
)

// RequestHeaders is the request header table: the only source of what
// travels upstream. The proxy applies it (an allowlist: a header no row
// forwards stays behind, so new proxy or CDN headers carrying the client
// IP or location cannot slip through), `rules` and docs/rules.md print it,
// and the proxy's tests send one header of every row. Exact names win
// over prefixes, then the geo headers, then the prefixes; a forwarded
// header named in Connection is dropped as hop-by-hop.
var RequestHeaders = []HeaderRule{
	{"User-Agent", HeaderForward, "", "Google reads the browser and device from it"},
	{"Accept", HeaderForward, "", "sent by every browser"},
	{"Accept-Language", HeaderForward, "", "Google reads the visitor's language from it"},
	{"Accept-Encoding", HeaderForward, "", "sent by every browser"},
	{"Content-Type", HeaderForward, "", "describes a POST body"},
	{"Origin", HeaderForward, "", "sent by the browser on cross-origin requests"},
	{"Sec-GPC", HeaderForward, "", "Global Privacy Control: a consent signal"},
	{"DNT", HeaderForward, "", "Do Not Track"},
	{"Cache-Control", HeaderForward, "", "sent by every browser"},
	{"Pragma", HeaderForward, "", "sent by every browser"},
	{"Attribution-Reporting-Eligible", HeaderForward, "", "the browser's Attribution Reporting API"},
	{"Attribution-Reporting-Support", HeaderForward, "", "the browser's Attribution Reporting API"},
	{"Sec-CH-UA*", HeaderForward, "", "client hints: what User-Agent says, split up"},
	{"Sec-Fetch-*", HeaderForward, "", "fetch metadata"},
	{"Authorization", HeaderDrop, "header:Authorization", "credentials of the site, never Google's"},
	{"Proxy-Authorization", HeaderDrop, "header:Proxy-Authorization", "credentials of the site, never Google's"},
	{"X-Api-Key", HeaderDrop, "header:X-Api-Key", "credentials of the site, never Google's"},
	{"Keep-Alive", HeaderDrop, "header:hop-by-hop", "hop-by-hop"},
	{"Proxy-Connection", HeaderDrop, "header:hop-by-hop", "hop-by-hop"},
	{"TE", HeaderDrop, "header:hop-by-hop", "hop-by-hop"},
	{"Trailer", HeaderDrop, "header:hop-by-hop", "hop-by-hop"},
	{"Upgrade", HeaderDrop, "header:hop-by-hop", "hop-by-hop"},
	{HeaderListed, HeaderDrop, "header:hop-by-hop", "hop-by-hop"},
	{"X-Forwarded-*", HeaderDrop, "header:X-Forwarded-For", "the client's address as others saw it; in tag gateway style the gateway sets its own X-Forwarded-For from the trusted client IP"},
	{"Forwarded", HeaderDrop, "header:X-Forwarded-For", "the client's address as others saw it"},
	{"X-Real-IP", HeaderDrop, "header:X-Forwarded-For", "the client's address as others saw it"},
	{"True-Client-IP", HeaderDrop, "header:X-Forwarded-For", "the client's address as others saw it"},
	{"CF-Connecting-IP", HeaderDrop, "header:X-Forwarded-For", "the client's address as others saw it"},
	{"X-Client-IP", HeaderDrop, "header:X-Forwarded-For", "the client's address as others saw it"},
	{"Fastly-Client-IP", HeaderDrop, "header:X-Forwarded-For", "the client's address as others saw it"},
	{HeaderGeo, HeaderDrop, "header:geo", "read only from trusted_proxies; in tag gateway style the region goes upstream as X-Forwarded-CountryRegion"},
	{"Referer", HeaderOrigin, "header:Referer", "the page path and query stay behind; dropped when it is not an http(s) URL or its origin holds userinfo or an e-mail address"},
	{"Cookie", HeaderCookies, "header:Cookie", "reported when no cookie travels"},
	{"Host", HeaderTransport, "", "the upstream's"},
	{"Content-Length", HeaderTransport, "", "the forwarded body's"},
	{"Transfer-Encoding", HeaderTransport, "", "the forwarded body's"},
	{"Connection", HeaderTransport, "", "the gateway's own connection"},
	{HeaderOther, HeaderDrop, "header:other", "not on the allowlist"},
}

// ResponseHeaders are the upstream response headers that never reach the
// browser: hop-by-hop headers (and those named in Connection), Google's
// CORS headers (the gateway answers CORS itself) and Alt-Svc (it would
// send the browser past the gateway). Set-Cookie is filtered apart, by
// CookieRules.
var ResponseHeaders = []string{"Keep-Alive", "Proxy-Connection", "Proxy-Authenticate", "TE", "Trailer", "Upgrade",
	"Access-Control-Allow-Origin", "Access-Control-Allow-Credentials", "Access-Control-Allow-Methods",
	"Access-Control-Allow-Headers", "Access-Control-Expose-Headers", "Access-Control-Max-Age", "Alt-Svc"}

// HeaderFindings is what applying RequestHeaders took out of a request's
// headers. Decide adds it to the decision of a hit that is not blocked.
type HeaderFindings struct {
	Removed FieldSet
	// EmailRedacted is true when an e-mail address was redacted from a
	// forwarded header value.
	EmailRedacted bool
}
