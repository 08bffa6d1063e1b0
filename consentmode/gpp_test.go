package consentmode

import (
	"encoding/json"
	"errors"
	"os"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

// gppVectorFile holds vectors and section layouts made by @iabgpp/cmpapi;
// regenerate with testdata/iab/generate.sh.
const gppVectorFile = "../testdata/iab/gpp-vectors.json"

type gppVectorData struct {
	Layouts []struct {
		ID                              int
		Name                            string
		Version                         int
		GPC                             bool `json:"gpc"`
		SaleOptOutNotice                int
		SharingOptOutNotice             int
		TargetedAdvertisingOptOutNotice int
		SaleOptOut                      int
		SharingOptOut                   int
		TargetedAdvertisingOptOut       int
	}
	Vectors []gppVector
}

// gppVector is one GPP string with its gpp_sid and the library's decoding:
// section name → field name → value.
type gppVector struct {
	Name       string
	GPP        string `json:"gpp"`
	SID        string `json:"sid"`
	SectionIDs []int  `json:"sectionIds"`
	Sections   map[string]map[string]any
}

func gppLoad(t testing.TB) gppVectorData {
	t.Helper()
	data, err := os.ReadFile(gppVectorFile)
	if err != nil {
		t.Fatalf("read vectors (make them with testdata/iab/generate.sh): %v", err)
	}
	var d gppVectorData
	if err := json.Unmarshal(data, &d); err != nil {
		t.Fatalf("parse %s: %v", gppVectorFile, err)
	}
	if len(d.Vectors) < 60 {
		t.Fatalf("%s has %d vectors, want at least 60", gppVectorFile, len(d.Vectors))
	}
	return d
}

func gppVectorNamed(t testing.TB, name string) gppVector {
	t.Helper()
	for _, v := range gppLoad(t).Vectors {
		if v.Name == name {
			return v
		}
	}
	t.Fatalf("no vector %q in %s", name, gppVectorFile)
	return gppVector{}
}

// gppSectionID maps the library's section names to ids.
func gppSectionID(name string) int {
	switch name {
	case "tcfeuv2":
		return GPPTCFEUv2
	case "tcfcav1":
		return GPPTCFCAv1
	case "uspv1":
		return GPPUSPv1
	}
	for i, l := range gppUSLayouts {
		if l.name == name {
			return GPPUSNat + i
		}
	}
	return -1
}

func gppNum(obj map[string]any, field string) int {
	n, _ := obj[field].(float64)
	return int(n)
}

// want computes the GPP that ParseGPP must return from the library's
// decoding, with gpp_sid applied the documented way.
func (v *gppVector) want(t *testing.T) GPP {
	t.Helper()
	g := GPP{Version: 1}
	for _, id := range v.SectionIDs {
		g.Sections |= 1 << id
	}
	switch v.SID {
	case "":
		g.Applicable = g.Sections
	case "-1":
	default:
		for s := range strings.SplitSeq(v.SID, ",") {
			id, err := strconv.Atoi(s)
			if err != nil {
				t.Fatalf("bad sid %q", v.SID)
			}
			if id < 64 {
				g.Applicable |= 1 << id
			}
		}
	}
	parts := strings.Split(v.GPP, "~")
	if len(parts) != len(v.SectionIDs)+1 {
		t.Fatalf("%q has %d sections, library lists %v", v.GPP, len(parts)-1, v.SectionIDs)
	}
	for name, obj := range v.Sections {
		id := gppSectionID(name)
		switch {
		case id == GPPTCFEUv2:
			i := slices.Index(v.SectionIDs, id)
			g.TCFEUStart = len(strings.Join(parts[:i+1], "~")) + 1
			g.TCFEUEnd = g.TCFEUStart + len(parts[i+1])
		case id == GPPUSPv1:
			flag := func(f string) byte { return obj[f].(string)[0] }
			g.USPrivacy = USPrivacy{Version: 1, Notice: flag("Notice"), OptOutSale: flag("OptOutSale"), LSPACovered: flag("LspaCovered")}
			g.Decoded |= 1 << id
		case id >= GPPUSNat && id <= GPPUSMaxID:
			version := gppNum(obj, "Version")
			if _, ok := obj["MspaVersion"]; ok {
				version = gppNum(obj, "MspaVersion")
			}
			s := GPPUSSection{
				Version:                         version,
				SaleOptOutNotice:                uint8(gppNum(obj, "SaleOptOutNotice")),
				SharingOptOutNotice:             uint8(gppNum(obj, "SharingOptOutNotice")),
				TargetedAdvertisingOptOutNotice: uint8(gppNum(obj, "TargetedAdvertisingOptOutNotice")),
				SaleOptOut:                      GPPOptOut(gppNum(obj, "SaleOptOut")),
				SharingOptOut:                   GPPOptOut(gppNum(obj, "SharingOptOut")),
				TargetedAdvertisingOptOut:       GPPOptOut(gppNum(obj, "TargetedAdvertisingOptOut")),
				HasGPC:                          obj["GpcSegmentIncluded"] == true,
			}
			s.GPC = s.HasGPC && obj["Gpc"] == true
			g.US[id] = s
			g.Decoded |= 1 << id
		default:
			t.Fatalf("vector has section %q, which this test does not know", name)
		}
	}
	// OptedOut and GPC, straight from the definition.
	for name, obj := range v.Sections {
		id := gppSectionID(name)
		if !g.Applicable.Has(id) {
			continue
		}
		if id == GPPUSPv1 && obj["OptOutSale"] == "Y" {
			g.OptedOut = true
		}
		if id >= GPPUSNat {
			for _, f := range []string{"SaleOptOut", "SharingOptOut", "TargetedAdvertisingOptOut"} {
				if gppNum(obj, f) == 1 {
					g.OptedOut = true
				}
			}
			g.GPC = g.GPC || g.US[id].GPC
		}
	}
	return g
}

func TestGPPVectors(t *testing.T) {
	t.Parallel()
	for _, v := range gppLoad(t).Vectors {
		t.Run(v.Name, func(t *testing.T) {
			want := v.want(t)
			got, err := ParseGPP([]byte(v.GPP), []byte(v.SID))
			if err != nil {
				t.Fatalf("ParseGPP(%q, %q): %v", v.GPP, v.SID, err)
			}
			if diff := cmp.Diff(want, got); diff != "" {
				t.Errorf("ParseGPP(%q, %q) mismatch (-want +got):\n%s", v.GPP, v.SID, diff)
			}
			if tcf, ok := v.Sections["tcfeuv2"]; ok {
				gppCheckTCF(t, got.TCFEU([]byte(v.GPP)), tcf)
			}
		})
	}
}

// gppCheckTCF compares DecodeTC on a GPP tcfeuv2 section with what the
// GPP library decoded: two IAB encoders, one decoder.
func gppCheckTCF(t *testing.T, tc []byte, lib map[string]any) {
	t.Helper()
	ts, err := DecodeTC(string(tc))
	if err != nil {
		t.Fatalf("DecodeTC(%q): %v", tc, err)
	}
	created, err := time.Parse(time.RFC3339, lib["Created"].(string))
	if err != nil {
		t.Fatal(err)
	}
	var purposes uint32
	for i, b := range lib["PurposeConsents"].([]any) {
		if b == true {
			purposes |= 1 << i
		}
	}
	var vendors []int
	for _, v := range lib["VendorConsents"].([]any) {
		vendors = append(vendors, int(v.(float64)))
	}
	type fields struct {
		Created                                          int64
		CmpID, CmpVersion, VendorListVersion, PolicyVers int
		ServiceSpecific                                  bool
		Language, Country                                string
		Purposes                                         uint32
		Vendors                                          []int
	}
	want := fields{
		created.UnixMilli() / 100, gppNum(lib, "CmpId"), gppNum(lib, "CmpVersion"), gppNum(lib, "VendorListVersion"), gppNum(lib, "PolicyVersion"),
		lib["IsServiceSpecific"] == true, lib["ConsentLanguage"].(string), lib["PublisherCountryCode"].(string), purposes, vendors,
	}
	got := fields{
		ts.Created, ts.CmpID, ts.CmpVersion, ts.VendorListVersion, ts.PolicyVersion,
		ts.IsServiceSpecific, string(ts.ConsentLanguage[:]), string(ts.PublisherCC[:]), ts.PurposesConsent, ts.VendorConsents,
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("DecodeTC(%q) disagrees with the GPP library (-want +got):\n%s", tc, diff)
	}
}

// TestGPPVectorsCoverage checks that the vectors exercise every US section
// with every opt-out value, the GPC subsection both ways, and the mixes.
func TestGPPVectorsCoverage(t *testing.T) {
	t.Parallel()
	type key struct{ id, v int }
	seen := map[key]bool{}
	var gpc, gpcOff, tcfAndUSP, multiUS, notApplicable, sidMissing, noneApplicable bool
	for _, v := range gppLoad(t).Vectors {
		us := 0
		for name, obj := range v.Sections {
			id := gppSectionID(name)
			if id < GPPUSNat {
				continue
			}
			us++
			seen[key{id, gppNum(obj, "SaleOptOut")}] = true
			if obj["GpcSegmentIncluded"] == true {
				gpc = gpc || obj["Gpc"] == true
				gpcOff = gpcOff || obj["Gpc"] == false
			}
		}
		_, hasTCF := v.Sections["tcfeuv2"]
		_, hasUSP := v.Sections["uspv1"]
		tcfAndUSP = tcfAndUSP || hasTCF && hasUSP
		multiUS = multiUS || us > 1
		noneApplicable = noneApplicable || v.SID == "-1"
		for s := range strings.SplitSeq(v.SID, ",") {
			id, _ := strconv.Atoi(s)
			if id > 0 && !slices.Contains(v.SectionIDs, id) {
				sidMissing = true
			}
		}
		for _, id := range v.SectionIDs {
			notApplicable = notApplicable || v.SID != "" && !slices.Contains(strings.Split(v.SID, ","), strconv.Itoa(id))
		}
	}
	for id := GPPUSNat; id <= GPPUSMaxID; id++ {
		for val := range 3 {
			if !seen[key{id, val}] {
				t.Errorf("no vector has section %d with SaleOptOut %d", id, val)
			}
		}
	}
	checks := []struct {
		name string
		ok   bool
	}{
		{"GPC subsection with Gpc true", gpc},
		{"GPC subsection with Gpc false", gpcOff},
		{"tcfeuv2 with uspv1", tcfAndUSP},
		{"several US sections", multiUS},
		{"a section gpp_sid leaves out", notApplicable},
		{"gpp_sid naming a missing section", sidMissing},
		{"gpp_sid -1", noneApplicable},
	}
	for _, c := range checks {
		if !c.ok {
			t.Errorf("vectors lack: %s", c.name)
		}
	}
}

// TestGPPLayoutsMatchLibrary compares gppUSLayouts with the bit offsets the
// library's encoder uses.
func TestGPPLayoutsMatchLibrary(t *testing.T) {
	t.Parallel()
	d := gppLoad(t)
	if len(d.Layouts) != len(gppUSLayouts) {
		t.Errorf("library has %d US sections, consentmode %d", len(d.Layouts), len(gppUSLayouts))
	}
	for _, lib := range d.Layouts {
		i := lib.ID - GPPUSNat
		if i < 0 || i >= len(gppUSLayouts) {
			t.Errorf("library section %d %s is not in gppUSLayouts", lib.ID, lib.Name)
			continue
		}
		want := gppUSLayout{
			name: lib.Name, maxVersion: lib.Version, gpc: lib.GPC,
			saleNotice: lib.SaleOptOutNotice, sharingNotice: lib.SharingOptOutNotice, targetedNotice: lib.TargetedAdvertisingOptOutNotice,
			sale: lib.SaleOptOut, sharing: lib.SharingOptOut, targeted: lib.TargetedAdvertisingOptOut,
		}
		if diff := cmp.Diff(want, gppUSLayouts[i], cmp.AllowUnexported(gppUSLayout{})); diff != "" {
			t.Errorf("section %d layout mismatch (-library +consentmode):\n%s", lib.ID, diff)
		}
	}
}

// gppHeader writes a GPP header listing ids (ascending) one entry each.
func gppHeader(ids ...int) string {
	w := new(bitWriter).add(3, 6).add(1, 6).add(uint64(len(ids)), 12)
	last := 0
	for _, id := range ids {
		w.flag(false).fibonacci(id - last)
		last = id
	}
	return w.String()
}

// gppUSCore writes the core subsection of US section id with the given
// version and opt-outs (every notice 1) and enough trailing zeros.
func gppUSCore(id, version, sale, sharing, targeted int) string {
	l := gppUSLayouts[id-GPPUSNat]
	slots := make([]uint64, 40) // 2-bit fields after the version
	set := func(off, v int) {
		if off >= 0 {
			slots[(off-6)/2] = uint64(v)
		}
	}
	set(l.saleNotice, 1)
	set(l.sharingNotice, 1)
	set(l.targetedNotice, 1)
	set(l.sale, sale)
	set(l.sharing, sharing)
	set(l.targeted, targeted)
	w := new(bitWriter).add(uint64(version), 6)
	for _, v := range slots {
		w.add(v, 2)
	}
	return w.String()
}

// gppGPC writes a GPC subsection.
func gppGPC(on bool) string { return new(bitWriter).add(1, 2).flag(on).String() }

func TestParseGPPSpecHeaders(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		give string
		want GPPSectionSet
	}{
		{name: "DBABM: tcfeuv2", give: "DBABM~" + tcfSpecExample, want: 1 << 2},
		{name: "DBACNY: tcfeuv2 and uspv1", give: "DBACNY~" + tcfSpecExample + "~1YNN", want: 1<<2 | 1<<6},
		{name: "DBABjw: range 5..6", give: "DBABjw~XXXX~1YNN", want: 1<<5 | 1<<6},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			g, err := ParseGPP([]byte(tt.give), nil)
			if err != nil {
				t.Fatalf("ParseGPP(%q): %v", tt.give, err)
			}
			if g.Sections != tt.want || g.Version != 1 {
				t.Errorf("ParseGPP(%q) sections %b version %d, want %b version 1", tt.give, g.Sections, g.Version, tt.want)
			}
		})
	}
}

