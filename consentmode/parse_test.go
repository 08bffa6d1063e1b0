package consentmode

import (
	"bytes"
	"errors"
	"os/exec"
	"strings"
	"testing"
)

func TestParseGCS(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		give   string
		wantAd Value
		wantAn Value
		bad    bool
	}{
		{"all denied", "G100", Denied, Denied, false},
		{"analytics only", "G101", Denied, Granted, false},
		{"ads only", "G110", Granted, Denied, false},
		{"all granted", "G111", Granted, Granted, false},
		{"no state", "G1--", Unset, Unset, false},
		{"mixed dash", "G1-0", Unset, Denied, false},
		{"empty", "", Unset, Unset, true},
		{"short", "G11", Unset, Unset, true},
		{"long", "G1111", Unset, Unset, true},
		{"bad prefix", "G211", Unset, Unset, true},
		{"lower g", "g111", Unset, Unset, true},
		{"bad char", "G1x1", Unset, Unset, true},
		{"escaped", "G1%31", Unset, Unset, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ad, an, err := ParseGCS([]byte(tt.give))
			if (err != nil) != tt.bad || ad != tt.wantAd || an != tt.wantAn {
				t.Errorf("ParseGCS(%q) = %v, %v, %v; want %v, %v, bad=%v", tt.give, ad, an, err, tt.wantAd, tt.wantAn, tt.bad)
			}
		})
	}
}

// TestGCDLetterTable pins the letter table and the bit rule of
// docs/spec.md §2.2 (decoding letters never seen in tables).
func TestGCDLetterTable(t *testing.T) {
	t.Parallel()
	tests := []struct {
		give byte
		want Value
		ok   bool
	}{
		{'l', Unset, true}, {'m', Denied, true}, {'n', Granted, true},
		{'p', Denied, true}, {'q', Denied, true}, {'r', Granted, true},
		{'t', Granted, true}, {'u', Denied, true}, {'v', Granted, true},
		{'o', Denied, false}, {'s', Denied, false}, // update bits 00: invalid
		{'e', Denied, true}, // granted default, denied update, no flag bit
		// Uppercase letters carry flag bit 5; only the low four bits count:
		// R = 110101 (not set/not set), L = 101111 (granted/granted),
		// P = 110011 (default bits 00: invalid), V = 111001 (denied/none).
		{'R', Unset, true}, {'L', Granted, true}, {'P', Denied, false}, {'V', Denied, true},
		{'!', Denied, false}, {'0', Denied, false}, {'k', Denied, false},
	}
	for _, tt := range tests {
		got, ok := gcdLetterValue(tt.give)
		if got != tt.want || ok != tt.ok {
			t.Errorf("gcdLetterValue(%q) = %v, %v; want %v, %v", tt.give, got, ok, tt.want, tt.ok)
		}
	}
}

func TestParseGCD(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		give string
		want [NumTypes]Value
		bad  [NumTypes]bool
		err  bool
	}{
		{"current all denied default", "13p3p3p2p5l1", [4]Value{Denied, Denied, Denied, Denied}, [4]bool{}, false},
		{"refused", "13q3q3q2q5l1", [4]Value{Denied, Denied, Denied, Denied}, [4]bool{}, false},
		{"accepted", "13r3r3r2r5l1", [4]Value{Granted, Granted, Granted, Granted}, [4]bool{}, false},
		{"no consent mode", "13l3l3l3l1l1", [4]Value{}, [4]bool{}, false},
		{"old generation", "11p1p1p1p5", [4]Value{Denied, Denied, Denied, Denied}, [4]bool{}, false},
		{"analytics granted by default", "13p3t3p3p5l1", [4]Value{Denied, Granted, Denied, Denied}, [4]bool{}, false},
		{"defaults with personalization denied", "11t1t1t1p5", [4]Value{Granted, Granted, Granted, Denied}, [4]bool{}, false},
		{"uppercase in ad_user_data", "13l3l3R3l5l1", [4]Value{}, [4]bool{}, false},
		{"uppercase in first-char slot", "13p3pPp2p5l1", [4]Value{Denied, Denied, Denied, Denied}, [4]bool{}, false},
		{"one bad letter", "13p3!3p2p5l1", [4]Value{Denied, Denied, Denied, Denied}, [4]bool{false, true, false, false}, true},
		{"invalid pair o", "13o3v3v2v5l1", [4]Value{Denied, Granted, Granted, Granted}, [4]bool{true, false, false, false}, true},
		{"short", "13p3p3p", [4]Value{Denied, Denied, Denied, Denied}, [4]bool{true, true, true, true}, true},
		{"bad version", "x3v3v3v2v5l1", [4]Value{Denied, Denied, Denied, Denied}, [4]bool{true, true, true, true}, true},
		{"empty", "", [4]Value{Denied, Denied, Denied, Denied}, [4]bool{true, true, true, true}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			g, err := ParseGCD([]byte(tt.give))
			if g.Value != tt.want || g.Bad != tt.bad || (err != nil) != tt.err {
				t.Errorf("ParseGCD(%q) = %v %v %v; want %v %v err=%v", tt.give, g.Value, g.Bad, err, tt.want, tt.bad, tt.err)
			}
		})
	}
}

