package consentmode

import (
	"bytes"
	"errors"
)

// ErrMalformedGPP is returned for a gpp or gpp_sid value that does not
// follow the IAB Global Privacy Platform string format, or whose US
// sections hold values the format does not define. Callers fail closed.
var ErrMalformedGPP = errors.New("consentmode: malformed gpp string")

// GPP section ids that ParseGPP reads (IAB GPP "Section Information").
const (
	GPPTCFEUv2 = 2  // tcfeuv2: a TCF v2 TC string, located but not decoded
	GPPTCFCAv1 = 5  // tcfcav1: TCF Canada, skipped
	GPPUSPv1   = 6  // uspv1: plain US Privacy text such as "1YNN"
	GPPUSNat   = 7  // usnat: US national
	GPPUSMaxID = 27 // highest US state section ParseGPP decodes (usri)
)

// GPPSectionSet is a set of GPP section ids 1..63: bit i is section i.
// Ids of 64 and above are not known sections and never in a set.
type GPPSectionSet uint64

// Has reports whether section id is in the set.
func (s GPPSectionSet) Has(id int) bool { return id >= 0 && id < 64 && s&(1<<id) != 0 }

func (s GPPSectionSet) with(id int) GPPSectionSet {
	if id >= 0 && id < 64 {
		s |= 1 << id
	}
	return s
}

// GPPOptOut is the value of a US section's 2-bit opt-out field.
type GPPOptOut uint8

// Opt-out values. The value 3 is not defined; ParseGPP rejects it.
const (
	GPPNotApplicable GPPOptOut = 0 // the field does not apply (the zero value)
	GPPOptedOut      GPPOptOut = 1 // the user opted out
	GPPDidNotOptOut  GPPOptOut = 2 // the user did not opt out
)

// GPPUSSection holds the opt-out fields of one US section (usnat or a
// state). Fields a section does not have stay zero (not applicable); for
// example usca has no TargetedAdvertisingOptOut and the other states have no
// SharingOptOut. Notice fields use the same coding: 0 not applicable,
// 1 notice given, 2 notice not given.
type GPPUSSection struct {
	Version                         int // section version (usnat: 1 or 2; states: 1)
	SaleOptOutNotice                uint8
	SharingOptOutNotice             uint8
	TargetedAdvertisingOptOutNotice uint8
	SaleOptOut                      GPPOptOut
	SharingOptOut                   GPPOptOut
	TargetedAdvertisingOptOut       GPPOptOut
	HasGPC                          bool // the string carries the GPC subsection
	GPC                             bool // its Gpc bit: the browser sent Global Privacy Control
}

// OptedOut reports whether any opt-out field of the section is 1.
func (s GPPUSSection) OptedOut() bool {
	return s.SaleOptOut == GPPOptedOut || s.SharingOptOut == GPPOptedOut || s.TargetedAdvertisingOptOut == GPPOptedOut
}

// GPP is what ParseGPP reads from a gpp / gpp_sid pair. It is a plain
// value, comparable with ==; it holds byte offsets into the gpp argument,
// not references.
type GPP struct {
	// Version is the header's version (always 1 in a parsed string).
	Version int
	// Sections lists the section ids present, from the header.
	Sections GPPSectionSet
	// Applicable lists the ids gpp_sid names. With an empty gpp_sid it
	// equals Sections: every section present is taken to apply.
	Applicable GPPSectionSet
	// Decoded lists the sections present that ParseGPP decoded: uspv1 (6)
	// and US sections 7..GPPUSMaxID.
	Decoded GPPSectionSet
	// US[id] holds US section id (7..GPPUSMaxID) when Decoded.Has(id).
	// Sections above GPPUSMaxID have no field layout here and are skipped
	// like any unknown section, so an opt-out in a state section the IAB
	// adds later is not seen until its layout is added to gppUSLayouts.
	US [GPPUSMaxID + 1]GPPUSSection
	// USPrivacy is section 6 (uspv1) when Decoded.Has(GPPUSPv1).
	USPrivacy USPrivacy
	// TCFEUStart and TCFEUEnd are the byte offsets of the tcfeuv2 section
	// (a TC string) in the gpp argument; both 0 when it is absent. Decode it
	// with ParseTC(gpp[g.TCFEUStart:g.TCFEUEnd], …) or g.TCFEU(gpp).
	TCFEUStart, TCFEUEnd int
	// OptedOut is true when an applicable, decoded US section has an opt-out
	// field equal to 1, or an applicable uspv1 section says 'Y' for
	// opt-out-of-sale.
	OptedOut bool
	// GPC is true when an applicable US section's GPC subsection says the
	// browser sent Global Privacy Control.
	GPC bool
}

