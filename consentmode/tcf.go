package consentmode

import (
	"bytes"
	"errors"
)

// ErrMalformedTC is returned for anything that is not a well-formed IAB TCF
// v2 TC string: bad characters, Version other than 2, truncated sections,
// an unknown restriction type, a range whose end is before its start, a
// repeated segment. Callers treat it as a denial of what TCF covers.
var ErrMalformedTC = errors.New("consentmode: malformed tc string")

// TCGoogleVendorID is the Global Vendor List id of Google Advertising
// Products, the vendor whose consent Google's tags read from a TC string.
const TCGoogleVendorID = 755

// TCRestriction is a publisher restriction on one purpose for one vendor.
// The zero value means no restriction. The other values are the TC string's
// RestrictionType plus one.
type TCRestriction uint8

// Publisher restriction types (TCF v2 "PubRestrictionEntry").
const (
	TCRestrictionNone TCRestriction = iota // no restriction applies
	TCNotAllowed                           // RestrictionType 0: the purpose is not allowed for the vendor
	TCRequireConsent                       // RestrictionType 1: only consent counts, not legitimate interest
	TCRequireLI                            // RestrictionType 2: only legitimate interest counts, not consent
)

// String returns a stable snake_case name, such as "require_consent".
func (t TCRestriction) String() string {
	switch t {
	case TCRestrictionNone:
		return "none"
	case TCNotAllowed:
		return "not_allowed"
	case TCRequireConsent:
		return "require_consent"
	case TCRequireLI:
		return "require_li"
	}
	return "invalid"
}

// tcCombine merges two restrictions that a string sets for the same vendor
// and purpose. The TCF spec allows one per vendor and purpose; when a string has
// more, the lowest RestrictionType wins, as in the IAB's reference library
// (@iabtechlabtcf/core PurposeRestrictionVector.getRestrictionType): "not
// allowed" beats "require consent", which beats "require LI".
func tcCombine(old, t TCRestriction) TCRestriction {
	if old == TCRestrictionNone || t < old {
		return t
	}
	return old
}

// TCCore holds the fixed fields of a TC string's core segment. Bitsets use
// bit i (value 1<<i) for item i+1, so purpose 1 is bit 0.
type TCCore struct {
	Version                int     // always 2 in a parsed string
	Created                int64   // deciseconds since the Unix epoch, UTC
	LastUpdated            int64   // deciseconds since the Unix epoch, UTC
	CmpID                  int     // registered CMP id
	CmpVersion             int     // CMP's own version number
	ConsentScreen          int     // CMP-defined screen number
	ConsentLanguage        [2]byte // two upper-case letters, such as "EN"
	VendorListVersion      int     // GVL version the string was made with
	PolicyVersion          int     // TCF policy version: 2, 4 (TCF 2.2), 5 (TCF 2.3) …
	IsServiceSpecific      bool    // false: a global-scope string
	UseNonStandardTexts    bool    // the CMP changed the standard texts (ex-UseNonStandardStacks)
	SpecialFeatureOptIns   uint16  // bit i: the user opted in to special feature i+1
	PurposesConsent        uint32  // bit i: the user consented to purpose i+1
	PurposesLITransparency uint32  // bit i: legitimate interest for purpose i+1 was disclosed and not objected to
	PurposeOneTreatment    bool    // purpose 1 was not disclosed (publisher outside the EU)
	PublisherCC            [2]byte // publisher's country, two upper-case letters
}

// PurposeConsent reports whether purpose p (1..24) has consent.
func (c TCCore) PurposeConsent(p int) bool { return tcBit32(c.PurposesConsent, p) }

// PurposeLI reports whether purpose p (1..24) has legitimate interest
// transparency.
func (c TCCore) PurposeLI(p int) bool { return tcBit32(c.PurposesLITransparency, p) }

// SpecialFeature reports whether the user opted in to special feature i
// (1..12).
func (c TCCore) SpecialFeature(i int) bool {
	return i >= 1 && i <= 12 && c.SpecialFeatureOptIns&(1<<(i-1)) != 0
}

func tcBit32(set uint32, p int) bool { return p >= 1 && p <= 24 && set&(1<<(p-1)) != 0 }

