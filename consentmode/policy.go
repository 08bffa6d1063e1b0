package consentmode

import "crypto/sha256"

// Mode is Google Consent Mode's implementation style the site uses.
type Mode uint8

// Modes.
const (
	ModeAdvanced Mode = iota // tags send cookieless pings while denied
	ModeBasic                // nothing may leave while denied
)

// String returns "advanced" or "basic".
func (m Mode) String() string {
	if m == ModeBasic {
		return "basic"
	}
	return "advanced"
}

// Profile says how closely a cookieless ping follows Google's own tags.
type Profile uint8

// Profiles.
const (
	// ProfileStrict (the default) removes every user-level identifier of
	// a hit whose analytics_storage is denied, user_id and user properties
	// included.
	ProfileStrict Profile = iota
	// ProfileGoogle keeps what Google's consent mode reference says a
	// cookieless ping still carries: user_id and custom dimensions and
	// user properties ("sent normally"), with the tag's own page-scoped
	// ids (cookieless.client_id: tag).
	ProfileGoogle
)

// String returns "strict" or "google".
func (p Profile) String() string {
	if p == ProfileGoogle {
		return "google"
	}
	return "strict"
}

// Signal is an optional consent input that a region may honour or ignore.
// gcs, gcd and npa carried by the hit are always honoured.
type Signal uint8

// Signals.
const (
	SignalCMPCookie Signal = iota // the CMP's own cookie record (deny-only)
	SignalTCF                     // IAB TCF (gdpr, gdpr_consent)
	SignalGPC                     // Sec-GPC: 1
	SignalUSPrivacy               // us_privacy
	SignalGPP                     // gpp, gpp_sid
	numSignals
)

var signalNames = [numSignals]string{"cmp_cookie", "tcf", "gpc", "us_privacy", "gpp"}

// String returns the signal's config name.
func (s Signal) String() string {
	if s < numSignals {
		return signalNames[s]
	}
	return "unknown"
}

// Signals lists every optional signal.
func Signals() []Signal {
	return []Signal{SignalCMPCookie, SignalTCF, SignalGPC, SignalUSPrivacy, SignalGPP}
}

// SignalSet is a set of signals.
type SignalSet uint8

// AllSignals honours every optional signal.
const AllSignals SignalSet = 1<<numSignals - 1

// Has reports whether s holds sig.
func (s SignalSet) Has(sig Signal) bool { return s&(1<<sig) != 0 }

// With returns s with sig added or removed.
func (s SignalSet) With(sig Signal, on bool) SignalSet {
	if on {
		return s | 1<<sig
	}
	return s &^ (1 << sig)
}

// RegionRule is the policy for one region: what an unset type defaults to
// and which optional signals count.
type RegionRule struct {
	// Defaults is the value of a type no input has set. Unset counts as Denied.
	Defaults [NumTypes]Value
	// Signals are the optional inputs honoured in the region.
	Signals SignalSet
	// TCFStrict makes TCF Purpose 1 govern analytics_storage too.
	TCFStrict bool
	// OptOutDeniesAdUserData makes a US opt-out deny ad_user_data as well
	// as ad_personalization (off: it would end tag-based conversion tracking).
	OptOutDeniesAdUserData bool
}

// DeniedRule returns a rule with every type denied by default and every signal honoured.
func DeniedRule() RegionRule {
	return RegionRule{Defaults: [NumTypes]Value{Denied, Denied, Denied, Denied}, Signals: AllSignals}
}

// GrantedRule returns a rule with every type granted by default and every signal honoured.
func GrantedRule() RegionRule {
	return RegionRule{Defaults: [NumTypes]Value{Granted, Granted, Granted, Granted}, Signals: AllSignals}
}

