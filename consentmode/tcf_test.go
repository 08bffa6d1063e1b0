package consentmode

import (
	"encoding/json"
	"errors"
	"os"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
)

// tcfVectorFile holds vectors made by @iabtechlabtcf/core; regenerate with
// testdata/iab/generate.sh.
const tcfVectorFile = "../testdata/iab/tcf-vectors.json"

// tcfSpecExample is the example string of the IAB's "Consent string and
// vendor list formats v2" (docs/spec.md §2.8).
const tcfSpecExample = "COvFyGBOvFyGBAbAAAENAPCAAOAAAAAAAAAAAEEUACCKAAA"

// tcfVector is one entry of tcfVectorFile, as the library decoded it. Id
// lists are runs such as "1-3,7".
type tcfVector struct {
	Name                           string
	TC                             string
	Segments                       []string
	Version                        int
	Created                        int64
	LastUpdated                    int64
	CmpID                          int `json:"cmpId"`
	CmpVersion                     int
	ConsentScreen                  int
	ConsentLanguage                string
	VendorListVersion              int
	PolicyVersion                  int
	IsServiceSpecific              bool
	UseNonStandardTexts            bool
	SpecialFeatureOptins           string
	PurposeConsents                string
	PurposeLegitimateInterests     string
	PurposeOneTreatment            bool
	PublisherCountryCode           string
	VendorConsents                 string
	VendorConsentsRange            bool
	VendorLegitimateInterests      string
	VendorLegitimateInterestsRange bool
	PublisherRestrictions          []struct {
		Purpose int
		Type    int
		Vendors string
	}
	GoogleRestriction                  []*int
	VendorsDisclosed                   string
	VendorsAllowed                     string
	PublisherConsents                  string
	PublisherLegitimateInterests       string
	NumCustomPurposes                  int
	PublisherCustomConsents            string
	PublisherCustomLegitimateInterests string
}

func tcfLoadVectors(t testing.TB) []tcfVector {
	t.Helper()
	data, err := os.ReadFile(tcfVectorFile)
	if err != nil {
		t.Fatalf("read vectors (make them with testdata/iab/generate.sh): %v", err)
	}
	var file struct{ Vectors []tcfVector }
	if err := json.Unmarshal(data, &file); err != nil {
		t.Fatalf("parse %s: %v", tcfVectorFile, err)
	}
	if len(file.Vectors) < 200 {
		t.Fatalf("%s has %d vectors, want at least 200", tcfVectorFile, len(file.Vectors))
	}
	return file.Vectors
}

func tcfVectorNamed(t testing.TB, name string) tcfVector {
	t.Helper()
	for _, v := range tcfLoadVectors(t) {
		if v.Name == name {
			return v
		}
	}
	t.Fatalf("no vector %q in %s", name, tcfVectorFile)
	return tcfVector{}
}

// tcfIDs parses an id list written as runs ("1-3,7").
func tcfIDs(t testing.TB, s string) []int {
	t.Helper()
	var ids []int
	if s == "" {
		return ids
	}
	for part := range strings.SplitSeq(s, ",") {
		lo, hi, isRun := strings.Cut(part, "-")
		a, err := strconv.Atoi(lo)
		if err != nil {
			t.Fatalf("bad id list %q", s)
		}
		b := a
		if isRun {
			if b, err = strconv.Atoi(hi); err != nil {
				t.Fatalf("bad id list %q", s)
			}
		}
		for id := a; id <= b; id++ {
			ids = append(ids, id)
		}
	}
	return ids
}

// tcfBitset turns an id list into a bitset with id i in bit i-1.
func tcfBitset(t testing.TB, s string) uint64 {
	t.Helper()
	var set uint64
	for _, id := range tcfIDs(t, s) {
		set |= 1 << (id - 1)
	}
	return set
}

func tcfLetters(s string) [2]byte { return [2]byte{s[0], s[1]} }