// TCFacts is what ParseTC reads from a TC string about one vendor: the core
// fields plus that vendor's consent, legitimate interest, restrictions and
// disclosure. It is a plain value: no pointers, comparable with ==.
type TCFacts struct {
	TCCore

	// Vendor is the vendor id the facts below are about (ParseTC's vendor).
	Vendor int
	// VendorConsent is true when the string gives Vendor consent.
	VendorConsent bool
	// VendorLI is true when Vendor's legitimate interest is established
	// (disclosed and not objected to).
	VendorLI bool
	// Restriction[p-1] is the publisher restriction on purpose p (1..24)
	// for Vendor; TCRestrictionNone (the zero value) when there is none.
	// When a string (against the TCF spec) sets several for one purpose, the
	// lowest RestrictionType wins, as in the IAB's reference library.
	// Restrictions on purposes 0 and above 24 are ignored here.
	Restriction [24]TCRestriction
	// HasDisclosedVendors is true when the string has a DisclosedVendors
	// segment (mandatory since TCF 2.3).
	HasDisclosedVendors bool
	// VendorDisclosed is true when that segment lists Vendor. Always false
	// without the segment.
	VendorDisclosed bool
	// HasPublisherTC is true when the string has a PublisherTC segment.
	HasPublisherTC bool
}

// ParseTC reads a TCF v2 TC string (the gdpr_consent parameter or the
// euconsent-v2 cookie) and returns its core fields and what it says about
// one vendor, usually TCGoogleVendorID. It costs no allocation.
//
// Segments after the core one are told apart by their 3-bit type:
// DisclosedVendors (1) is read for the vendor; AllowedVendors (2) and
// PublisherTC (3) are checked for length and otherwise skipped; types 4..7
// (not defined yet) are skipped. A second core segment (type 0) or a
// repeated type is malformed.
//
// The placeholders "tcunavailable" and "tcempty" that Google's tags send are
// not TC strings: callers handle them before calling ParseTC, which returns
// ErrMalformedTC for them. Any other malformed input is ErrMalformedTC too.
// The result does not refer to b.
func ParseTC(b []byte, vendor int) (TCFacts, error) {
	var f TCFacts
	if err := tcParse(b, vendor, &f, nil); err != nil {
		return TCFacts{Vendor: vendor}, err
	}
	return f, nil
}

// TCString is a fully decoded TC string, for tests and for explaining a
// decision. DecodeTC allocates it; the gateway's hot path uses ParseTC.
// Vendor id lists are sorted and free of duplicates.
type TCString struct {
	TCCore

	VendorConsents      []int                    // vendors with consent
	VendorConsentsRange bool                     // the string used range encoding for them
	VendorLI            []int                    // vendors with legitimate interest established
	VendorLIRange       bool                     // the string used range encoding for them
	Restrictions        []TCPublisherRestriction // in string order

	HasDisclosedVendors bool  // a DisclosedVendors segment is present
	DisclosedVendors    []int // vendors the CMP disclosed to the user
	HasAllowedVendors   bool  // an AllowedVendors segment is present
	AllowedVendors      []int // vendors the publisher allows (old out-of-band feature)
	HasPublisherTC      bool  // a PublisherTC segment is present
	PublisherTC         TCPublisherTC
}

// TCPublisherRestriction is one publisher restriction entry: purpose,
// type and the vendors it covers (sorted, ranges expanded).
type TCPublisherRestriction struct {
	Purpose int
	Type    TCRestriction // never TCRestrictionNone
	Vendors []int
}

// TCPublisherTC is the PublisherTC segment: the publisher's own purposes.
// Bit i stands for (custom) purpose i+1.
type TCPublisherTC struct {
	PurposesConsent              uint32
	PurposesLITransparency       uint32
	NumCustomPurposes            int // 0..63
	CustomPurposesConsent        uint64
	CustomPurposesLITransparency uint64
}

// DecodeTC decodes every segment of a TC string, expanding vendor ranges
// into lists. It accepts and rejects exactly what ParseTC does. It allocates
// and is meant for tests and the explain command, not the hot path: its
// memory grows with the number of ids the string names (a 53-bit range
// entry can name 65535 vendors), so bound the input's length first.
func DecodeTC(s string) (*TCString, error) {
	var f TCFacts
	t := &TCString{}
	if err := tcParse([]byte(s), 0, &f, t); err != nil {
		return nil, err
	}
	t.TCCore = f.TCCore
	return t, nil
}

// Segment types (the first 3 bits of every segment after the core one).
const (
	tcSegCore             = 0
	tcSegDisclosedVendors = 1
	tcSegAllowedVendors   = 2
	tcSegPublisherTC      = 3
)