// Policy is everything Decide needs besides the hit. It is built once per
// configuration (config.Load) and never modified afterwards, so it is safe
// for concurrent use.
type Policy struct {
	Mode             Mode
	Profile          Profile // consent.profile
	AdsDataRedaction bool
	UAForward        bool // forward Universal Analytics hits instead of blocking them
	MPEnabled        bool // accept Measurement Protocol hits
	// ClientIDTag keeps the tag's own page-scoped cid and sid on a hit
	// with analytics_storage denied when they are provably not the stored
	// client id (cookieless.client_id: tag). False: the ephemeral id.
	ClientIDTag bool

	// Tags is the tag id allowlist ("G-XXXX", "AW-123", "DC-456",
	// "GTM-ABC"), upper case. Empty allows every tag.
	Tags map[string]bool

	// Default applies to known regions without a rule of their own,
	// Unknown to hits without a region, Regions to the regions listed
	// ("DE", "US-CA"; the most specific match wins).
	Default RegionRule
	Unknown RegionRule
	Regions map[Region]RegionRule

	// RegionAliases maps a country code that ISO 3166-1 does not assign to
	// the code it stands for (consent.region_aliases: UK to GB, EL to GR).
	// Keys and values are countries without subdivision. Nil maps nothing.
	RegionAliases map[Region]Region
	// UserAssigned lists the user-assigned codes read as countries
	// (consent.user_assigned_regions: XK). Nil: none.
	UserAssigned map[Region]bool

	// CMPCookies are the CMP cookie mappings read as deny-only inputs.
	CMPCookies []CMPCookie

	// hmac key blocks for the ephemeral ids; see SetSecret.
	ipad, opad [sha256.BlockSize]byte
}

// NewPolicy returns the default policy: Advanced mode, the EEA, UK and
// Switzerland denied by default, other regions granted, unknown regions
// denied, every signal honoured. The secret must be set with SetSecret.
func NewPolicy() *Policy {
	p := &Policy{
		Default: GrantedRule(),
		Unknown: DeniedRule(),
		Regions: make(map[Region]RegionRule, len(DefaultDeniedRegions)),
	}
	for _, code := range DefaultDeniedRegions {
		p.Regions[MustRegion(code)] = DeniedRule()
	}
	return p
}

// SetSecret sets the key of the ephemeral client and session ids
// (cookieless.secret). Replicas must share it.
func (p *Policy) SetSecret(secret []byte) {
	key := secret
	if len(key) > sha256.BlockSize {
		sum := sha256.Sum256(key)
		key = sum[:]
	}
	for i := range p.ipad {
		var k byte
		if i < len(key) {
			k = key[i]
		}
		p.ipad[i] = k ^ 0x36
		p.opad[i] = k ^ 0x5c
	}
}

// RuleFor returns the rule that applies to region r and the region key it
// was found under (zero for the default and unknown rules).
func (p *Policy) RuleFor(r Region) (RegionRule, Region) {
	if r.IsUnknown() {
		return p.Unknown, Region{}
	}
	if rule, ok := p.Regions[r]; ok {
		return rule, r
	}
	if r.HasSubdivision() {
		c := r.Country()
		if rule, ok := p.Regions[c]; ok {
			return rule, c
		}
	}
	return p.Default, Region{}
}

// TagAllowed reports whether the tag id is allowed. The comparison ignores
// ASCII case. An empty allowlist allows everything.
func (p *Policy) TagAllowed(id []byte) bool {
	if len(p.Tags) == 0 {
		return true
	}
	// Real tag ids are far shorter than buf (G-XXXXXXXXXX is 12 bytes). A
	// longer id is reported not allowed, which blocks the hit: failing
	// closed costs nothing but a tag nobody uses (config accepts longer
	// ids, but they could never match).
	var buf [32]byte
	if len(id) > len(buf) {
		return false
	}
	up := buf[:len(id)]
	for i, c := range id {
		if 'a' <= c && c <= 'z' {
			c -= 'a' - 'A'
		}
		up[i] = c
	}
	return p.Tags[string(up)]
}
