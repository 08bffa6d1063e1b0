package consentmode

// tcfMapping applies Google's TCF mapping to a TC string both ways: deny
// as tcfDenials, and grant the types TCF governs (the three ad types, and
// analytics_storage in strict mode) that the mapping does not deny, but
// only when the string parses and gives Google (vendor 755) consent and,
// where disclosure applies (TCF 2.3), is disclosed. A string that does
// not parse grants nothing.
func tcfMapping(tc []byte, strict bool) (deny, grant [NumTypes]bool, malformed bool) {
	f, err := ParseTC(tc, TCGoogleVendorID)
	if err != nil {
		return tcfDenyAll(strict), grant, true
	}
	ad, an, aud, ap := f.GoogleDenials(strict)
	deny = [NumTypes]bool{AdStorage: ad, AnalyticsStorage: an, AdUserData: aud, AdPersonalization: ap}
	if f.GoogleConsent() {
		for t, governed := range tcfDenyAll(strict) {
			grant[t] = governed && !deny[t]
		}
	}
	return deny, grant, false
}

// tcfDenials applies Google's TCF mapping (TCFacts.GoogleDenials) to a TC
// string. A string that does not parse denies the three ad types (and
// analytics_storage in strict mode) and reports malformed.
func tcfDenials(tc []byte, strict bool) (deny [NumTypes]bool, malformed bool) {
	f, err := ParseTC(tc, TCGoogleVendorID)
	if err != nil {
		return tcfDenyAll(strict), true
	}
	ad, an, aud, ap := f.GoogleDenials(strict)
	return [NumTypes]bool{AdStorage: ad, AnalyticsStorage: an, AdUserData: aud, AdPersonalization: ap}, false
}

// tcfDenyAll is what an unusable TCF signal denies: the types TCF governs.
func tcfDenyAll(strict bool) [NumTypes]bool {
	return [NumTypes]bool{AdStorage: true, AdUserData: true, AdPersonalization: true, AnalyticsStorage: strict}
}