// want returns the TCString the vector says DecodeTC must return.
func (v *tcfVector) want(t testing.TB) *TCString {
	t.Helper()
	ts := &TCString{
		TCCore: TCCore{
			Version:                v.Version,
			Created:                v.Created,
			LastUpdated:            v.LastUpdated,
			CmpID:                  v.CmpID,
			CmpVersion:             v.CmpVersion,
			ConsentScreen:          v.ConsentScreen,
			ConsentLanguage:        tcfLetters(v.ConsentLanguage),
			VendorListVersion:      v.VendorListVersion,
			PolicyVersion:          v.PolicyVersion,
			IsServiceSpecific:      v.IsServiceSpecific,
			UseNonStandardTexts:    v.UseNonStandardTexts,
			SpecialFeatureOptIns:   uint16(tcfBitset(t, v.SpecialFeatureOptins)),
			PurposesConsent:        uint32(tcfBitset(t, v.PurposeConsents)),
			PurposesLITransparency: uint32(tcfBitset(t, v.PurposeLegitimateInterests)),
			PurposeOneTreatment:    v.PurposeOneTreatment,
			PublisherCC:            tcfLetters(v.PublisherCountryCode),
		},
		VendorConsents:      tcfIDs(t, v.VendorConsents),
		VendorConsentsRange: v.VendorConsentsRange,
		VendorLI:            tcfIDs(t, v.VendorLegitimateInterests),
		VendorLIRange:       v.VendorLegitimateInterestsRange,
		HasDisclosedVendors: slices.Contains(v.Segments, "vendorsDisclosed"),
		DisclosedVendors:    tcfIDs(t, v.VendorsDisclosed),
		HasAllowedVendors:   slices.Contains(v.Segments, "vendorsAllowed"),
		AllowedVendors:      tcfIDs(t, v.VendorsAllowed),
		HasPublisherTC:      slices.Contains(v.Segments, "publisherTC"),
	}
	for _, r := range v.PublisherRestrictions {
		ts.Restrictions = append(ts.Restrictions, TCPublisherRestriction{
			Purpose: r.Purpose,
			Type:    TCRestriction(r.Type + 1),
			Vendors: tcfIDs(t, r.Vendors),
		})
	}
	if ts.HasPublisherTC {
		ts.PublisherTC = TCPublisherTC{
			PurposesConsent:              uint32(tcfBitset(t, v.PublisherConsents)),
			PurposesLITransparency:       uint32(tcfBitset(t, v.PublisherLegitimateInterests)),
			NumCustomPurposes:            v.NumCustomPurposes,
			CustomPurposesConsent:        tcfBitset(t, v.PublisherCustomConsents),
			CustomPurposesLITransparency: tcfBitset(t, v.PublisherCustomLegitimateInterests),
		}
	}
	return ts
}

// tcfFactsFrom computes what ParseTC(…, vendor) must return from a full
// decode: the reference for the vector and fuzz tests. DecodeTC's lists are
// sorted.
func tcfFactsFrom(ts *TCString, vendor int) TCFacts {
	has := func(ids []int) bool {
		_, ok := slices.BinarySearch(ids, vendor)
		return ok
	}
	f := TCFacts{
		TCCore:              ts.TCCore,
		Vendor:              vendor,
		VendorConsent:       has(ts.VendorConsents),
		VendorLI:            has(ts.VendorLI),
		HasDisclosedVendors: ts.HasDisclosedVendors,
		VendorDisclosed:     has(ts.DisclosedVendors),
		HasPublisherTC:      ts.HasPublisherTC,
	}
	for _, r := range ts.Restrictions {
		if r.Purpose < 1 || r.Purpose > 24 || !has(r.Vendors) {
			continue
		}
		if old := f.Restriction[r.Purpose-1]; old == TCRestrictionNone || r.Type < old {
			f.Restriction[r.Purpose-1] = r.Type
		}
	}
	return f
}

