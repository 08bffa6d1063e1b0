package consentmode

import (
	"crypto/sha256"
	"net/netip"
)

// Input is one hit as the gateway received it. Every slice is borrowed:
// Decide reads it and never keeps it.
type Input struct {
	Route  int    // index in Routes
	Family Family // Routes[Route].Family, kept here so callers can test families directly
	Kind   Kind

	// Path is the request path as it is forwarded: without path_prefix
	// and without Floodlight's matrix. An e-mail address in it cannot be
	// redacted without changing the endpoint, so the hit is blocked.
	Path []byte
	// PathTag is the tag id carried in the path ("1071635065" of an Ads
	// conversion path), without the route's TagPrefix.
	PathTag []byte
	// Query is the raw query string, without '?'.
	Query []byte
	// Matrix holds Floodlight's path-matrix parameters: what follows the
	// first ';' of the path, without a trailing '?'.
	Matrix []byte
	// Body is the request body: GA4 batch lines or Measurement Protocol JSON.
	Body []byte
	// Cookie is the raw Cookie header.
	Cookie []byte
	// GPC is true when the request carried Sec-GPC: 1.
	GPC bool
	// Region is the visitor's region from a trusted geo header, or zero.
	Region Region
	// Day is the current UTC day (Unix seconds / 86400), for the ephemeral ids.
	Day int64
	// Now is when the gateway read the hit, in Unix seconds; the ephemeral
	// ids are never dated after it. Zero means the start of Day.
	Now int64
	// Nonce is drawn at random by the caller for each hit. A hit without
	// _p gets ephemeral ids from it (one per hit), so that visitors of a
	// day never share one. Zero is a valid nonce, for deterministic tests.
	Nonce uint64
	// ClientIP is the client's address as the gateway trusts it. It leaves
	// as Decision.SentIP says: in the subdomain style as the _uip (GA4) or
	// uip (UA) parameter of the rewritten query; in tag gateway style
	// (TagGateway) the caller sends it as X-Forwarded-For.
	ClientIP   netip.Addr
	TagGateway bool
	// Headers is what the caller's header hygiene (RequestHeaders) found,
	// or nil for a bare hit. When set, Decide reports it and, when a
	// Cookie header was sent but no cookie travels, header:Cookie.
	Headers *HeaderFindings
}

// Work holds Decide's output buffers and scratch space. Reuse one per
// goroutine (a sync.Pool in the proxy): after warm-up Decide allocates
// nothing. The output slices are valid until the next Decide with the
// same Work.
type Work struct {
	// Query, Matrix, Body and Cookie are the rewritten parts of the hit.
	// They are meaningful only when the action is not block; Matrix only
	// for Floodlight and Body only when the input had one. Cookie holds
	// the Cookie header value to send (empty: send none).
	Query, Matrix, Body, Cookie []byte

	// Scratch space. No buffer here has a fixed size: each slice grows to
	// the largest value it has held and is kept for the next Decide, which
	// is why a warm Work allocates nothing. A long value is never skipped
	// or cut short; the proxy's request limits (limits.*) bound how large
	// these get.
	scratch     []byte // a value or URL being percent-decoded
	emailLayers []byte // the percent-decoded layers holdsEmail looks through
	url         []byte // a URL value being rebuilt
	key         []byte // a decoded parameter name of the hit
	urlKey      []byte // a decoded parameter name inside a URL value
	linked      []byte // a value with its linkers judged (linker.go)
	linker      []byte // one decoded linker value
	click       []byte // a linker part's base64 value decoded (2*maxClickID bytes)
}

func (w *Work) reset() {
	w.Query, w.Matrix, w.Body, w.Cookie = w.Query[:0], w.Matrix[:0], w.Body[:0], w.Cookie[:0]
}

