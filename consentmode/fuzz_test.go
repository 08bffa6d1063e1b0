package consentmode

import (
	"encoding/json"
	"strings"
	"testing"
)

func FuzzParseGCS(f *testing.F) {
	for _, s := range []string{"G100", "G111", "G1--", "G1-0", "G", "", "G1x1", "G11111"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		ad, an, err := ParseGCS([]byte(s))
		if err != nil {
			return
		}
		if got := string(AppendGCS(nil, ad, an)); got != s {
			t.Errorf("ParseGCS(%q) then AppendGCS = %q", s, got)
		}
	})
}

func FuzzParseGCD(f *testing.F) {
	for _, s := range []string{"13p3p3p2p5l1", "11p1p1p1p5", "13l3l3R3l5l1", "13p3pPp2p5l1", "13r", "", "1_-_-_-_-"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		g, err := ParseGCD([]byte(s))
		var none [NumTypes]bool
		out := appendGCDDenied(nil, []byte(s), none)
		if err == nil && string(out) != s {
			t.Errorf("appendGCDDenied(%q, none) = %q, want it unchanged", s, out)
		}
		all := [NumTypes]bool{true, true, true, true}
		denied, err2 := ParseGCD(appendGCDDenied(nil, []byte(s), all))
		if err2 != nil && err == nil {
			t.Errorf("denying %q made it malformed", s)
		}
		for typ := range denied.Value {
			if denied.Value[typ] != Denied {
				t.Errorf("after denying all of %q, %v is %v", s, Type(typ), denied.Value[typ])
			}
		}
		for typ := range g.Value {
			if g.Bad[typ] && g.Value[typ] != Denied {
				t.Errorf("ParseGCD(%q): bad letter for %v is not denied", s, Type(typ))
			}
		}
	})
}

func FuzzParseRegion(f *testing.F) {
	for _, s := range []string{"DE", "us-ca", "UK", "XX", "GB-ENG", " fr ", "T1"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		r, ok := ParseRegion([]byte(s))
		if !ok {
			if !r.IsUnknown() {
				t.Errorf("ParseRegion(%q) failed but returned %v", s, r)
			}
			return
		}
		again, ok2 := ParseRegion([]byte(r.String()))
		if !ok2 || again != r {
			t.Errorf("ParseRegion(%q) = %v does not round-trip", s, r)
		}
	})
}

// FuzzJSON checks the MP JSON validator against encoding/json.
func FuzzJSON(f *testing.F) {
	for _, s := range []string{`{}`, `{"a":[1,2.5e3,-0,true,null,"x\u0041"]}`, `{"a":}`, `[`, `"\ud800"`, `01`, `{"consent":{"ad_user_data":"DENIED"}}`} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		if got, want := jsonValid([]byte(s)), json.Valid([]byte(s)); got != want && !(want && strings.Count(s, "[")+strings.Count(s, "{") > maxJSONDepth) {
			t.Errorf("jsonValid(%q) = %v, encoding/json says %v", s, got, want)
		}
	})
}

// FuzzDecide feeds arbitrary hits of every family through Decide and
// checks the privacy invariants on what would leave.
func FuzzDecide(f *testing.F) {
	f.Add(uint8(1), "v=2&tid=G-1&gcs=G100&cid=1.2&uid=x&up.a=b&dl=https%3A%2F%2Fa%2F%3F_gl%3D1", "", "_ga=1; x=y", "DE", false)
	f.Add(uint8(1), "v=2&tid=G-1&gcs=G111&gcd=13r3r3r2r5l1&ep.x=a%40b.com", "en=a&uid=2\r\nen=b", "", "US", true)
	f.Add(uint8(2), "gcs=G100&auid=1&gclaw=2&em=tv.1~em.x&url=https%3A%2F%2Fa%2F%3Fgclid%3D1", "", "_gcl_au=1", "FR", false)
	f.Add(uint8(3), "", "", "", "", false)
	f.Add(uint8(5), "measurement_id=G-1", `{"client_id":"1","user_id":"u","consent":{"ad_user_data":"DENIED"},"user_data":{"e":"a@b.co"}}`, "", "US", false)
	f.Fuzz(func(t *testing.T, fam uint8, query, body, cookie, region string, gpc bool) {
		family := Family(fam%uint8(numFamilies-1)) + 1
		in := &Input{Family: family, Query: []byte(query), Body: []byte(body), Cookie: []byte(cookie), Region: MustRegion(region), GPC: gpc, Day: 20000}
		if family == FamilyFloodlight {
			in.Matrix, in.Query = in.Query, nil
		}
		p := testPolicy()
		p.MPEnabled, p.UAForward = true, true
		var w Work
		d := Decide(in, p, &w)
		if d.Action == ActionUnknown {
			t.Fatalf("no action for %+v", in)
		}
		for typ := range d.Consent.Value {
			if d.Consent.Value[typ] == Unset {
				t.Fatalf("type %v left unset", Type(typ))
			}
		}
		if d.Action == ActionBlock || family == FamilyScript {
			return
		}
		out := string(w.Query) + "&" + string(w.Matrix) + "&" + string(w.Body)
		var scratch []byte
		if family != FamilyMP && holdsEmail([]byte(strings.NewReplacer(";", "&", "\n", "&").Replace(out)), &scratch) {
			// Only a value the gateway could not parse as a pair may still
			// hold one; every well-formed pair is scrubbed.
			for _, kv := range strings.FieldsFunc(out, func(r rune) bool { return r == '&' || r == ';' || r == '\n' }) {
				if k, v, ok := strings.Cut(kv, "="); ok && !strings.ContainsAny(k, "%") && holdsEmail([]byte(v), &scratch) {
					t.Errorf("e-mail left in %q (from %q)", kv, out)
				}
			}
		}
		if d.Action == ActionCookieless && len(w.Cookie) > 0 {
			t.Errorf("cookieless hit sends cookies %q", w.Cookie)
		}
		if (family == FamilyGA4 || family == FamilyUA) && d.Consent.Denied(AnalyticsStorage) {
			// Query pairs split at '&'; body lines at LF, each without its trailing CR.
			pairs := strings.Split(string(w.Query), "&")
			for _, line := range strings.Split(string(w.Body), "\n") {
				pairs = append(pairs, strings.Split(strings.TrimSuffix(line, "\r"), "&")...)
			}
			for _, kv := range pairs {
				k, _, _ := strings.Cut(kv, "=")
				if k == "uid" || strings.HasPrefix(k, "up.") && family == FamilyGA4 {
					t.Errorf("%s left with analytics_storage denied: %q", k, w.Query)
				}
			}
		}
	})
}

