package consentmode

// CMPPresets are tested mappings for widely used CMP cookies. A config can
// name one ("preset: onetrust") instead of spelling out the mapping.
var CMPPresets = map[string]CMPCookie{
	// IAB TCF v2 consent cookie, written by TCF CMPs on the site's domain.
	"euconsent-v2": {Name: "euconsent-v2", Format: CMPFormatTCF},
	// OneTrust: OptanonConsent=...&groups=C0001:1,C0002:0,C0003:1,C0004:0&...
	// C0002 performance (analytics), C0004 targeting (ads); default category ids.
	"onetrust": {
		Name: "OptanonConsent", Format: CMPFormatKV, PairSeparators: "&,", KVSeparators: "=:",
		Keys:    [NumTypes]string{AdStorage: "C0004", AnalyticsStorage: "C0002", AdUserData: "C0004", AdPersonalization: "C0004"},
		Granted: []string{"1"}, Denied: []string{"0"},
	},
	// Cookiebot: CookieConsent={stamp:'...',necessary:true,preferences:false,statistics:true,marketing:false,...}
	"cookiebot": {
		Name: "CookieConsent", Format: CMPFormatKV, PairSeparators: ",{}", KVSeparators: ":",
		Keys:    [NumTypes]string{AdStorage: "marketing", AnalyticsStorage: "statistics", AdUserData: "marketing", AdPersonalization: "marketing"},
		Granted: []string{"true"}, Denied: []string{"false"},
	},
	// CookieYes: cookieyes-consent=consentid:...,consent:yes,action:yes,necessary:yes,functional:no,analytics:no,performance:no,advertisement:no
	"cookieyes": {
		Name: "cookieyes-consent", Format: CMPFormatKV, PairSeparators: ",", KVSeparators: ":",
		Keys:    [NumTypes]string{AdStorage: "advertisement", AnalyticsStorage: "analytics", AdUserData: "advertisement", AdPersonalization: "advertisement"},
		Granted: []string{"yes"}, Denied: []string{"no"},
	},
}

// TypeByName returns the consent type with the given Consent Mode name.
func TypeByName(name string) (Type, bool) {
	for i, n := range typeNames {
		if n == name {
			return Type(i), true
		}
	}
	return 0, false
}