// tcfDiffOpts compares decodes with the library's: empty and nil lists
// match, and restrictions compare in (purpose, type) order.
var tcfDiffOpts = cmp.Options{
	cmpopts.EquateEmpty(),
	cmpopts.SortSlices(func(a, b TCPublisherRestriction) bool {
		if a.Purpose != b.Purpose {
			return a.Purpose < b.Purpose
		}
		return a.Type < b.Type
	}),
}

// tcfProbes lists vendor ids worth asking ParseTC about for ts: Google,
// the ends of the id space, and the first, middle, last and neighbours of
// every list.
func tcfProbes(ts *TCString) []int {
	probes := []int{TCGoogleVendorID, -1, 0, 1, 2, 65535, 65536}
	lists := [][]int{ts.VendorConsents, ts.VendorLI, ts.DisclosedVendors}
	for _, r := range ts.Restrictions {
		lists = append(lists, r.Vendors)
	}
	for _, l := range lists {
		if len(l) == 0 {
			continue
		}
		first, last := l[0], l[len(l)-1]
		probes = append(probes, first-1, first, l[len(l)/2], last, last+1)
	}
	slices.Sort(probes)
	return slices.Compact(probes)
}

func TestTCVectors(t *testing.T) {
	t.Parallel()
	for _, v := range tcfLoadVectors(t) {
		t.Run(v.Name, func(t *testing.T) {
			want := v.want(t)
			got, err := DecodeTC(v.TC)
			if err != nil {
				t.Fatalf("DecodeTC(%q): %v", v.TC, err)
			}
			if diff := cmp.Diff(want, got, tcfDiffOpts); diff != "" {
				t.Errorf("DecodeTC(%q) mismatch (-want +got):\n%s", v.TC, diff)
			}
			for _, vendor := range tcfProbes(want) {
				f, err := ParseTC([]byte(v.TC), vendor)
				if err != nil {
					t.Fatalf("ParseTC(%q, %d): %v", v.TC, vendor, err)
				}
				if diff := cmp.Diff(tcfFactsFrom(want, vendor), f); diff != "" {
					t.Errorf("ParseTC(%q, %d) mismatch (-want +got):\n%s", v.TC, vendor, diff)
				}
			}
			// The library's own resolution of Google's restrictions.
			f, _ := ParseTC([]byte(v.TC), TCGoogleVendorID)
			for p, lib := range v.GoogleRestriction {
				want := TCRestrictionNone
				if lib != nil {
					want = TCRestriction(*lib + 1)
				}
				if f.Restriction[p] != want {
					t.Errorf("purpose %d restriction for Google = %v, library says %v", p+1, f.Restriction[p], want)
				}
			}
		})
	}
}