// FuzzCMPCookie reads arbitrary Cookie headers with every preset and a
// JSON mapping: no panic, and an absent cookie never denies unless required.
func FuzzCMPCookie(f *testing.F) {
	f.Add("OptanonConsent=groups=C0001%3A1%2CC0002%3A0; x=1")
	f.Add("CookieConsent={stamp:%27x%27%2Cstatistics:false%2Cmarketing:true}")
	f.Add("cookieyes-consent=analytics:no,advertisement:yes")
	f.Add("klaro=%7B%22a%22%3A%7B%22b%22%3Atrue%7D%7D")
	f.Add("euconsent-v2=COvFyGBOvFyGBAbAAAENAPCAAOAAAAAAAAAAAEEUACCKAAA")
	mappings := []CMPCookie{CMPPresets["onetrust"], CMPPresets["cookiebot"], CMPPresets["cookieyes"],
		{Name: "klaro", Format: CMPFormatJSON, Keys: [4]string{AnalyticsStorage: "a.b"}, Granted: []string{"true"}, Denied: []string{"false"}}}
	f.Fuzz(func(t *testing.T, header string) {
		var scratch []byte
		for i := range mappings {
			r := readCMPCookie(&mappings[i], []byte(header), false, &scratch)
			if _, present := cookieValue([]byte(header), mappings[i].Name); !present && (r.deny != [NumTypes]bool{} || r.malformed) {
				t.Errorf("%s absent from %q but denied %v", mappings[i].Name, header, r.deny)
			}
		}
		_ = readCMPCookie(&CMPCookie{Name: "euconsent-v2", Format: CMPFormatTCF}, []byte(header), false, &scratch)
	})
}

// FuzzFloodlightMatrix rewrites arbitrary path-matrix parameter lists: a
// consented matrix without anything to scrub leaves byte for byte, and a
// denied one never keeps the _gcl_au value.
func FuzzFloodlightMatrix(f *testing.F) {
	f.Add("src=14804749;type=delif0;cat=allvi0;ord=1;npa=0;auiddc=2106096883.1779186070;u1=https%3A%2F%2Fwww.delife.de%2F;~oref=x")
	f.Add(";;src=1;;u2=%ZZ;=;a=b=c")
	f.Fuzz(func(t *testing.T, matrix string) {
		p := testPolicy()
		granted := &Input{Family: FamilyFloodlight, Matrix: []byte(matrix + ";gcs=G111;gcd=13r3r3r2r5l1"), Region: MustRegion("US"), Day: 20000}
		var w Work
		d := Decide(granted, p, &w)
		clean := !strings.ContainsAny(matrix, "@%") && !strings.Contains(matrix, "uip") && !strings.Contains(matrix, "sst.") &&
			!strings.Contains(matrix, "richsstsse") && !strings.Contains(matrix, "gc") && !strings.Contains(matrix, "npa") && !strings.Contains(matrix, "rdp")
		if d.Action == ActionForward && clean && string(w.Matrix) != string(granted.Matrix) {
			t.Errorf("consented matrix changed:\n in %q\nout %q", granted.Matrix, w.Matrix)
		}
		denied := &Input{Family: FamilyFloodlight, Matrix: []byte(matrix + ";gcs=G100"), Region: MustRegion("US"), Day: 20000}
		Decide(denied, p, &w)
		for _, kv := range strings.Split(string(w.Matrix), ";") {
			if k, _, _ := strings.Cut(kv, "="); k == "auiddc" || k == "auid" {
				t.Errorf("%s kept with ad_storage denied: %q", k, w.Matrix)
			}
		}
	})
}

// FuzzMayHoldAt: mayHoldAt never says no to a value whose decodings hold an '@'.
func FuzzMayHoldAt(f *testing.F) {
	for _, s := range []string{"a%40b", "%%34%30", "%4%30", "plain", "%25%2540"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		cur := []byte(s)
		for range 4 {
			if strings.IndexByte(string(cur), '@') >= 0 {
				if !mayHoldAt([]byte(s)) {
					t.Fatalf("mayHoldAt(%q) = false, but a decoding holds '@'", s)
				}
				return
			}
			cur, _ = appendUnescape(nil, cur)
		}
	})
}
