package consentmode

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