// Decision is the gateway's verdict for one tag request. The proxy acts on
// it, explain and audit print it, the decision log and metrics record it,
// and golden files store it. It holds no pointers, maps or slices: it is
// free to copy and comparable with ==.
type Decision struct {
	Route  uint8 // index in Routes
	Family Family
	Action Action
	// Consent is the enforced state of the four types and what set each.
	Consent State
	// Claimed is what the hit itself claimed through gcs, gcd and npa
	// (Unset where it claimed nothing), for the over-claim report.
	Claimed [NumTypes]Value
	// Said is what each of the hit's own inputs said, before merging.
	Said    Said
	Reasons ReasonSet
	Removed FieldSet
	// Region is the visitor's region; PolicyRegion the region key whose
	// rule applied (zero for the default or unknown rule).
	Region       Region
	PolicyRegion Region
	// OptOut is true when a US opt-out applied to a visitor in the US or
	// of unknown region (rdp=1 written back).
	OptOut bool
	// ServerContainer is true when the hit came from a tag configured with
	// server_container_url: the proxy answers 204 itself.
	ServerContainer bool
	// AnonymizeIP is true for a Universal Analytics hit with aip=1: the
	// client IP leaves truncated whatever the consent.
	AnonymizeIP bool
	// DMA is true when the hit says the EEA Digital Markets Act regime
	// applies (dma=1); ConsentUpdate when it was sent because consent was
	// just updated (gcu=1). Both describe the hit and change nothing.
	DMA, ConsentUpdate bool
}

// Lowered reports whether the gateway enforced denied on a type some
// input of the hit said was granted, even when another of its inputs
// denied it (gcs=G111 beside a gcd letter saying denied): the hit's
// consent update (gcu=1) then describes a state that does not apply.
func (d *Decision) Lowered() bool {
	for t := range NumTypes {
		if d.Consent.Value[t] == Denied && (d.Said.GCS[t] == Granted || d.Said.GCD[t] == Granted || d.Said.NPA[t] == Granted || d.Said.MP[t] == Granted) {
			return true
		}
	}
	return false
}

// Downgraded reports whether the gateway enforced denied on a type the hit claimed granted.
func (d *Decision) Downgraded(t Type) bool {
	return d.Claimed[t] == Granted && d.Consent.Value[t] == Denied
}

// SourceName returns the input that decided type t, as shown by explain
// and the decision log: "gcd", "cmp_cookie:euconsent-v2", "region_default:DE", ...
func (d *Decision) SourceName(t Type, p *Policy) string {
	src := d.Consent.Source[t]
	switch src {
	case SourceCMPCookie:
		if i := int(d.Consent.Detail[t]); i < len(p.CMPCookies) {
			return "cmp_cookie:" + p.CMPCookies[i].Name
		}
	case SourceRegionDefault:
		return "region_default:" + d.Region.String()
	}
	return src.String()
}

// Said is what each consent input of a hit said about each type, Unset
// where it said nothing. explain prints it beside the enforced state, so
// that a hit claiming more than it may reads at a glance. TCF only ever
// denies: its entries are Denied or Unset.
type Said struct {
	GCS, GCD, NPA, MP, TCF [NumTypes]Value
}

// SaidInputs names the inputs of Said, in its field order.
var SaidInputs = [...]string{"gcs", "gcd", "npa", "mp", "tcf"}

// Input returns what the input SaidInputs[i] said.
func (s *Said) Input(i int) *[NumTypes]Value {
	return [...]*[NumTypes]Value{&s.GCS, &s.GCD, &s.NPA, &s.MP, &s.TCF}[i]
}

// claims holds the consent parameters of the hit, merged over every
// occurrence (query and each batch line): a denial anywhere wins.
type claims struct {
	gcd, gcs, npa, mp [NumTypes]Value
	seenGCD, seenGCS  bool
	seenMP            bool
	badGCD, badGCS    bool
	badNPA, badMP     bool
}

func mergeValue(dst *Value, v Value) {
	if v == Denied || (v == Granted && *dst == Unset) {
		*dst = v
	}
}

