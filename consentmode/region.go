package consentmode

// Region is an ISO 3166-1 alpha-2 country code, optionally with an ISO
// 3166-2 subdivision ("DE", "US-CA", "GB-ENG"), upper case. The zero
// Region means unknown.
type Region [6]byte

// String returns the code, or "unknown" for the zero Region.
func (r Region) String() string {
	if r.IsUnknown() {
		return "unknown"
	}
	n := 0
	for n < len(r) && r[n] != 0 {
		n++
	}
	return string(r[:n])
}

// IsUnknown reports whether r is the zero Region.
func (r Region) IsUnknown() bool { return r[0] == 0 }

// Country returns r without its subdivision.
func (r Region) Country() Region {
	return Region{r[0], r[1]}
}

// HasSubdivision reports whether r names a subdivision.
func (r Region) HasSubdivision() bool { return r[2] == '-' }

// unknownCountries are codes CDNs send when they do not know the country:
// Cloudflare's XX and T1 (Tor), MaxMind's legacy A1/A2/O1 and EU/AP, and ZZ.
var unknownCountries = map[[2]byte]bool{
	{'X', 'X'}: true, {'T', '1'}: true, {'A', '1'}: true, {'A', '2'}: true,
	{'O', '1'}: true, {'E', 'U'}: true, {'A', 'P'}: true, {'Z', 'Z'}: true,
}

// ParseRegion normalises a geo header value or a configured code: it trims
// spaces, upper-cases, maps UK to GB and accepts "CC", "CC-S", "CC-SS",
// "CC-SSS" (also with '_' as separator). Anything else, and the codes CDNs
// use for "unknown", give the zero Region and false. The result does not
// refer to b.
func ParseRegion(b []byte) (Region, bool) {
	for len(b) > 0 && (b[0] == ' ' || b[0] == '\t') {
		b = b[1:]
	}
	for len(b) > 0 && (b[len(b)-1] == ' ' || b[len(b)-1] == '\t') {
		b = b[:len(b)-1]
	}
	if len(b) != 2 && (len(b) < 4 || len(b) > 6) {
		return Region{}, false
	}
	var r Region
	for i := 0; i < len(b); i++ {
		c := b[i]
		if 'a' <= c && c <= 'z' {
			c -= 'a' - 'A'
		}
		if i == 2 {
			if c != '-' && c != '_' {
				return Region{}, false
			}
			c = '-'
		} else if !('A' <= c && c <= 'Z' || '0' <= c && c <= '9') {
			return Region{}, false
		}
		r[i] = c
	}
	if unknownCountries[[2]byte{r[0], r[1]}] || r[0] < 'A' || r[1] < 'A' {
		return Region{}, false
	}
	if r[0] == 'U' && r[1] == 'K' {
		r[0], r[1] = 'G', 'B'
	}
	return r, true
}

// MustRegion is ParseRegion for constant codes in tables and tests; it
// returns the zero Region for a bad code.
func MustRegion(s string) Region {
	r, _ := ParseRegion([]byte(s))
	return r
}

// DefaultDeniedRegions are the regions where every consent type defaults to
// denied: the EEA (EU-27 plus Iceland, Liechtenstein and Norway) with the
// outermost regions and special territories that have their own ISO codes
// (French Guiana, Guadeloupe, Martinique, Réunion, Mayotte, Saint-Martin,
// Åland, and the Canary Islands and Ceuta/Melilla codes some geo databases
// use), the United Kingdom and Switzerland. Google's EU user consent policy
// covers exactly the EEA, the UK and Switzerland.
var DefaultDeniedRegions = []string{
	// EU-27
	"AT", "BE", "BG", "HR", "CY", "CZ", "DK", "EE", "FI", "FR", "DE", "GR", "HU", "IE",
	"IT", "LV", "LT", "LU", "MT", "NL", "PL", "PT", "RO", "SK", "SI", "ES", "SE",
	// rest of the EEA
	"IS", "LI", "NO",
	// outermost regions and territories with their own codes
	"GF", "GP", "MQ", "RE", "YT", "MF", "AX", "IC", "EA",
	// United Kingdom and Switzerland
	"GB", "CH",
}