// TestTCVectorsCoverage checks that the generated vectors exercise what
// they are meant to, so a change to the generator cannot quietly drop a
// case.
func TestTCVectorsCoverage(t *testing.T) {
	t.Parallel()
	var (
		consent, li                    uint32
		features                       uint16
		types                          [4]bool
		bitfield, ranged               [2]bool
		maxVendor                      int
		ss, global                     bool
		segments                       = map[string]bool{}
		withoutPublisherTC, conflicted bool
		rangeRestriction, policy5      bool
		google                         [2]bool // consented, not
	)
	for _, v := range tcfLoadVectors(t) {
		ts := v.want(t)
		consent |= ts.PurposesConsent
		li |= ts.PurposesLITransparency
		features |= ts.SpecialFeatureOptIns
		bitfield[0] = bitfield[0] || !ts.VendorConsentsRange && len(ts.VendorConsents) > 0
		ranged[0] = ranged[0] || ts.VendorConsentsRange
		bitfield[1] = bitfield[1] || !ts.VendorLIRange && len(ts.VendorLI) > 0
		ranged[1] = ranged[1] || ts.VendorLIRange
		if len(ts.VendorConsents) > 0 {
			maxVendor = max(maxVendor, ts.VendorConsents[len(ts.VendorConsents)-1])
		}
		ss = ss || ts.IsServiceSpecific
		global = global || !ts.IsServiceSpecific
		policy5 = policy5 || ts.PolicyVersion >= 5
		for _, s := range v.Segments {
			segments[s] = true
		}
		withoutPublisherTC = withoutPublisherTC || !ts.HasPublisherTC
		seen := map[int]TCRestriction{}
		for _, r := range ts.Restrictions {
			types[r.Type] = true
			rangeRestriction = rangeRestriction || len(r.Vendors) > 1
			if slices.Contains(r.Vendors, TCGoogleVendorID) {
				if old, ok := seen[r.Purpose]; ok && old != r.Type {
					conflicted = true
				}
				seen[r.Purpose] = r.Type
			}
		}
		c := slices.Contains(ts.VendorConsents, TCGoogleVendorID)
		google[0] = google[0] || c
		google[1] = google[1] || !c
	}
	checks := []struct {
		name string
		ok   bool
	}{
		{"every purpose 1..24 consented somewhere", consent == 1<<24-1},
		{"LI for every purpose 2 and 7..24", li == (1<<24-1)&^0b111101},
		{"every special feature", features == 1<<12-1},
		{"restriction type not allowed", types[TCNotAllowed]},
		{"restriction type require consent", types[TCRequireConsent]},
		{"restriction type require LI", types[TCRequireLI]},
		{"restriction over a vendor range", rangeRestriction},
		{"conflicting restrictions for Google", conflicted},
		{"consents as bit field", bitfield[0]},
		{"consents as ranges", ranged[0]},
		{"LI as bit field", bitfield[1]},
		{"LI as ranges", ranged[1]},
		{"vendor id 65535", maxVendor == 65535},
		{"service-specific strings", ss},
		{"global strings", global},
		{"policy version 5", policy5},
		{"DisclosedVendors segment", segments["vendorsDisclosed"]},
		{"AllowedVendors segment", segments["vendorsAllowed"]},
		{"PublisherTC segment", segments["publisherTC"]},
		{"strings without PublisherTC", withoutPublisherTC},
		{"Google consented", google[0]},
		{"Google not consented", google[1]},
	}
	for _, c := range checks {
		if !c.ok {
			t.Errorf("vectors lack: %s", c.name)
		}
	}
}

func TestParseTCSpecExample(t *testing.T) {
	t.Parallel()
	want := TCFacts{
		TCCore: TCCore{
			Version:           2,
			Created:           15822430593,
			LastUpdated:       15822430593,
			CmpID:             27,
			ConsentLanguage:   [2]byte{'E', 'N'},
			VendorListVersion: 15,
			PolicyVersion:     2,
			PurposesConsent:   0b111, // purposes 1-3
			PublisherCC:       [2]byte{'A', 'A'},
		},
		Vendor:        8,
		VendorConsent: true,
		VendorLI:      true,
	}
	got, err := ParseTC([]byte(tcfSpecExample), 8)
	if err != nil {
		t.Fatalf("ParseTC: %v", err)
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("ParseTC(spec example, 8) mismatch (-want +got):\n%s", diff)
	}

	ts, err := DecodeTC(tcfSpecExample)
	if err != nil {
		t.Fatalf("DecodeTC: %v", err)
	}
	if diff := cmp.Diff([]int{2, 6, 8}, ts.VendorConsents); diff != "" {
		t.Errorf("vendor consents (-want +got):\n%s", diff)
	}
	if ts.VendorConsentsRange {
		t.Errorf("VendorConsentsRange = true, want bit field")
	}
}