// hit is what the first pass collects besides consent claims.
type hit struct {
	claims
	tagSeen bool
	tagBad  bool // a tag id not in the allowlist
	pageID  []byte
	tid     []byte
	event   []byte
	sst     bool
	aip     bool // Universal Analytics aip=1: anonymise the IP
	dma     bool // dma=1
	gcu     bool // gcu=1
	// cid and sid are the hit's client and session ids (the first seen);
	// idConflict is set when a later occurrence differs.
	cid, sid   []byte
	idConflict bool
	// tagIDs: cookieless.client_id is tag and the hit's own cid and sid may
	// stay on this denied hit (tagIDsUsable).
	tagIDs bool
	// invalidBody is set for a Measurement Protocol body that is not a JSON object.
	invalidBody bool
	signalRefs  // raw optional signals (TCF, US Privacy, GPP)
}

// Decide works out the consent state of the hit, the action, and (unless
// the action is block) the rewritten hit in w. w may be nil when only the
// Decision is wanted.
func Decide(in *Input, p *Policy, w *Work) Decision {
	if w == nil {
		w = new(Work)
	}
	w.reset()
	d := Decision{Route: uint8(in.Route), Family: in.Family, Region: p.Resolve(in.Region)}
	rule, key := p.RuleFor(d.Region)
	d.PolicyRegion = key
	if d.Region.IsUnknown() {
		d.Reasons.Add(ReasonRegionUnknown)
	}

	var h hit
	scanHit(&h, in, p, w)
	if in.Family == FamilyMP && !scanMP(&h, in.Body) {
		h.invalidBody = true
		d.Reasons.Add(ReasonInvalidBody)
	}
	d.ServerContainer = h.sst
	d.AnonymizeIP = h.aip && in.Family == FamilyUA
	d.DMA, d.ConsentUpdate = h.dma, h.gcu
	if h.sst {
		d.Reasons.Add(ReasonServerContainer)
	}

	st := &d.Consent
	mergeClaims(&d, &h.claims)
	mergeOptionalSignals(&d, &h, in, p, &rule, w)
	for t := range st.Value {
		if st.Value[t] == Unset {
			v := rule.Defaults[t]
			if v == Unset {
				v = Denied
			}
			st.Value[t], st.Source[t] = v, SourceRegionDefault
			d.Reasons.Add(ReasonRegionDefault)
		}
	}
	if !h.seenGCD && !h.seenGCS && in.Family != FamilyMP {
		d.Reasons.Add(ReasonNoConsentSignal)
	}
	notApplicable(&d)
	for t := range st.Value {
		if d.Downgraded(Type(t)) {
			d.Reasons.Add(ReasonConsentDowngraded)
		}
	}

	d.Action = decideAction(&d, in, p, &h, w)
	if d.Action == ActionBlock {
		return d
	}
	if p.ClientIDTag && in.Family == FamilyGA4 && st.Denied(AnalyticsStorage) && tagIDsUsable(&h, in.Cookie) {
		h.tagIDs = true
		d.Reasons.Add(ReasonTagClientID)
	}
	rewrite(&d, in, p, w, &h)
	if in.Headers != nil {
		reportHeaders(&d, in, w)
	}
	return d
}

// reportHeaders adds what header hygiene took out of the request headers
// to d, and header:Cookie when a Cookie header was sent but no cookie of
// it travels.
func reportHeaders(d *Decision, in *Input, w *Work) {
	hf := in.Headers
	d.Removed.Union(&hf.Removed)
	if hf.EmailRedacted {
		d.Removed.Add(fieldEmail)
		d.Reasons.Add(ReasonEmailRedacted)
	}
	if len(in.Cookie) > 0 && len(w.Cookie) == 0 {
		d.Removed.Add(fieldCookieHeader)
	}
}

