package consentmode

// Type is one of the four Google Consent Mode types the gateway enforces.
type Type uint8

// The consent types, in gcd order.
const (
	AdStorage Type = iota
	AnalyticsStorage
	AdUserData
	AdPersonalization
	NumTypes = 4
)

var typeNames = [NumTypes]string{"ad_storage", "analytics_storage", "ad_user_data", "ad_personalization"}

// String returns the Consent Mode name of t, such as "ad_storage".
func (t Type) String() string {
	if int(t) < NumTypes {
		return typeNames[t]
	}
	return "unknown"
}

// TypeNames returns the Consent Mode names of the four types, in gcd order.
func TypeNames() []string { return append([]string(nil), typeNames[:]...) }

// Value is the state of one consent type.
type Value uint8

// Consent values. Unset means no input said anything; Decide never leaves a
// type Unset: the region default fills it.
const (
	Unset Value = iota
	Denied
	Granted
)

// String returns "granted", "denied" or "unset".
func (v Value) String() string {
	switch v {
	case Denied:
		return "denied"
	case Granted:
		return "granted"
	}
	return "unset"
}

// Source names the input that decided a consent type.
type Source uint8

// Sources, from the hit itself to the gateway's own defaults.
const (
	SourceNone Source = iota
	SourceGCD
	SourceGCS
	SourceNPA
	SourceCMPCookie // which cookie: State.Detail
	SourceTCF
	SourceGPC
	SourceUSPrivacy
	SourceGPP
	SourceMP            // the Measurement Protocol body's consent object
	SourceRegionDefault // the region default of the policy
	SourceNotApplicable // the family does not carry this type (e.g. analytics_storage on MP)
)

var sourceNames = [...]string{"none", "gcd", "gcs", "npa", "cmp_cookie", "tcf", "gpc", "us_privacy", "gpp", "mp_consent", "region_default", "not_applicable"}

// String returns the source's stable name, without detail (see Decision.SourceName).
func (s Source) String() string {
	if int(s) < len(sourceNames) {
		return sourceNames[s]
	}
	return "unknown"
}

// State is the consent state of the four types and the input that decided each.
type State struct {
	Value  [NumTypes]Value
	Source [NumTypes]Source
	// Detail qualifies Source: for SourceCMPCookie the index of the mapping
	// in Policy.CMPCookies. Zero otherwise.
	Detail [NumTypes]uint8
}

// Granted reports whether t is granted.
func (s *State) Granted(t Type) bool { return s.Value[t] == Granted }

// Denied reports whether t is denied.
func (s *State) Denied(t Type) bool { return s.Value[t] == Denied }

// deny records an explicit denial of t by src unless an earlier input
// already denied it (the first denial is the one reported).
func (s *State) deny(t Type, src Source, detail uint8) {
	if s.Value[t] == Denied {
		return
	}
	s.Value[t], s.Source[t], s.Detail[t] = Denied, src, detail
}

// grant records a grant of t by src. It never overrides a denial or an
// earlier grant.
func (s *State) grant(t Type, src Source) {
	if s.Value[t] != Unset {
		return
	}
	s.Value[t], s.Source[t] = Granted, src
}

// Family is the kind of Google endpoint a hit goes to.
type Family uint8

// Families.
const (
	FamilyUnknown Family = iota
	FamilyGA4
	FamilyAds
	FamilyFloodlight
	FamilyUA
	FamilyMP
	FamilyScript
	numFamilies
)

var familyNames = [numFamilies]string{"unknown", "ga4", "ads", "floodlight", "ua", "mp", "script"}

// String returns the family's stable name, such as "ga4".
func (f Family) String() string {
	if f < numFamilies {
		return familyNames[f]
	}
	return "unknown"
}

// Families lists every real family, for tables and metrics.
func Families() []Family {
	return []Family{FamilyGA4, FamilyAds, FamilyFloodlight, FamilyUA, FamilyMP, FamilyScript}
}

// FamilySet is a set of families.
type FamilySet uint16

func setOf(fs ...Family) FamilySet {
	var s FamilySet
	for _, f := range fs {
		s |= 1 << f
	}
	return s
}

// Has reports whether f is in s.
func (s FamilySet) Has(f Family) bool { return s&(1<<f) != 0 }

// Action is the gateway's verdict for one hit.
type Action uint8

// Actions. The zero value is a bug, never a verdict.
const (
	ActionUnknown    Action = iota
	ActionForward           // consent covers the whole hit
	ActionStrip             // storage granted, some fields not allowed
	ActionCookieless        // storage denied: identifiers out, cookieless ping
	ActionBlock             // nothing leaves
)

var actionNames = [...]string{"unknown", "forward", "strip", "cookieless", "block"}

// String returns the action's stable name, used as a metric label.
func (a Action) String() string {
	if int(a) < len(actionNames) {
		return actionNames[a]
	}
	return "unknown"
}

// Actions lists every real action, for tables and metrics.
func Actions() []Action {
	return []Action{ActionForward, ActionStrip, ActionCookieless, ActionBlock}
}