func TestParseTCVendorLookup(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		give   int
		wantOK bool
	}{
		{name: "first consented", give: 2, wantOK: true},
		{name: "middle consented", give: 6, wantOK: true},
		{name: "max vendor id", give: 8, wantOK: true},
		{name: "not consented", give: 3},
		{name: "past max vendor id", give: 9},
		{name: "Google", give: TCGoogleVendorID},
		{name: "zero", give: 0},
		{name: "negative", give: -5},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f, err := ParseTC([]byte(tcfSpecExample), tt.give)
			if err != nil {
				t.Fatal(err)
			}
			if f.VendorConsent != tt.wantOK || f.Vendor != tt.give {
				t.Errorf("ParseTC(spec, %d): VendorConsent %v, Vendor %d; want %v, %d", tt.give, f.VendorConsent, f.Vendor, tt.wantOK, tt.give)
			}
		})
	}
}

// tcfCore writes a valid core segment up to and including PublisherCC;
// callers append the vendor sections and restrictions.
func tcfCore() *bitWriter {
	w := new(bitWriter)
	w.add(2, 6).add(15822430593, 36).add(15822430593, 36).add(27, 12).add(1, 12).add(0, 6)
	w.add(4, 6).add(13, 6) // EN
	w.add(15, 12).add(4, 6).flag(false).flag(false).add(0, 12)
	w.add(0b111<<21, 24).add(0, 24).flag(false)
	w.add(0, 6).add(0, 6) // AA
	return w
}

// tcfEmptyVendors appends an empty vendor section (MaxVendorId 0, bit field).
func tcfEmptyVendors(w *bitWriter) *bitWriter { return w.add(0, 16).flag(false) }

func TestParseTCMalformed(t *testing.T) {
	t.Parallel()
	valid := tcfEmptyVendors(tcfEmptyVendors(tcfCore())).add(0, 12).String()
	if _, err := ParseTC([]byte(valid), 1); err != nil {
		t.Fatalf("the base string of this table does not parse: %v", err)
	}
	tests := []struct {
		name string
		give string
	}{
		{name: "empty", give: ""},
		{name: "tcunavailable placeholder", give: "tcunavailable"},
		{name: "tcempty placeholder", give: "tcempty"},
		{name: "TCF v1 string", give: "BOEFEAyOEFEAyAHABDENAI4AAAB9vABAASA"},
		{name: "version 3", give: func() string {
			w := tcfCore()
			w.bits[3], w.bits[4], w.bits[5] = false, true, true // 000011
			return tcfEmptyVendors(tcfEmptyVendors(w)).add(0, 12).String()
		}()},
		{name: "bad character", give: "COvF*GBOvFyGBAbAAAENAPCAAOAAAAAAAAAAAEEUACCKAAA"},
		{name: "space", give: "COvFyGBOvFyGBAbAAAENAPCAAOAAAAAAAAAAAEEUACC AAA"},
		{name: "three pads", give: tcfSpecExample + "==="},
		{name: "trailing dot", give: tcfSpecExample + "."},
		{name: "empty segment", give: tcfSpecExample + "..IAAA"},
		{name: "leading dot", give: "." + tcfSpecExample},
		{name: "second core segment", give: tcfSpecExample + ".AAAA"},
		{name: "repeated DisclosedVendors", give: tcfSpecExample + ".IAAA.IAAA"},
		{name: "truncated DisclosedVendors", give: tcfSpecExample + ".IA"},
		{name: "truncated PublisherTC", give: tcfSpecExample + ".YAAA"},
		{name: "language letter past Z", give: func() string {
			w := tcfCore()
			copy(w.bits[108:114], []bool{true, true, false, true, false, false}) // 52
			return tcfEmptyVendors(tcfEmptyVendors(w)).add(0, 12).String()
		}()},
		{name: "bit field past the end", give: tcfCore().add(2000, 16).flag(false).String()},
		{name: "range end before start", give: tcfEmptyVendors(tcfCore().add(10, 16).flag(true).add(1, 12).flag(true).add(9, 16).add(3, 16)).add(0, 12).String()},
		{name: "range entries missing", give: tcfCore().add(10, 16).flag(true).add(40, 12).String()},
		{name: "restriction type 3", give: tcfEmptyVendors(tcfEmptyVendors(tcfCore())).add(1, 12).add(1, 6).add(3, 2).add(0, 12).String()},
		{name: "restriction range end before start", give: tcfEmptyVendors(tcfEmptyVendors(tcfCore())).add(1, 12).add(1, 6).add(0, 2).add(1, 12).flag(true).add(800, 16).add(700, 16).String()},
		{name: "restrictions missing", give: tcfEmptyVendors(tcfEmptyVendors(tcfCore())).add(5, 12).String()},
		{name: "no vendor sections", give: tcfCore().String()},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := ParseTC([]byte(tt.give), TCGoogleVendorID); !errors.Is(err, ErrMalformedTC) {
				t.Errorf("ParseTC(%q) error = %v, want ErrMalformedTC", tt.give, err)
			}
			if _, err := DecodeTC(tt.give); !errors.Is(err, ErrMalformedTC) {
				t.Errorf("DecodeTC(%q) error = %v, want ErrMalformedTC", tt.give, err)
			}
		})
	}
}