// TCFEU returns the tcfeuv2 section of gpp, the string g was parsed from,
// or nil when there is none. The result aliases gpp.
func (g *GPP) TCFEU(gpp []byte) []byte {
	if g.TCFEUEnd == 0 || g.TCFEUEnd > len(gpp) || g.TCFEUStart > g.TCFEUEnd {
		return nil
	}
	return gpp[g.TCFEUStart:g.TCFEUEnd]
}

// ParseGPP parses a GPP string and its gpp_sid companion. It costs no
// allocation; the result does not refer to gpp or sid.
//
// The string is "Header~Section~Section…". The header (base64url) has
// Type(6) = 3, Version(6) = 1 and the section ids as a Fibonacci range;
// there must be exactly one section per id, in the same (ascending) order.
// Sections 6 (uspv1) and 7..GPPUSMaxID (usnat and the US states) are
// decoded; 2 (tcfeuv2) is only located; other ids are skipped. A US
// section's version must be one the IAB library knows (usnat 1–2, states
// 1), and its 2-bit fields must not be 3. Its optional subsections, after
// '.', are read when they are the GPC subsection (SubsectionType 1, in the
// sections that define one) and otherwise skipped.
//
// sid is the gpp_sid list of applicable section ids: decimal ids separated
// by ',' (or an unescaped "%2C"), or "-1" for none. Ids above 63 are not
// sections ParseGPP knows and are ignored. An empty sid makes every section
// present applicable, the fail-closed reading.
func ParseGPP(gpp, sid []byte) (GPP, error) {
	var g GPP
	if err := gppParse(gpp, sid, &g); err != nil {
		return GPP{}, err
	}
	return g, nil
}

func gppParse(gpp, sid []byte, g *GPP) error {
	applicable, sidGiven, ok := gppParseSID(sid)
	if !ok {
		return ErrMalformedGPP
	}
	header, rest, more := gppCut(gpp, '~')
	r, ok := newBitReader(header)
	if !ok {
		return ErrMalformedGPP
	}
	if r.readInt(6) != 3 {
		return ErrMalformedGPP
	}
	g.Version = r.readInt(6)
	if g.Version != 1 {
		return ErrMalformedGPP
	}
	off := len(header) + 1 // offset of rest in gpp
	n := r.readInt(12)
	last := 0 // last id read; ids only grow
	for range n {
		isRange := r.readBool()
		lo := last + r.fibonacci()
		hi := lo
		if isRange {
			hi = lo + r.fibonacci()
		}
		if r.err != nil {
			return ErrMalformedGPP
		}
		for id := lo; id <= hi; id++ {
			if !more {
				return ErrMalformedGPP // fewer sections than ids
			}
			var sec []byte
			sec, rest, more = gppCut(rest, '~')
			if err := gppSection(g, id, sec, off); err != nil {
				return err
			}
			off += len(sec) + 1
		}
		last = hi
	}
	if r.err != nil || more {
		return ErrMalformedGPP // truncated header, or more sections than ids
	}

	if sidGiven {
		g.Applicable = applicable
	} else {
		g.Applicable = g.Sections
	}
	in := g.Applicable & g.Decoded
	if in.Has(GPPUSPv1) && g.USPrivacy.OptedOut() {
		g.OptedOut = true
	}
	for id := GPPUSNat; id <= GPPUSMaxID; id++ {
		if in.Has(id) {
			g.OptedOut = g.OptedOut || g.US[id].OptedOut()
			g.GPC = g.GPC || g.US[id].GPC
		}
	}
	return nil
}