// TestGCDDenyLetter pins the gcd row of the write-back table (docs/spec.md
// §3): the update half of a letter the gateway denies becomes denied.
func TestGCDDenyLetter(t *testing.T) {
	t.Parallel()
	tests := []struct{ give, want byte }{
		{'t', 'u'}, {'v', 'u'}, {'r', 'q'}, {'n', 'm'}, {'l', 'm'},
		{'p', 'p'}, {'q', 'q'}, {'u', 'u'}, {'m', 'm'}, // already denied: unchanged
		{'R', 'S'}, {'L', 'K'}, {'V', 'V'}, // flag bits kept; V is already denied
		{'!', 'm'}, {'o', 'm'}, // undecodable: not set, denied
	}
	for _, tt := range tests {
		if got := gcdDenyLetter(tt.give); got != tt.want {
			t.Errorf("gcdDenyLetter(%q) = %q, want %q", tt.give, got, tt.want)
		}
		if v, _ := gcdLetterValue(gcdDenyLetter(tt.give)); v != Denied {
			t.Errorf("gcdDenyLetter(%q) = %q does not decode as denied", tt.give, gcdDenyLetter(tt.give))
		}
	}
}

func TestAppendGCDDenied(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		give string
		deny [NumTypes]bool
		want string
	}{
		{"all", "13r3r3r2r5l1", [4]bool{true, true, true, true}, "13q3q3q2q5l1"},
		{"analytics only", "13v3v3v2v5l1", [4]bool{false, true, false, false}, "13v3u3v2v5l1"},
		{"index 9 stays", "11n1n1n1n5", [4]bool{true, true, true, true}, "11m1m1m1m5"},
		{"nothing", "13v3v3v2v5l1", [4]bool{}, "13v3v3v2v5l1"},
		{"short replaced", "13v3", [4]bool{true, true, true, true}, "13m3m3m2m5l1"},
	}
	for _, tt := range tests {
		if got := string(appendGCDDenied(nil, []byte(tt.give), tt.deny)); got != tt.want {
			t.Errorf("%s: appendGCDDenied(%q, %v) = %q, want %q", tt.name, tt.give, tt.deny, got, tt.want)
		}
	}
}

func TestParseRegion(t *testing.T) {
	t.Parallel()
	tests := []struct {
		give, want string
		ok         bool
	}{
		{"DE", "DE", true}, {"de", "DE", true}, {" us-ca ", "US-CA", true}, {"US_CA", "US-CA", true},
		{"UK", "UK", true}, {"GB-ENG", "GB-ENG", true}, {"FR-971", "FR-971", true},
		{"XX", "unknown", false}, {"T1", "unknown", false}, {"A1", "unknown", false}, {"EU", "unknown", false},
		{"", "unknown", false}, {"D", "unknown", false}, {"DEU", "unknown", false}, {"1A", "unknown", false},
		{"US-", "unknown", false}, {"US-ABCD", "unknown", false}, {"US:CA", "unknown", false},
	}
	for _, tt := range tests {
		r, ok := ParseRegion([]byte(tt.give))
		if r.String() != tt.want || ok != tt.ok {
			t.Errorf("ParseRegion(%q) = %s, %v; want %s, %v", tt.give, r, ok, tt.want, tt.ok)
		}
	}
}