// TestParseTCTruncated cuts the IAB spec example short at every length: each
// prefix that lacks a field must be refused, never read as zeros.
func TestParseTCTruncated(t *testing.T) {
	t.Parallel()
	// The IAB spec example needs 275 bits: 46 characters.
	for n := range 46 {
		if _, err := ParseTC([]byte(tcfSpecExample[:n]), 8); !errors.Is(err, ErrMalformedTC) {
			t.Errorf("ParseTC(%q) error = %v, want ErrMalformedTC", tcfSpecExample[:n], err)
		}
	}
	if _, err := ParseTC([]byte(tcfSpecExample[:46]), 8); err != nil {
		t.Errorf("ParseTC of the 46 characters that hold every field: %v", err)
	}
}

func TestParseTCTolerated(t *testing.T) {
	t.Parallel()
	want, err := ParseTC([]byte(tcfSpecExample), 6)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		give string
	}{
		{name: "one pad", give: tcfSpecExample + "="},
		{name: "two pads", give: tcfSpecExample + "=="},
		{name: "unknown segment type 5 skipped", give: tcfSpecExample + ".oAAA"},
		{name: "unknown segment type 7 skipped", give: tcfSpecExample + ".4"},
		{name: "AllowedVendors skipped", give: tcfSpecExample + ".QAAA"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseTC([]byte(tt.give), 6)
			if err != nil {
				t.Fatalf("ParseTC(%q): %v", tt.give, err)
			}
			if diff := cmp.Diff(want, got); diff != "" {
				t.Errorf("ParseTC(%q) mismatch (-want +got):\n%s", tt.give, diff)
			}
		})
	}
}

// TestParseTCStandardAlphabet rewrites library vectors with '+' and '/'
// for '-' and '_': the result must not change.
func TestParseTCStandardAlphabet(t *testing.T) {
	t.Parallel()
	n := 0
	for _, v := range tcfLoadVectors(t) {
		if !strings.ContainsAny(v.TC, "-_") {
			continue
		}
		n++
		std := strings.NewReplacer("-", "+", "_", "/").Replace(v.TC)
		want, err1 := ParseTC([]byte(v.TC), TCGoogleVendorID)
		got, err2 := ParseTC([]byte(std), TCGoogleVendorID)
		if err1 != nil || err2 != nil || want != got {
			t.Errorf("ParseTC(%q) = %+v, %v; with the URL alphabet %+v, %v", std, got, err2, want, err1)
		}
	}
	if n == 0 {
		t.Fatal("no vector has '-' or '_'")
	}
}

func TestTCRestrictionString(t *testing.T) {
	t.Parallel()
	tests := []struct {
		give TCRestriction
		want string
	}{
		{TCRestrictionNone, "none"},
		{TCNotAllowed, "not_allowed"},
		{TCRequireConsent, "require_consent"},
		{TCRequireLI, "require_li"},
		{TCRestriction(9), "invalid"},
	}
	for _, tt := range tests {
		if got := tt.give.String(); got != tt.want {
			t.Errorf("TCRestriction(%d).String() = %q, want %q", tt.give, got, tt.want)
		}
	}
}