// gppSection reads section id, found at byte offset off of the gpp string.
func gppSection(g *GPP, id int, sec []byte, off int) error {
	if len(sec) == 0 {
		return ErrMalformedGPP
	}
	g.Sections = g.Sections.with(id)
	switch {
	case id == GPPTCFEUv2:
		g.TCFEUStart, g.TCFEUEnd = off, off+len(sec)
	case id == GPPUSPv1:
		u, err := ParseUSPrivacy(sec)
		if err != nil {
			return ErrMalformedGPP
		}
		g.USPrivacy = u
		g.Decoded = g.Decoded.with(id)
	case id >= GPPUSNat && id <= GPPUSMaxID:
		s, err := gppReadUS(&gppUSLayouts[id-GPPUSNat], sec)
		if err != nil {
			return err
		}
		g.US[id] = s
		g.Decoded = g.Decoded.with(id)
	}
	return nil
}

// gppUSLayout gives the bit offsets of the fields ParseGPP reads in a US
// section's core subsection. Every one is a 2-bit integer; -1 means the
// section has no such field. The version is always the first 6 bits. The
// offsets come from the IAB's @iabgpp/cmpapi field lists and are checked
// against them by TestGPPLayoutsMatchLibrary.
type gppUSLayout struct {
	name           string
	maxVersion     int
	gpc            bool // a '.' subsection of type 1 carries the Gpc bit
	saleNotice     int
	sharingNotice  int
	targetedNotice int
	sale           int
	sharing        int
	targeted       int
}

// gppUSLayouts[id-7] describes US section id. Read-only.
var gppUSLayouts = [GPPUSMaxID - GPPUSNat + 1]gppUSLayout{
	{name: "usnat", maxVersion: 2, gpc: true, saleNotice: 8, sharingNotice: 10, targetedNotice: 12, sale: 18, sharing: 20, targeted: 22},
	{name: "usca", maxVersion: 1, gpc: true, saleNotice: 6, sharingNotice: 8, targetedNotice: -1, sale: 12, sharing: 14, targeted: -1},
	{name: "usva", maxVersion: 1, saleNotice: 8, sharingNotice: -1, targetedNotice: 10, sale: 12, sharing: -1, targeted: 14},
	{name: "usco", maxVersion: 1, gpc: true, saleNotice: 8, sharingNotice: -1, targetedNotice: 10, sale: 12, sharing: -1, targeted: 14},
	{name: "usut", maxVersion: 1, saleNotice: 8, sharingNotice: -1, targetedNotice: 10, sale: 14, sharing: -1, targeted: 16},
	{name: "usct", maxVersion: 1, gpc: true, saleNotice: 8, sharingNotice: -1, targetedNotice: 10, sale: 12, sharing: -1, targeted: 14},
	{name: "usfl", maxVersion: 1, saleNotice: 8, sharingNotice: -1, targetedNotice: 10, sale: 12, sharing: -1, targeted: 14},
	{name: "usmt", maxVersion: 1, gpc: true, saleNotice: 8, sharingNotice: -1, targetedNotice: 10, sale: 12, sharing: -1, targeted: 14},
	{name: "usor", maxVersion: 1, gpc: true, saleNotice: 8, sharingNotice: -1, targetedNotice: 10, sale: 12, sharing: -1, targeted: 14},
	{name: "ustx", maxVersion: 1, gpc: true, saleNotice: 8, sharingNotice: -1, targetedNotice: 10, sale: 12, sharing: -1, targeted: 14},
	{name: "usde", maxVersion: 1, gpc: true, saleNotice: 8, sharingNotice: -1, targetedNotice: 10, sale: 12, sharing: -1, targeted: 14},
	{name: "usia", maxVersion: 1, gpc: true, saleNotice: 8, sharingNotice: -1, targetedNotice: 10, sale: 14, sharing: -1, targeted: 16},
	{name: "usne", maxVersion: 1, gpc: true, saleNotice: 8, sharingNotice: -1, targetedNotice: 10, sale: 12, sharing: -1, targeted: 14},
	{name: "usnh", maxVersion: 1, gpc: true, saleNotice: 8, sharingNotice: -1, targetedNotice: 10, sale: 12, sharing: -1, targeted: 14},
	{name: "usnj", maxVersion: 1, gpc: true, saleNotice: 8, sharingNotice: -1, targetedNotice: 10, sale: 12, sharing: -1, targeted: 14},
	{name: "ustn", maxVersion: 1, gpc: true, saleNotice: 8, sharingNotice: -1, targetedNotice: 10, sale: 12, sharing: -1, targeted: 14},
	{name: "usmn", maxVersion: 1, gpc: true, saleNotice: 8, sharingNotice: -1, targetedNotice: 10, sale: 12, sharing: -1, targeted: 14},
	{name: "usmd", maxVersion: 1, gpc: true, saleNotice: 12, sharingNotice: -1, targetedNotice: 14, sale: 16, sharing: -1, targeted: 18},
	{name: "usin", maxVersion: 1, saleNotice: 12, sharingNotice: -1, targetedNotice: 14, sale: 16, sharing: -1, targeted: 18},
	{name: "usky", maxVersion: 1, saleNotice: 12, sharingNotice: -1, targetedNotice: 14, sale: 16, sharing: -1, targeted: 18},
	{name: "usri", maxVersion: 1, saleNotice: 12, sharingNotice: -1, targetedNotice: 14, sale: 16, sharing: -1, targeted: 18},
}