// TestResolveRegion: a code ISO 3166-1 does not assign is an unknown
// region unless the policy lists it; aliases are mapped only when listed.
func TestResolveRegion(t *testing.T) {
	t.Parallel()
	listed := testPolicy()
	listed.UserAssigned = map[Region]bool{MustRegion("XK"): true}
	listed.RegionAliases = map[Region]Region{MustRegion("UK"): MustRegion("GB"), MustRegion("EL"): MustRegion("GR")}
	tests := []struct {
		name, give     string
		bare, withList string
	}{
		{"assigned", "DE", "DE", "DE"},
		{"assigned subdivision", "US-CA", "US-CA", "US-CA"},
		{"unassigned", "QQ", "unknown", "unknown"},
		{"unassigned AA", "AA", "unknown", "unknown"},
		{"unassigned with subdivision", "QQ-CA", "unknown", "unknown"},
		{"user-assigned", "XK", "unknown", "XK"},
		{"alias UK", "UK", "unknown", "GB"},
		{"alias with subdivision", "UK-ENG", "unknown", "GB-ENG"},
		{"alias EL", "EL", "unknown", "GR"},
		{"exceptionally reserved", "IC", "IC", "IC"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := MustRegion(tt.give)
			if got := testPolicy().Resolve(r).String(); got != tt.bare {
				t.Errorf("Resolve(%s) = %s, want %s", tt.give, got, tt.bare)
			}
			if got := listed.Resolve(r).String(); got != tt.withList {
				t.Errorf("Resolve(%s) with aliases = %s, want %s", tt.give, got, tt.withList)
			}
		})
	}
}

func TestNextEmail(t *testing.T) {
	t.Parallel()
	tests := []struct{ give, want string }{
		{"john.doe@example.com", "[redacted]"},
		{"mail me: a+b@x.co.uk.", "mail me: [redacted]."},
		{"two a@b.de and c@d.fr", "two [redacted] and [redacted]"},
		{"no at sign", "no at sign"},
		{"handle @someone", "handle @someone"},
		{"user@localhost", "user@localhost"},
		{"x@y.c", "x@y.c"},
		{"v1.2@3.4", "v1.2@3.4"},
	}
	for _, tt := range tests {
		got, _ := appendRedactEmails(nil, []byte(tt.give))
		if string(got) != tt.want {
			t.Errorf("appendRedactEmails(%q) = %q, want %q", tt.give, got, tt.want)
		}
	}
}

func TestHoldsEmail(t *testing.T) {
	t.Parallel()
	tests := []struct {
		give string
		want bool
	}{
		{"a@b.com", true}, {"a%40b.com", true}, {"a%2540b.com", true}, {"a%252540b.com", true},
		{"https%3A%2F%2Fx.com%2F%3Fe%3Da%2540b.com", true},
		{"nothing%20here", false}, {"a%40b", false}, {"", false},
	}
	for _, tt := range tests {
		var scratch []byte
		if got := holdsEmail([]byte(tt.give), &scratch); got != tt.want {
			t.Errorf("holdsEmail(%q) = %v, want %v", tt.give, got, tt.want)
		}
	}
}

// TestPure keeps consentmode free of I/O libraries (docs/contributing.md):
// every package it depends on, directly or not, is in the standard
// library. It fails, never skips, when go list cannot run, and it checks
// that the listing names consentmode itself, so an empty answer cannot
// pass for a clean one.
func TestPure(t *testing.T) {
	t.Parallel()
	const self = "github.com/consentgate/consentgate/consentmode"
	out, err := exec.Command("go", "list", "-deps", "-f", "{{if not .Standard}}{{.ImportPath}}{{end}}", ".").Output()
	if err != nil {
		var stderr []byte
		if ee, ok := errors.AsType[*exec.ExitError](err); ok {
			stderr = ee.Stderr
		}
		t.Fatalf("go list -deps: %v\n%s", err, stderr)
	}
	listedSelf := false
	for _, dep := range strings.Fields(string(out)) {
		if dep == self {
			listedSelf = true
			continue
		}
		t.Errorf("consentmode depends on %s, which is not in the standard library", dep)
	}
	if !listedSelf {
		t.Fatalf("go list -deps did not list %s; got %q", self, out)
	}
}