// tcfGoogle returns facts for Google with consent, disclosure under TCF
// 2.2, and consent for the given purposes.
func tcfGoogle(purposes ...int) TCFacts {
	f := TCFacts{Vendor: TCGoogleVendorID, VendorConsent: true}
	f.PolicyVersion = 4
	for _, p := range purposes {
		f.PurposesConsent |= 1 << (p - 1)
	}
	return f
}

func TestGoogleDenials(t *testing.T) {
	t.Parallel()
	type denials struct{ AdStorage, Analytics, AdUserData, AdPersonalization bool }
	all := tcfGoogle(1, 2, 3, 4, 7)
	with := func(f TCFacts, change func(*TCFacts)) TCFacts {
		change(&f)
		return f
	}
	restrict := func(p int, r TCRestriction) func(*TCFacts) {
		return func(f *TCFacts) { f.Restriction[p-1] = r }
	}
	p7LI := func(f *TCFacts) { f.PurposesLITransparency |= 1 << 6; f.VendorLI = true }
	tests := []struct {
		name   string
		give   TCFacts
		strict bool
		want   denials
	}{
		{name: "everything consented", give: all},
		{name: "everything consented, strict", give: all, strict: true},
		{name: "no purpose 1", give: tcfGoogle(3, 4, 7), want: denials{AdStorage: true, AdUserData: true}},
		{name: "no purpose 1, strict", give: tcfGoogle(3, 4, 7), strict: true, want: denials{AdStorage: true, Analytics: true, AdUserData: true}},
		{name: "no purpose 3", give: tcfGoogle(1, 4, 7), want: denials{AdPersonalization: true}},
		{name: "no purpose 4", give: tcfGoogle(1, 3, 7), want: denials{AdPersonalization: true}},
		{name: "no purpose 7", give: tcfGoogle(1, 3, 4), want: denials{AdUserData: true}},
		{name: "purpose 7 by LI", give: with(tcfGoogle(1, 3, 4), p7LI)},
		{name: "purpose 7 LI without Google's vendor LI", give: with(tcfGoogle(1, 3, 4), func(f *TCFacts) { f.PurposesLITransparency |= 1 << 6 }), want: denials{AdUserData: true}},
		{name: "nothing", give: tcfGoogle(), strict: true, want: denials{true, true, true, true}},
		{name: "Google without consent", give: with(all, func(f *TCFacts) { f.VendorConsent = false }), want: denials{AdStorage: true, AdUserData: true, AdPersonalization: true}},
		{name: "Google without consent, strict, purpose 1 consented", give: with(all, func(f *TCFacts) { f.VendorConsent = false }), strict: true, want: denials{AdStorage: true, AdUserData: true, AdPersonalization: true}},
		{name: "facts about another vendor", give: with(all, func(f *TCFacts) { f.Vendor = 1 }), want: denials{AdStorage: true, AdUserData: true, AdPersonalization: true}},
		{name: "another vendor, strict, no purpose 1", give: with(tcfGoogle(3), func(f *TCFacts) { f.Vendor = 1 }), strict: true, want: denials{true, true, true, true}},
		{name: "TCF 2.3 segment, Google disclosed", give: with(all, func(f *TCFacts) { f.HasDisclosedVendors, f.VendorDisclosed = true, true })},
		{name: "TCF 2.3 segment, Google not disclosed", give: with(all, func(f *TCFacts) { f.HasDisclosedVendors = true }), want: denials{AdStorage: true, AdUserData: true, AdPersonalization: true}},
		{name: "policy 5 without the segment", give: with(all, func(f *TCFacts) { f.PolicyVersion = 5 }), want: denials{AdStorage: true, AdUserData: true, AdPersonalization: true}},
		{name: "policy 5, Google disclosed", give: with(all, func(f *TCFacts) { f.PolicyVersion, f.HasDisclosedVendors, f.VendorDisclosed = 5, true, true })},
		{name: "purpose 1 not allowed", give: with(all, restrict(1, TCNotAllowed)), want: denials{AdStorage: true, AdUserData: true}},
		{name: "purpose 1 not allowed, strict", give: with(all, restrict(1, TCNotAllowed)), strict: true, want: denials{AdStorage: true, Analytics: true, AdUserData: true}},
		{name: "purpose 1 requires LI", give: with(all, restrict(1, TCRequireLI)), want: denials{AdStorage: true, AdUserData: true}},
		{name: "purpose 1 requires consent", give: with(all, restrict(1, TCRequireConsent))},
		{name: "purpose 3 not allowed", give: with(all, restrict(3, TCNotAllowed)), want: denials{AdPersonalization: true}},
		{name: "purpose 4 requires LI", give: with(all, restrict(4, TCRequireLI)), want: denials{AdPersonalization: true}},
		{name: "purpose 7 not allowed, consent and LI", give: with(with(all, p7LI), restrict(7, TCNotAllowed)), want: denials{AdUserData: true}},
		{name: "purpose 7 requires consent, LI only", give: with(with(tcfGoogle(1, 3, 4), p7LI), restrict(7, TCRequireConsent)), want: denials{AdUserData: true}},
		{name: "purpose 7 requires consent, consent given", give: with(all, restrict(7, TCRequireConsent))},
		{name: "purpose 7 requires LI, consent only", give: with(all, restrict(7, TCRequireLI)), want: denials{AdUserData: true}},
		{name: "purpose 7 requires LI, LI given", give: with(with(tcfGoogle(1, 3, 4), p7LI), restrict(7, TCRequireLI))},
		{name: "restriction on a purpose Google's mapping ignores", give: with(all, restrict(2, TCNotAllowed))},
		{name: "restrictions ignored for another vendor", give: with(tcfGoogle(1, 3, 4, 7), func(f *TCFacts) { f.Vendor = 3; f.Restriction[0] = TCNotAllowed }), strict: true, want: denials{AdStorage: true, AdUserData: true, AdPersonalization: true}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var got denials
			got.AdStorage, got.Analytics, got.AdUserData, got.AdPersonalization = tt.give.GoogleDenials(tt.strict)
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("GoogleDenials(%v) mismatch (-want +got):\n%s", tt.strict, diff)
			}
		})
	}
}