// tcParse is ParseTC and DecodeTC in one: it fills f for vendor and, when
// full is not nil, also the lists of full.
func tcParse(b []byte, vendor int, f *TCFacts, full *TCString) error {
	f.Vendor = vendor
	var seen uint8 // bit per segment type already read
	for i := 0; ; i++ {
		seg := b
		next := bytes.IndexByte(b, '.')
		if next >= 0 {
			seg, b = b[:next], b[next+1:]
		}
		r, ok := newBitReader(seg)
		if !ok {
			return ErrMalformedTC
		}
		typ := tcSegCore
		if i > 0 {
			typ = r.readInt(3)
			if typ == tcSegCore || seen&(1<<typ) != 0 {
				return ErrMalformedTC
			}
			seen |= 1 << typ
		}
		var err error
		switch typ {
		case tcSegCore:
			err = tcReadCore(&r, f, full)
		case tcSegDisclosedVendors:
			f.HasDisclosedVendors = true
			var ids *[]int
			if full != nil {
				full.HasDisclosedVendors = true
				ids = &full.DisclosedVendors
			}
			f.VendorDisclosed, _, err = tcReadVendors(&r, vendor, ids)
		case tcSegAllowedVendors:
			var ids *[]int
			if full != nil {
				full.HasAllowedVendors = true
				ids = &full.AllowedVendors
			}
			_, _, err = tcReadVendors(&r, 0, ids)
		case tcSegPublisherTC:
			f.HasPublisherTC = true
			var p TCPublisherTC
			err = tcReadPublisherTC(&r, &p)
			if full != nil {
				full.HasPublisherTC = true
				full.PublisherTC = p
			}
		}
		if err != nil {
			return err
		}
		if next < 0 {
			return nil
		}
	}
}

// tcReadCore reads the core segment into f (and the lists into full).
func tcReadCore(r *bitReader, f *TCFacts, full *TCString) error {
	c := &f.TCCore
	c.Version = r.readInt(6)
	if c.Version != 2 {
		return ErrMalformedTC
	}
	c.Created = int64(r.readUint(36))
	c.LastUpdated = int64(r.readUint(36))
	c.CmpID = r.readInt(12)
	c.CmpVersion = r.readInt(12)
	c.ConsentScreen = r.readInt(6)
	lang, okLang := tcReadLetters(r)
	c.ConsentLanguage = lang
	c.VendorListVersion = r.readInt(12)
	c.PolicyVersion = r.readInt(6)
	c.IsServiceSpecific = r.readBool()
	c.UseNonStandardTexts = r.readBool()
	c.SpecialFeatureOptIns = uint16(tcReadBitset(r, 12))
	c.PurposesConsent = uint32(tcReadBitset(r, 24))
	c.PurposesLITransparency = uint32(tcReadBitset(r, 24))
	c.PurposeOneTreatment = r.readBool()
	cc, okCC := tcReadLetters(r)
	c.PublisherCC = cc
	if r.err != nil || !okLang || !okCC {
		return ErrMalformedTC
	}

	var consents, li *[]int
	if full != nil {
		consents, li = &full.VendorConsents, &full.VendorLI
	}
	var err error
	var consentRange, liRange bool
	if f.VendorConsent, consentRange, err = tcReadVendors(r, f.Vendor, consents); err != nil {
		return err
	}
	if f.VendorLI, liRange, err = tcReadVendors(r, f.Vendor, li); err != nil {
		return err
	}
	if full != nil {
		full.VendorConsentsRange, full.VendorLIRange = consentRange, liRange
	}
	return tcReadRestrictions(r, f, full)
}

// tcReadLetters reads two 6-bit letters (0 = 'A' … 25 = 'Z').
func tcReadLetters(r *bitReader) ([2]byte, bool) {
	a, b := r.readUint(6), r.readUint(6)
	if a > 25 || b > 25 {
		return [2]byte{}, false
	}
	return [2]byte{'A' + byte(a), 'A' + byte(b)}, true
}