// scanHit reads the consent parameters and the few other values Decide
// needs from the query, the Floodlight matrix and GA4 batch lines.
func scanHit(h *hit, in *Input, p *Policy, w *Work) {
	scanList(h, in.Query, '&', p, w)
	if in.Family == FamilyFloodlight {
		scanList(h, in.Matrix, ';', p, w)
	}
	if in.Family != FamilyMP && in.Family != FamilyScript {
		for body := in.Body; len(body) > 0; {
			var line []byte
			line, _, body = cutLine(body)
			scanList(h, line, '&', p, w)
		}
	}
	if len(in.PathTag) > 0 {
		noteTag(h, in.PathTag, routeTagPrefix(in.Route), p)
	}
}

// cutLine splits a batch body at its first line end: CRLF, LF, or a bare
// CR (a reader might take it as a line break, so the gateway does too).
func cutLine(b []byte) (line, end, rest []byte) {
	for i, c := range b {
		switch c {
		case '\n':
			return b[:i], b[i : i+1], b[i+1:]
		case '\r':
			if i+1 < len(b) && b[i+1] == '\n' {
				return b[:i], b[i : i+2], b[i+2:]
			}
			return b[:i], b[i : i+1], b[i+1:]
		}
	}
	return b, nil, nil
}

func routeTagPrefix(i int) string {
	if i >= 0 && i < len(Routes) {
		return Routes[i].TagPrefix
	}
	return ""
}

func scanList(h *hit, list []byte, sep byte, p *Policy, w *Work) {
	for len(list) > 0 {
		var pair []byte
		pair, list, _ = cutByte(list, sep)
		k, v := splitPair(pair)
		k = normKey(&w.key, k)
		scanPair(h, k, v, p)
	}
}

func scanPair(h *hit, k, v []byte, p *Policy) {
	c := &h.claims
	switch string(k) {
	case "gcs":
		c.seenGCS = true
		ad, an, err := ParseGCS(v)
		if err != nil {
			c.badGCS = true
			ad, an = Denied, Denied
		}
		mergeValue(&c.gcs[AdStorage], ad)
		mergeValue(&c.gcs[AnalyticsStorage], an)
	case "gcd":
		c.seenGCD = true
		g, err := ParseGCD(v)
		if err != nil {
			c.badGCD = true
		}
		for t := range g.Value {
			mergeValue(&c.gcd[t], g.Value[t])
		}
	case "npa":
		v, err := ParseNPA(v)
		if err != nil {
			c.badNPA = true
		}
		mergeValue(&c.npa[AdPersonalization], v)
	case "tid", "id", "measurement_id":
		if h.tid == nil {
			h.tid = v
		}
		noteTag(h, v, "", p)
	case "src":
		noteTag(h, v, "DC-", p)
	case "cid":
		noteID(&h.cid, v, &h.idConflict)
	case "sid":
		noteID(&h.sid, v, &h.idConflict)
	case "_p":
		if h.pageID == nil {
			h.pageID = v
		}
	case "en":
		if h.event == nil {
			h.event = v
		}
	case "richsstsse":
		h.sst = true
	case "aip":
		if string(v) == "1" {
			h.aip = true
		}
	case "dma":
		if on, err := ParseFlag(v); err == nil && on {
			h.dma = true
		}
	case "gcu":
		if on, err := ParseFlag(v); err == nil && on {
			h.gcu = true
		}
	default:
		if len(k) > 4 && string(k[:4]) == "sst." {
			h.sst = true
		}
		h.signalRefs.note(k, v)
	}
}

// noteID records the first value of an id and flags a differing repeat.
func noteID(dst *[]byte, v []byte, conflict *bool) {
	if *dst == nil {
		*dst = v
	} else if string(*dst) != string(v) {
		*conflict = true
	}
}

// tagIDsUsable reports whether a denied GA4 hit may keep the tag's own
// page-scoped cid and sid (cookieless.client_id: tag). Only when the
// gateway can see the visitor's cookies (the hit carries a Cookie header:
// the gateway is inside the site's cookie scope), the ids are plain
// (digits and dots, one value each) and cid is not the client id stored
// in any _ga cookie; otherwise the ephemeral id is used.
func tagIDsUsable(h *hit, cookie []byte) bool {
	if len(cookie) == 0 || h.idConflict || !plainID(h.cid) || (h.sid != nil && !plainID(h.sid)) {
		return false
	}
	for ga := range cookieValues(cookie, "_ga") {
		if len(ga) == 0 || string(gaClientID(ga)) == string(h.cid) {
			return false
		}
	}
	return true
}