// TestGoogleDenialsTypical runs the whole path on the real-world-sized
// vector: Google consented and disclosed, purposes 1-11, a "require
// consent" restriction on purpose 7 that consent satisfies.
func TestGoogleDenialsTypical(t *testing.T) {
	t.Parallel()
	v := tcfVectorNamed(t, "typical")
	f, err := ParseTC([]byte(v.TC), TCGoogleVendorID)
	if err != nil {
		t.Fatal(err)
	}
	if f.Restriction[6] != TCRequireConsent {
		t.Fatalf("purpose 7 restriction = %v, want require_consent", f.Restriction[6])
	}
	a, b, c, d := f.GoogleDenials(true)
	if a || b || c || d {
		t.Errorf("GoogleDenials(true) = %v %v %v %v, want nothing denied", a, b, c, d)
	}
}

func BenchmarkParseTC(b *testing.B) {
	tc := []byte(tcfVectorNamed(b, "typical").TC)
	b.ReportAllocs()
	b.SetBytes(int64(len(tc)))
	for b.Loop() {
		f, err := ParseTC(tc, TCGoogleVendorID)
		if err != nil || !f.VendorConsent {
			b.Fatal(err)
		}
	}
}

func BenchmarkDecodeTC(b *testing.B) {
	tc := tcfVectorNamed(b, "typical").TC
	b.ReportAllocs()
	for b.Loop() {
		if _, err := DecodeTC(tc); err != nil {
			b.Fatal(err)
		}
	}
}