// gppReadUS decodes a US section: the core subsection, then any '.'
// subsections.
func gppReadUS(l *gppUSLayout, sec []byte) (GPPUSSection, error) {
	var s GPPUSSection
	core, rest, more := gppCut(sec, '.')
	r, ok := newBitReader(core)
	if !ok {
		return s, ErrMalformedGPP
	}
	s.Version = r.readInt(6)
	if s.Version < 1 || s.Version > l.maxVersion {
		return s, ErrMalformedGPP
	}
	var bad bool
	field := func(off int) uint8 {
		if off < 0 {
			return 0
		}
		r.seek(off)
		v := uint8(r.readUint(2))
		bad = bad || v == 3
		return v
	}
	s.SaleOptOutNotice = field(l.saleNotice)
	s.SharingOptOutNotice = field(l.sharingNotice)
	s.TargetedAdvertisingOptOutNotice = field(l.targetedNotice)
	s.SaleOptOut = GPPOptOut(field(l.sale))
	s.SharingOptOut = GPPOptOut(field(l.sharing))
	s.TargetedAdvertisingOptOut = GPPOptOut(field(l.targeted))
	if r.err != nil || bad {
		return s, ErrMalformedGPP
	}
	for more {
		var sub []byte
		sub, rest, more = gppCut(rest, '.')
		sr, ok := newBitReader(sub)
		if !ok {
			return s, ErrMalformedGPP
		}
		if !l.gpc || sr.readInt(2) != 1 {
			continue // not a GPC subsection: skipped
		}
		s.HasGPC = true
		s.GPC = sr.readBool()
		if sr.err != nil {
			return s, ErrMalformedGPP
		}
	}
	return s, nil
}

// gppParseSID parses gpp_sid. given is false for an empty value.
func gppParseSID(sid []byte) (set GPPSectionSet, given, ok bool) {
	if len(sid) == 0 {
		return 0, false, true
	}
	if string(sid) == "-1" {
		return 0, true, true
	}
	for len(sid) > 0 {
		n := 0
		digits := 0
		for digits < len(sid) && '0' <= sid[digits] && sid[digits] <= '9' {
			if digits == 5 {
				return 0, true, false // no section id is that long
			}
			n = n*10 + int(sid[digits]-'0')
			digits++
		}
		if digits == 0 || n == 0 {
			return 0, true, false
		}
		set = set.with(n)
		sid = sid[digits:]
		switch {
		case len(sid) == 0:
		case sid[0] == ',' && len(sid) > 1:
			sid = sid[1:]
		case len(sid) > 3 && sid[0] == '%' && sid[1] == '2' && (sid[2] == 'C' || sid[2] == 'c'):
			sid = sid[3:]
		default:
			return 0, true, false
		}
	}
	return set, true, true
}

// gppCut slices b around the first sep, like bytes.Cut with a byte.
func gppCut(b []byte, sep byte) (before, after []byte, found bool) {
	if i := bytes.IndexByte(b, sep); i >= 0 {
		return b[:i], b[i+1:], true
	}
	return b, nil, false
}