// plainID accepts a non-empty id of digits and dots, at most 64 bytes.
func plainID(b []byte) bool {
	if len(b) == 0 || len(b) > 64 {
		return false
	}
	for _, c := range b {
		if (c < '0' || c > '9') && c != '.' {
			return false
		}
	}
	return true
}

// gaClientID returns the client id stored in a _ga cookie value
// ("GA1.1.1174285007.1749196701" -> "1174285007.1749196701"): what
// follows the second dot. A value without two dots comes back whole.
func gaClientID(v []byte) []byte {
	dots := 0
	for i, c := range v {
		if c == '.' {
			dots++
			if dots == 2 {
				return v[i+1:]
			}
		}
	}
	return v
}

// noteTag checks one tag id against the allowlist. prefix is prepended
// for ids that travel without it (Ads conversion ids, Floodlight src).
func noteTag(h *hit, id []byte, prefix string, p *Policy) {
	h.tagSeen = true
	if len(p.Tags) == 0 {
		return
	}
	// buf holds a prefix and any id TagAllowed can accept (32 bytes); a
	// longer one cannot be on the allowlist, so it is not allowed (the hit
	// is blocked) without being built on the heap.
	var buf [40]byte
	if len(prefix)+len(id) > len(buf) {
		h.tagBad = true
		return
	}
	full := append(append(buf[:0], prefix...), id...)
	if !p.TagAllowed(full) {
		h.tagBad = true
	}
}

// mergeClaims turns the hit's own consent parameters into the first
// layer of the state: denials from gcd, gcs and npa (in that order of
// precedence for reporting), then grants from gcd and gcs.
func mergeClaims(d *Decision, c *claims) {
	st := &d.Consent
	if c.badGCD {
		d.Reasons.Add(ReasonMalformedGCD)
	}
	if c.badGCS {
		d.Reasons.Add(ReasonMalformedGCS)
	}
	if c.badNPA {
		d.Reasons.Add(ReasonMalformedNPA)
	}
	if c.badMP {
		d.Reasons.Add(ReasonInvalidBody)
	}
	for t := range st.Value {
		switch {
		case c.gcd[t] == Denied:
			st.deny(Type(t), SourceGCD, 0)
		case c.gcs[t] == Denied:
			st.deny(Type(t), SourceGCS, 0)
		case c.npa[t] == Denied:
			st.deny(Type(t), SourceNPA, 0)
		case c.mp[t] == Denied:
			st.deny(Type(t), SourceMP, 0)
		}
		claimed := c.gcd[t]
		mergeValue(&claimed, c.gcs[t])
		mergeValue(&claimed, c.npa[t])
		mergeValue(&claimed, c.mp[t])
		d.Claimed[t] = claimed
	}
	d.Said.GCS, d.Said.GCD, d.Said.NPA, d.Said.MP = c.gcs, c.gcd, c.npa, c.mp
	for t := range st.Value {
		switch {
		case c.gcd[t] == Granted:
			st.grant(Type(t), SourceGCD)
		case c.gcs[t] == Granted:
			st.grant(Type(t), SourceGCS)
		case c.mp[t] == Granted:
			st.grant(Type(t), SourceMP)
		}
	}
}

// notApplicable marks the types a family does not carry. The Measurement
// Protocol has no storage: analytics consent is the sender's, and its
// consent object covers only the two ad data types.
func notApplicable(d *Decision) {
	if d.Family != FamilyMP {
		return
	}
	st := &d.Consent
	for _, t := range [...]Type{AdStorage, AnalyticsStorage} {
		st.Value[t], st.Source[t], st.Detail[t] = Granted, SourceNotApplicable, 0
		d.Claimed[t] = Unset
	}
}