// tcReadVendors reads a vendor section: MaxVendorId(16), IsRangeEncoding(1),
// then a bit field of MaxVendorId bits (bit i is vendor i+1) or
// NumEntries(12) range entries. It reports whether vendor is in it and which
// encoding was used. When ids is not nil, every id is appended to it,
// sorted and without duplicates.
func tcReadVendors(r *bitReader, vendor int, ids *[]int) (found, isRange bool, err error) {
	maxID := r.readInt(16)
	isRange = r.readBool()
	if r.err != nil {
		return false, false, ErrMalformedTC
	}
	if !isRange {
		start := r.pos
		r.skip(maxID)
		if r.err != nil {
			return false, false, ErrMalformedTC
		}
		if vendor >= 1 && vendor <= maxID {
			found = r.bitAt(start + vendor - 1)
		}
		if ids != nil {
			for i := range maxID {
				if r.bitAt(start + i) {
					*ids = append(*ids, i+1)
				}
			}
		}
		return found, false, nil
	}
	var set *tcIDSet
	if ids != nil {
		set = new(tcIDSet)
	}
	found, err = tcReadRanges(r, vendor, set)
	if err != nil {
		return false, true, err
	}
	if set != nil {
		*ids = set.appendTo(*ids)
	}
	return found, true, nil
}

// tcReadRanges reads NumEntries(12) range entries — IsARange(1),
// StartOrOnlyVendorId(16), and EndVendorId(16) for a range — and reports
// whether vendor falls in one. When set is not nil, every id is added to it.
// An end before its start is malformed.
func tcReadRanges(r *bitReader, vendor int, set *tcIDSet) (found bool, err error) {
	n := r.readInt(12)
	for range n {
		isARange := r.readBool()
		lo := r.readInt(16)
		hi := lo
		if isARange {
			hi = r.readInt(16)
		}
		if r.err != nil || hi < lo {
			return false, ErrMalformedTC
		}
		if lo <= vendor && vendor <= hi {
			found = true
		}
		if set != nil {
			set.addRange(lo, hi)
		}
	}
	if r.err != nil {
		return false, ErrMalformedTC
	}
	return found, nil
}

// tcReadRestrictions reads NumPubRestrictions(12) entries of PurposeId(6),
// RestrictionType(2) and range entries. RestrictionType 3 is undefined and
// malformed.
func tcReadRestrictions(r *bitReader, f *TCFacts, full *TCString) error {
	var set *tcIDSet // one scratch set for every entry, DecodeTC only
	if full != nil {
		set = new(tcIDSet)
	}
	n := r.readInt(12)
	for range n {
		purpose := r.readInt(6)
		typ := r.readInt(2)
		if r.err != nil || typ == 3 {
			return ErrMalformedTC
		}
		t := TCRestriction(typ + 1)
		if set != nil {
			*set = tcIDSet{}
		}
		hit, err := tcReadRanges(r, f.Vendor, set)
		if err != nil {
			return err
		}
		if hit && purpose >= 1 && purpose <= len(f.Restriction) {
			f.Restriction[purpose-1] = tcCombine(f.Restriction[purpose-1], t)
		}
		if full != nil {
			full.Restrictions = append(full.Restrictions, TCPublisherRestriction{
				Purpose: purpose,
				Type:    t,
				Vendors: set.appendTo(nil),
			})
		}
	}
	if r.err != nil {
		return ErrMalformedTC
	}
	return nil
}

// tcReadPublisherTC reads the PublisherTC segment after its type.
func tcReadPublisherTC(r *bitReader, p *TCPublisherTC) error {
	p.PurposesConsent = uint32(tcReadBitset(r, 24))
	p.PurposesLITransparency = uint32(tcReadBitset(r, 24))
	p.NumCustomPurposes = r.readInt(6)
	p.CustomPurposesConsent = tcReadBitset(r, p.NumCustomPurposes)
	p.CustomPurposesLITransparency = tcReadBitset(r, p.NumCustomPurposes)
	if r.err != nil {
		return ErrMalformedTC
	}
	return nil
}

// tcReadBitset reads an n-bit field whose first bit stands for item 1 and
// returns it with item i+1 in bit i, the layout of every bitset here.
func tcReadBitset(r *bitReader, n int) uint64 {
	return tcReverse(r.readUint(n), n)
}

// tcReverse reverses the low n bits of v.
func tcReverse(v uint64, n int) uint64 {
	var out uint64
	for range n {
		out = out<<1 | v&1
		v >>= 1
	}
	return out
}

// tcIDSet is a set of vendor ids 0..65535, filled by DecodeTC.
type tcIDSet [65536 / 64]uint64