func TestParseGPPTCFEU(t *testing.T) {
	t.Parallel()
	gpp := []byte("DBACNY~" + tcfSpecExample + "~1YNN")
	g, err := ParseGPP(gpp, []byte("2"))
	if err != nil {
		t.Fatal(err)
	}
	if got := string(g.TCFEU(gpp)); got != tcfSpecExample {
		t.Errorf("TCFEU = %q, want %q", got, tcfSpecExample)
	}
	f, err := ParseTC(gpp[g.TCFEUStart:g.TCFEUEnd], 6)
	if err != nil || !f.VendorConsent {
		t.Errorf("ParseTC on the tcfeuv2 section: %+v, %v", f, err)
	}
	none, _ := ParseGPP([]byte("DBABTA~1YNN"), nil)
	if got := none.TCFEU([]byte("DBABTA~1YNN")); got != nil {
		t.Errorf("TCFEU without a tcfeuv2 section = %q, want nil", got)
	}
}

func TestParseGPPOptedOut(t *testing.T) {
	t.Parallel()
	usnat := func(sale, sharing, targeted int) string { return gppUSCore(7, 2, sale, sharing, targeted) }
	tests := []struct {
		name        string
		gpp         string
		sid         string
		wantOptOut  bool
		wantGPC     bool
		wantApplies GPPSectionSet
	}{
		{name: "usnat sale opted out", gpp: gppHeader(7) + "~" + usnat(1, 2, 2), sid: "7", wantOptOut: true, wantApplies: 1 << 7},
		{name: "usnat sharing opted out", gpp: gppHeader(7) + "~" + usnat(2, 1, 2), sid: "7", wantOptOut: true, wantApplies: 1 << 7},
		{name: "usnat targeted ads opted out", gpp: gppHeader(7) + "~" + usnat(2, 2, 1), sid: "7", wantOptOut: true, wantApplies: 1 << 7},
		{name: "usnat did not opt out", gpp: gppHeader(7) + "~" + usnat(2, 2, 2), sid: "7", wantApplies: 1 << 7},
		{name: "usnat not applicable values", gpp: gppHeader(7) + "~" + usnat(0, 0, 0), sid: "7", wantApplies: 1 << 7},
		{name: "opt-out in a section gpp_sid leaves out", gpp: gppHeader(6, 7) + "~1YNN~" + usnat(1, 1, 1), sid: "6", wantApplies: 1 << 6},
		{name: "empty gpp_sid: all sections apply", gpp: gppHeader(6, 7) + "~1YNN~" + usnat(1, 1, 1), sid: "", wantOptOut: true, wantApplies: 1<<6 | 1<<7},
		{name: "gpp_sid -1: none apply", gpp: gppHeader(7) + "~" + usnat(1, 1, 1), sid: "-1"},
		{name: "uspv1 opted out", gpp: gppHeader(6) + "~1YYN", sid: "6", wantOptOut: true, wantApplies: 1 << 6},
		{name: "uspv1 not applicable", gpp: gppHeader(6) + "~1---", sid: "6", wantApplies: 1 << 6},
		{name: "usca sharing opted out", gpp: gppHeader(8) + "~" + gppUSCore(8, 1, 2, 1, 0), sid: "8", wantOptOut: true, wantApplies: 1 << 8},
		{name: "usva targeted ads opted out", gpp: gppHeader(9) + "~" + gppUSCore(9, 1, 2, 0, 1), sid: "9", wantOptOut: true, wantApplies: 1 << 9},
		{name: "GPC subsection on", gpp: gppHeader(7) + "~" + usnat(2, 2, 2) + "." + gppGPC(true), sid: "7", wantGPC: true, wantApplies: 1 << 7},
		{name: "GPC subsection off", gpp: gppHeader(7) + "~" + usnat(2, 2, 2) + "." + gppGPC(false), sid: "7", wantApplies: 1 << 7},
		{name: "GPC in a section that does not apply", gpp: gppHeader(6, 7) + "~1NNN~" + usnat(2, 2, 2) + "." + gppGPC(true), sid: "6", wantApplies: 1 << 6},
		{name: "unknown subsection type skipped", gpp: gppHeader(7) + "~" + usnat(2, 2, 2) + "." + new(bitWriter).add(2, 2).flag(true).String(), sid: "7", wantApplies: 1 << 7},
		{name: "subsection of a section without GPC skipped", gpp: gppHeader(9) + "~" + gppUSCore(9, 1, 2, 0, 2) + "." + gppGPC(true), sid: "9", wantApplies: 1 << 9},
		{name: "gpp_sid names a missing section", gpp: gppHeader(7) + "~" + usnat(2, 2, 2), sid: "7,8", wantApplies: 1<<7 | 1<<8},
		{name: "unknown section id skipped", gpp: gppHeader(7, 40) + "~" + usnat(1, 2, 2) + "~anything", sid: "7,40", wantOptOut: true, wantApplies: 1<<7 | 1<<40},
		{name: "section id past 63 skipped", gpp: gppHeader(7, 70) + "~" + usnat(1, 2, 2) + "~x", sid: "7,70", wantOptOut: true, wantApplies: 1 << 7},
		{name: "escaped comma in gpp_sid", gpp: gppHeader(6, 7) + "~1YNN~" + usnat(1, 1, 1), sid: "6%2C7", wantOptOut: true, wantApplies: 1<<6 | 1<<7},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			g, err := ParseGPP([]byte(tt.gpp), []byte(tt.sid))
			if err != nil {
				t.Fatalf("ParseGPP(%q, %q): %v", tt.gpp, tt.sid, err)
			}
			type result struct {
				OptedOut, GPC bool
				Applicable    GPPSectionSet
			}
			want := result{tt.wantOptOut, tt.wantGPC, tt.wantApplies}
			if diff := cmp.Diff(want, result{g.OptedOut, g.GPC, g.Applicable}); diff != "" {
				t.Errorf("ParseGPP(%q, %q) mismatch (-want +got):\n%s", tt.gpp, tt.sid, diff)
			}
		})
	}
}