// relevant lists, per family, the types whose denial the family acts on.
var relevant = [numFamilies][NumTypes]bool{
	FamilyGA4:        {true, true, true, true},
	FamilyAds:        {true, false, true, true},
	FamilyFloodlight: {true, false, true, true},
	FamilyUA:         {true, true, true, true},
	FamilyMP:         {false, false, true, true},
}

var deniedReason = [NumTypes]Reason{ReasonAdStorageDenied, ReasonAnalyticsStorageDenied, ReasonAdUserDataDenied, ReasonAdPersonalizationDenied}

// decideAction applies the per-family rules of docs/spec.md §1.8.
func decideAction(d *Decision, in *Input, p *Policy, h *hit, w *Work) Action {
	st := &d.Consent
	if holdsEmail(in.Path, &w.emailLayers) || (in.Family == FamilyScript && holdsEmail(in.Query, &w.emailLayers)) {
		d.Reasons.Add(ReasonEmailUnredactable)
		return ActionBlock
	}
	if in.Family == FamilyScript {
		if h.tagBad || (len(p.Tags) > 0 && !h.tagSeen) {
			d.Reasons.Add(tagReason(h))
			return ActionBlock
		}
		return ActionForward
	}
	for t := range st.Value {
		if relevant[in.Family][t] && st.Value[t] == Denied {
			d.Reasons.Add(deniedReason[t])
		}
	}
	if h.tagBad || (len(p.Tags) > 0 && !h.tagSeen) {
		d.Reasons.Add(tagReason(h))
		return ActionBlock
	}
	storage := AnalyticsStorage
	switch in.Family {
	case FamilyUA:
		if !p.UAForward {
			d.Reasons.Add(ReasonUASunset)
			return ActionBlock
		}
	case FamilyMP:
		if !p.MPEnabled {
			d.Reasons.Add(ReasonMPDisabled)
			return ActionBlock
		}
		if h.invalidBody {
			return ActionBlock
		}
	case FamilyAds, FamilyFloodlight:
		storage = AdStorage
		kind := in.Kind
		if kind == KindViewThrough && string(h.event) != "conversion" {
			kind = KindRemarketing
		}
		// A view-through ping without a conversion is a remarketing
		// ping. Under denied ad_personalization Google's tag still sends
		// it, with npa=1, as a consent-status ping for measurement: it
		// leaves the same way (npa=1 written back, cookieless when
		// ad_storage is denied). The audience endpoints (rmkt/collect,
		// 1p-user-list, Protected Audience joins, GA audiences) exist
		// only to build audiences: they stay blocked.
		if kind == KindRemarketing && st.Denied(AdPersonalization) && in.Kind != KindViewThrough {
			d.Reasons.Add(ReasonRemarketingDenied)
			return ActionBlock
		}
		if kind == KindFormData && st.Denied(AdUserData) {
			d.Reasons.Add(ReasonFormDataDenied)
			return ActionBlock
		}
	}
	if in.Family != FamilyMP && st.Denied(storage) {
		if p.Mode == ModeBasic {
			d.Reasons.Add(ReasonBasicMode)
			return ActionBlock
		}
		return ActionCookieless
	}
	for t := range st.Value {
		if relevant[in.Family][t] && st.Value[t] == Denied {
			return ActionStrip
		}
	}
	return ActionForward
}

func tagReason(h *hit) Reason {
	if h.tagBad {
		return ReasonTagNotAllowed
	}
	return ReasonTagMissing
}

// ephemeralMAC is computed once per hit, when the first id needs it.
type ephemeralMAC struct {
	done bool
	mac  [sha256.Size]byte
	secs int64 // the ids' unix seconds (idTime)
}

// hitTime returns Now, or the start of Day when Now is not set.
func (in *Input) hitTime() int64 {
	if in.Now != 0 {
		return in.Now
	}
	return in.Day * secondsPerDay
}