// addRange adds lo..hi (inclusive, 0 <= lo <= hi <= 65535) word by word,
// so a string of 4095 full-width ranges stays cheap.
func (s *tcIDSet) addRange(lo, hi int) {
	for lo <= hi {
		w, b := lo/64, lo%64
		n := min(64-b, hi-lo+1) // bits to set in word w
		mask := ^uint64(0) >> (64 - n) << b
		s[w] |= mask
		lo += n
	}
}

// appendTo appends the ids in the set to dst in ascending order.
func (s *tcIDSet) appendTo(dst []int) []int {
	for w, word := range s {
		for word != 0 {
			b := 0
			for word&(1<<b) == 0 {
				b++
			}
			dst = append(dst, w*64+b)
			word &^= 1 << b
		}
	}
	return dst
}

// GoogleDenials applies Google's published mapping from TCF to Consent Mode
// and reports which consent types the string denies. It never grants: a
// false result means "TCF does not deny this type"; the other signals still
// decide. f must come from ParseTC(b, TCGoogleVendorID); for any other
// vendor Google's own consent is unknown and the three ad types are denied.
//
// Rules (docs/spec.md §1.5, §2.8; Google's "consent mode TCF integration"
// table):
//
//   - Purpose 1 (store/access information on a device) without consent:
//     ad_storage and ad_user_data denied.
//   - Purpose 3 or 4 (personalised ads profile / selection) without
//     consent: ad_personalization denied.
//   - Purpose 7 (measure ad performance) with neither consent nor
//     legitimate interest: ad_user_data denied. Legitimate interest counts
//     only with both the purpose's LI transparency bit and Google's vendor LI
//     bit, because under TCF a vendor relies on LI for a purpose only when
//     both are set.
//   - TCF does not govern analytics_storage (Google: GA cookies follow
//     Consent Mode). With strict, Purpose 1 without consent (as it applies
//     to Google, publisher restrictions included) denies it too; Google's
//     vendor consent does not, since Google Analytics is not a TCF vendor.
//   - Google (vendor 755) without vendor consent: ad_storage, ad_user_data
//     and ad_personalization denied.
//   - TCF 2.3 (the string has a DisclosedVendors segment, or its policy
//     version is 5 or more): vendor 755 not listed as disclosed counts as
//     without consent (docs/spec.md §1.5).
//   - Publisher restrictions for vendor 755 on a purpose, as read here:
//     "not allowed" removes both consent and LI for that purpose (type 0 on
//     purpose 1 acts as purpose 1 not consented); "require consent" means LI
//     no longer counts, so purpose 7 then needs consent; "require LI" means
//     consent no longer counts, so purposes 1, 3 and 4, which Google bases on
//     consent only (TCF 2.2 forbids LI for them), are denied, and purpose 7
//     needs LI. Several restrictions on one purpose resolve to the lowest
//     type, as the IAB library does (see Restriction).
//
// PurposeOneTreatment gets no special meaning: the purpose 1 consent bit
// decides, which is the stricter reading.
func (f TCFacts) GoogleDenials(strict bool) (adStorage, analyticsStorage, adUserData, adPersonalization bool) {
	isGoogle := f.Vendor == TCGoogleVendorID
	var restriction [24]TCRestriction
	if isGoogle {
		restriction = f.Restriction
	}
	consent := func(p int) bool {
		r := restriction[p-1]
		return f.PurposeConsent(p) && r != TCNotAllowed && r != TCRequireLI
	}
	li := func(p int) bool {
		r := restriction[p-1]
		return f.PurposeLI(p) && f.VendorLI && isGoogle && r != TCNotAllowed && r != TCRequireConsent
	}

	p1 := consent(1)
	adStorage = !p1
	adUserData = !p1 || !(consent(7) || li(7))
	adPersonalization = !consent(3) || !consent(4)
	analyticsStorage = strict && !p1

	if !f.GoogleConsent() {
		adStorage, adUserData, adPersonalization = true, true, true
	}
	return adStorage, analyticsStorage, adUserData, adPersonalization
}

// GoogleConsent reports whether the string gives Google (vendor 755)
// consent and, under TCF 2.3 (a DisclosedVendors segment, or policy
// version 5 or more), lists it as disclosed.
func (f TCFacts) GoogleConsent() bool {
	ok := f.Vendor == TCGoogleVendorID && f.VendorConsent
	if f.HasDisclosedVendors || f.PolicyVersion >= 5 {
		ok = ok && f.VendorDisclosed
	}
	return ok
}