func TestCatalogueFits(t *testing.T) {
	t.Parallel()
	if n := len(catalogue.names); n > 256 {
		t.Fatalf("field catalogue has %d entries; FieldSet holds 256", n)
	}
	if n := len(reasonNames); n > 64 {
		t.Fatalf("%d reasons; ReasonSet holds 64", n)
	}
}

func TestParseFlag(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		give string
		want bool
		bad  bool
	}{{"1", true, false}, {"0", false, false}, {"", false, true}, {"2", false, true}, {"10", false, true}} {
		got, err := ParseFlag([]byte(tt.give))
		if got != tt.want || (err != nil) != tt.bad {
			t.Errorf("ParseFlag(%q) = %v, %v", tt.give, got, err)
		}
	}
	in := ga4("v=2&tid=G-1&dma=1&gcu=1&gcs=G111")
	in.Region = MustRegion("US")
	if d, _ := decide(in, testPolicy()); !d.DMA || !d.ConsentUpdate {
		t.Errorf("dma/gcu not read: %+v", d)
	}
}

func TestKnownCountry(t *testing.T) {
	t.Parallel()
	for _, c := range DefaultDeniedRegions {
		if !KnownCountry(MustRegion(c)) {
			t.Errorf("KnownCountry(%s) = false", c)
		}
	}
	for _, c := range []string{"US-CA", "GB-ENG", "IC"} {
		if !KnownCountry(MustRegion(c)) {
			t.Errorf("KnownCountry(%s) = false", c)
		}
	}
	for _, c := range []string{"QQ", "QQ-CA", "", "AA", "XK", "UK", "EL"} {
		if KnownCountry(MustRegion(c)) {
			t.Errorf("KnownCountry(%s) = true", c)
		}
	}
}

// TestAdjacentEmails is a fuzz find: a second address sharing the first
// one's domain characters must not reach back into the first match.
func TestAdjacentEmails(t *testing.T) {
	t.Parallel()
	got, _ := appendRedactEmails(nil, []byte("0@0.AA@0.AA"))
	if string(got) != "[redacted]@0.AA" && string(got) != "[redacted][redacted]" {
		t.Errorf("appendRedactEmails = %q", got)
	}
}

// TestLongQuotedLocalPart: a quoted local part whose opening quote lies
// beyond maxQuotedLocal is still an address (fail closed), redacted from
// the bound on.
func TestLongQuotedLocalPart(t *testing.T) {
	t.Parallel()
	local := `"john doe` + strings.Repeat(" x", maxQuotedLocal) + `"`
	v := []byte("a=" + local + "@example.com&b=1")
	var scratch []byte
	if !holdsEmail(v, &scratch) {
		t.Fatalf("holdsEmail(%q) = false, want true", v)
	}
	got, found := appendRedactEmails(nil, v)
	if !found || bytes.Contains(got, []byte("@example.com")) || !bytes.HasSuffix(got, []byte(redactedText+"&b=1")) {
		t.Errorf("appendRedactEmails(%q) = %q, %v", v, got, found)
	}
	if short := []byte(`"john doe"@example.com`); !holdsEmail(short, &scratch) {
		t.Errorf("holdsEmail(%q) = false, want true", short)
	}
}

// TestMayHoldAtIsSound: whenever decoding up to four times yields an '@',
// mayHoldAt said so on the raw value.
func TestMayHoldAtIsSound(t *testing.T) {
	t.Parallel()
	for _, s := range []string{"a%40b", "a%2540b", "a%25%34%30b", "a%%34%30b", "a%4%30b", "a%%340b", "a%25%2540b", "x%252540y"} {
		if !mayHoldAt([]byte(s)) {
			t.Errorf("mayHoldAt(%q) = false", s)
		}
	}
}