func TestParseGPPMalformed(t *testing.T) {
	t.Parallel()
	usnat := gppUSCore(7, 2, 2, 2, 2)
	valid := gppHeader(7) + "~" + usnat
	if _, err := ParseGPP([]byte(valid), []byte("7")); err != nil {
		t.Fatalf("the base string of this table does not parse: %v", err)
	}
	tests := []struct {
		name string
		gpp  string
		sid  string
	}{
		{name: "empty", gpp: ""},
		{name: "header only", gpp: "DBABM"},
		{name: "empty section", gpp: "DBABM~"},
		{name: "more sections than ids", gpp: "DBABM~a~b"},
		{name: "fewer sections than ids", gpp: "DBACNY~a"},
		{name: "range with too few sections", gpp: "DBABjw~a"},
		{name: "type 2 header", gpp: new(bitWriter).add(2, 6).add(1, 6).add(0, 12).String()},
		{name: "version 2 header", gpp: new(bitWriter).add(3, 6).add(2, 6).add(1, 12).flag(false).fibonacci(7).String() + "~" + usnat},
		{name: "truncated header", gpp: "DBA"},
		{name: "bad header character", gpp: "DB*BM~a"},
		{name: "unterminated Fibonacci id", gpp: new(bitWriter).add(3, 6).add(1, 6).add(1, 12).add(0, 60).String() + "~a"},
		{name: "usnat sale opt-out 3", gpp: gppHeader(7) + "~" + gppUSCore(7, 2, 3, 2, 2)},
		{name: "usnat targeted opt-out 3", gpp: gppHeader(7) + "~" + gppUSCore(7, 2, 2, 2, 3)},
		{name: "usnat version 3", gpp: gppHeader(7) + "~" + gppUSCore(7, 3, 2, 2, 2)},
		{name: "usnat version 0", gpp: gppHeader(7) + "~" + gppUSCore(7, 0, 2, 2, 2)},
		{name: "usca version 2", gpp: gppHeader(8) + "~" + gppUSCore(8, 2, 2, 2, 0)},
		{name: "usnat too short", gpp: gppHeader(7) + "~" + usnat[:3]},
		{name: "usnat bad character", gpp: gppHeader(7) + "~" + usnat[:4] + "!" + usnat[5:]},
		{name: "empty subsection", gpp: valid + "."},
		{name: "bad subsection character", gpp: valid + ".*"},
		{name: "uspv1 malformed", gpp: gppHeader(6) + "~1XNN"},
		{name: "sid letters", gpp: valid, sid: "a"},
		{name: "sid trailing comma", gpp: valid, sid: "7,"},
		{name: "sid leading comma", gpp: valid, sid: ",7"},
		{name: "sid double comma", gpp: valid, sid: "7,,8"},
		{name: "sid zero", gpp: valid, sid: "0"},
		{name: "sid -2", gpp: valid, sid: "-2"},
		{name: "sid -1 in a list", gpp: valid, sid: "7,-1"},
		{name: "sid space", gpp: valid, sid: "7 8"},
		{name: "sid too long", gpp: valid, sid: "123456"},
		{name: "sid cut escape", gpp: valid, sid: "7%2"},
		{name: "sid escape at end", gpp: valid, sid: "7%2C"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			g, err := ParseGPP([]byte(tt.gpp), []byte(tt.sid))
			if !errors.Is(err, ErrMalformedGPP) || g != (GPP{}) {
				t.Errorf("ParseGPP(%q, %q) = %+v, %v; want zero, ErrMalformedGPP", tt.gpp, tt.sid, g, err)
			}
		})
	}
}

func TestGPPSectionSetHas(t *testing.T) {
	t.Parallel()
	s := GPPSectionSet(1<<2 | 1<<63)
	tests := []struct {
		give int
		want bool
	}{{2, true}, {63, true}, {3, false}, {64, false}, {-1, false}, {1000, false}}
	for _, tt := range tests {
		if got := s.Has(tt.give); got != tt.want {
			t.Errorf("Has(%d) = %v, want %v", tt.give, got, tt.want)
		}
	}
}

func BenchmarkParseGPP(b *testing.B) {
	v := gppVectorNamed(b, "typical")
	gpp, sid := []byte(v.GPP), []byte(v.SID)
	b.ReportAllocs()
	b.SetBytes(int64(len(gpp)))
	for b.Loop() {
		if _, err := ParseGPP(gpp, sid); err != nil {
			b.Fatal(err)
		}
	}
}
