package consentmode

// Region is an ISO 3166-1 alpha-2 country code, optionally with an ISO
// 3166-2 subdivision ("DE", "US-CA", "GB-ENG"), upper case. The zero
// Region means unknown. Six bytes hold the longest code ISO 3166-2 has
// (CC-SSS); ParseRegion reads anything longer as unknown, which takes the
// unknown-region rule (denied by default).
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
// spaces, upper-cases and accepts "CC", "CC-S", "CC-SS", "CC-SSS" (also
// with '_' as separator). Anything else, and the codes CDNs use for
// "unknown", give the zero Region and false. It checks syntax only: that
// the country is assigned is Policy.Resolve's job, and so is mapping an
// alias such as UK. The result does not refer to b.
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

// iso3166 lists the officially assigned ISO 3166-1 alpha-2 codes, and the
// two exceptionally reserved codes geo databases use for parts of the EU
// (IC, EA). User-assigned codes (XK for Kosovo) and transitional ones (UK,
// EL) are not here: a policy lists the ones it accepts (Policy.Resolve).
const iso3166 = "AD AE AF AG AI AL AM AO AQ AR AS AT AU AW AX AZ BA BB BD BE BF BG BH BI BJ BL BM BN BO BQ BR BS BT BV BW BY BZ " +
	"CA CC CD CF CG CH CI CK CL CM CN CO CR CU CV CW CX CY CZ DE DJ DK DM DO DZ EC EE EG EH ER ES ET FI FJ FK FM FO FR " +
	"GA GB GD GE GF GG GH GI GL GM GN GP GQ GR GS GT GU GW GY HK HM HN HR HT HU ID IE IL IM IN IO IQ IR IS IT JE JM JO JP " +
	"KE KG KH KI KM KN KP KR KW KY KZ LA LB LC LI LK LR LS LT LU LV LY MA MC MD ME MF MG MH MK ML MM MN MO MP MQ MR MS MT MU MV MW MX MY MZ " +
	"NA NC NE NF NG NI NL NO NP NR NU NZ OM PA PE PF PG PH PK PL PM PN PR PS PT PW PY QA RE RO RS RU RW " +
	"SA SB SC SD SE SG SH SI SJ SK SL SM SN SO SR SS ST SV SX SY SZ TC TD TF TG TH TJ TK TL TM TN TO TR TT TV TW TZ " +
	"UA UG UM US UY UZ VA VC VE VG VI VN VU WF WS YE YT ZA ZM ZW " +
	// exceptionally reserved codes geo databases use: Canary Islands, Ceuta and Melilla
	"IC EA"

// KnownCountry reports whether r's country is an assigned ISO 3166-1
// alpha-2 code (or one of the exceptionally reserved codes geo databases
// use: IC, EA). Subdivisions are checked for syntax only, by ParseRegion.
func KnownCountry(r Region) bool {
	if r.IsUnknown() {
		return false
	}
	for i := 0; i+1 < len(iso3166); i += 3 {
		if iso3166[i] == r[0] && iso3166[i+1] == r[1] {
			return true
		}
	}
	return false
}

// Resolve returns the region a policy applies to r: an alias the policy
// maps (RegionAliases: UK to GB) replaced, subdivision kept ("UK-ENG" is
// "GB-ENG"), and the zero Region (unknown, consent.unknown_region) for a
// country that is neither assigned in ISO 3166-1 nor one of the policy's
// user-assigned codes (UserAssigned: XK). An unassigned code such as QQ
// or AA is no country, so no country's default may apply to it.
func (p *Policy) Resolve(r Region) Region {
	if r.IsUnknown() {
		return Region{}
	}
	c := r.Country()
	if to, ok := p.RegionAliases[c]; ok {
		r[0], r[1] = to[0], to[1]
		c = r.Country()
	}
	if KnownCountry(c) || p.UserAssigned[c] {
		return r
	}
	return Region{}
}
