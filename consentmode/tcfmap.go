package consentmode

// tcfDenials applies Google's TCF mapping to a TC string.
// PLACEHOLDER until the TC decoder lands: every string counts as malformed (fail closed).
func tcfDenials(tc []byte, strict bool) (deny [NumTypes]bool, malformed bool) {
	return [NumTypes]bool{AdStorage: true, AdUserData: true, AdPersonalization: true, AnalyticsStorage: strict}, true
}
