package consentmode

import (
	"fmt"
	"net/url"
	"strings"
	"testing"
)

// tcString builds a TC string: the purposes in consents (1..24) consented,
// Google (vendor 755) with consent and legitimate interest as given, no
// publisher restrictions.
func tcString(googleConsent, googleLI bool, purposes ...int) string {
	var bits uint64
	for _, p := range purposes {
		bits |= 1 << (24 - p)
	}
	w := new(bitWriter)
	w.add(2, 6).add(15822430593, 36).add(15822430593, 36).add(27, 12).add(1, 12).add(0, 6)
	w.add(4, 6).add(13, 6).add(15, 12).add(4, 6).flag(false).flag(false).add(0, 12)
	w.add(bits, 24).add(1<<(24-7), 24).flag(false).add(3, 6).add(4, 6) // LI: purpose 7; publisher CC "DE"
	vendors := func(on bool) {
		w.add(755, 16).flag(false)
		for id := 1; id <= 755; id++ {
			w.flag(on && id == 755)
		}
	}
	vendors(googleConsent)
	vendors(googleLI)
	w.add(0, 12) // no publisher restrictions
	return w.String()
}

var (
	tcAll      = tcString(true, true, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11)
	tcNoP1     = tcString(true, true, 2, 3, 4, 7)
	tcNoP3     = tcString(true, true, 1, 2, 4, 7)
	tcNoGoogle = tcString(false, false, 1, 2, 3, 4, 7)
)

// Real GPP strings from the IAB library's vectors (testdata/iab).
const (
	gppOptedOut    = "DBABLA~CFgGAAAAAABA" // usnat: SharingOptOut = 1
	gppNotOptedOut = "DBABJg~BKIAAEA"      // usco: no opt-out
)

func granted(extra string) *Input {
	in := ga4("v=2&tid=G-1&gcs=G111&gcd=13r3r3r2r5l1" + extra)
	in.Region = MustRegion("US") // where a US opt-out also writes rdp=1
	return in
}

// TestSignalsDenyWhatTheHitClaims covers each signal against a hit that
// claims everything granted: the signal's denials win, name their source,
// and are written back into the forwarded hit.
func TestSignalsDenyWhatTheHitClaims(t *testing.T) {
	t.Parallel()
	esc := url.QueryEscape
	tests := []struct {
		name      string
		extra     string
		gpc       bool
		cookie    string
		want      [NumTypes]Value
		src       Source
		optOut    bool
		reason    Reason
		writeBack string
	}{
		{"tcf all consented", "&gdpr=1&gdpr_consent=" + tcAll, false, "", [4]Value{Granted, Granted, Granted, Granted}, SourceGCD, false, noReason, "gcs=G111"},
		{"tcf purpose 1 refused", "&gdpr=1&gdpr_consent=" + tcNoP1, false, "", [4]Value{Denied, Granted, Denied, Granted}, SourceTCF, false, ReasonConsentDowngraded, "gcs=G101"},
		{"tcf purpose 3 refused", "&gdpr=1&gdpr_consent=" + tcNoP3, false, "", [4]Value{Granted, Granted, Granted, Denied}, SourceTCF, false, ReasonConsentDowngraded, "npa=1"},
		{"tcf google without consent", "&gdpr=1&gdpr_consent=" + tcNoGoogle, false, "", [4]Value{Denied, Granted, Denied, Denied}, SourceTCF, false, ReasonConsentDowngraded, "gcd=13q3r3q2q5l1"},
		{"tcf unavailable", "&gdpr=1&gdpr_consent=tcunavailable", false, "", [4]Value{Granted, Granted, Granted, Granted}, SourceGCD, false, ReasonTCFUnavailable, "gcs=G111"},
		{"tcf applies, no string", "&gdpr=1", false, "", [4]Value{Denied, Granted, Denied, Denied}, SourceTCF, false, ReasonTCFUnavailable, "npa=1"},
		{"tcf malformed", "&gdpr=1&gdpr_consent=notatcstring", false, "", [4]Value{Denied, Granted, Denied, Denied}, SourceTCF, false, ReasonMalformedTCF, "npa=1"},
		{"tcf not applicable", "&gdpr=0&gdpr_consent=" + tcNoGoogle, false, "", [4]Value{Granted, Granted, Granted, Granted}, SourceGCD, false, ReasonTCFNotApplicable, "gcs=G111"},
		{"gpc", "", true, "", [4]Value{Granted, Granted, Granted, Denied}, SourceGPC, true, ReasonUSOptOut, "rdp=1"},
		{"us privacy opted out", "&us_privacy=1YYN", false, "", [4]Value{Granted, Granted, Granted, Denied}, SourceUSPrivacy, true, ReasonUSOptOut, "rdp=1"},
		{"us privacy not applicable", "&us_privacy=1---", false, "", [4]Value{Granted, Granted, Granted, Granted}, SourceGCD, false, noReason, "gcs=G111"},
		{"us privacy not opted out", "&us_privacy=1YNN", false, "", [4]Value{Granted, Granted, Granted, Granted}, SourceGCD, false, noReason, "gcs=G111"},
		{"us privacy malformed", "&us_privacy=error", false, "", [4]Value{Granted, Granted, Granted, Denied}, SourceUSPrivacy, true, ReasonMalformedUSPrivacy, "npa=1"},
		{"gpp usnat opted out", "&gpp=" + esc(gppOptedOut) + "&gpp_sid=7", false, "", [4]Value{Granted, Granted, Granted, Denied}, SourceGPP, true, ReasonUSOptOut, "rdp=1"},
		{"gpp usco not opted out", "&gpp=" + esc(gppNotOptedOut) + "&gpp_sid=10", false, "", [4]Value{Granted, Granted, Granted, Granted}, SourceGCD, false, noReason, "gcs=G111"},
		{"gpp section not applicable", "&gpp=" + esc(gppOptedOut) + "&gpp_sid=-1", false, "", [4]Value{Granted, Granted, Granted, Granted}, SourceGCD, false, noReason, "gcs=G111"},
		{"gpp malformed", "&gpp=%7E%7E&gpp_sid=7", false, "", [4]Value{Granted, Granted, Granted, Denied}, SourceGPP, true, ReasonMalformedGPP, "rdp=1"},
		{"tcf cookie", "", false, "euconsent-v2=" + tcNoP1, [4]Value{Denied, Granted, Denied, Granted}, SourceCMPCookie, false, ReasonConsentDowngraded, "gcs=G101"},
		{"tcf cookie malformed", "", false, "euconsent-v2=xyz", [4]Value{Denied, Granted, Denied, Denied}, SourceCMPCookie, false, ReasonMalformedCMPCookie, "npa=1"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			in := granted(tt.extra)
			in.GPC = tt.gpc
			in.Cookie = []byte(tt.cookie)
			p := testPolicy()
			p.CMPCookies = []CMPCookie{CMPPresets["euconsent-v2"]}
			d, w := decide(in, p)
			if d.Consent.Value != tt.want {
				t.Errorf("consent = %v, want %v (sources %v, reasons %v)", d.Consent.Value, tt.want, d.Consent.Source, d.Reasons.Strings())
			}
			for typ := range d.Consent.Value {
				if tt.want[typ] == Denied && d.Consent.Source[typ] != tt.src && d.Consent.Value[typ] == Denied {
					t.Errorf("%v denied by %v, want %v", Type(typ), d.Consent.Source[typ], tt.src)
				}
			}
			if d.OptOut != tt.optOut {
				t.Errorf("opt-out = %v, want %v", d.OptOut, tt.optOut)
			}
			if tt.reason != noReason && !d.Reasons.Has(tt.reason) {
				t.Errorf("reasons %v lack %v", d.Reasons.Strings(), tt.reason)
			}
			if !strings.Contains(string(w.Query), tt.writeBack) {
				t.Errorf("forwarded %s lacks %s", w.Query, tt.writeBack)
			}
			if tt.src == SourceCMPCookie && d.SourceName(AdStorage, p) != "cmp_cookie:euconsent-v2" && tt.want[AdStorage] == Denied {
				t.Errorf("source name %q", d.SourceName(AdStorage, p))
			}
		})
	}
}

func TestTCFStrictGovernsAnalytics(t *testing.T) {
	t.Parallel()
	p := testPolicy()
	for _, r := range []Region{MustRegion("DE")} {
		rule := p.Regions[r]
		rule.TCFStrict = true
		p.Regions[r] = rule
	}
	in := granted("&gdpr=1&gdpr_consent=" + tcNoP1)
	in.Region = MustRegion("DE")
	d, _ := decide(in, p)
	if !d.Consent.Denied(AnalyticsStorage) || d.Consent.Source[AnalyticsStorage] != SourceTCF || d.Action != ActionCookieless {
		t.Errorf("strict TCF: %v %v %v", d.Consent.Value, d.Consent.Source, d.Action)
	}
}

// TestRDPOnlyForUSVisitors: a US opt-out signal (GPC here) denies
// ad_personalization everywhere, but rdp=1, Google's restricted data
// processing for US state laws, is written only for visitors in the US or
// of unknown region (fail closed).
func TestRDPOnlyForUSVisitors(t *testing.T) {
	t.Parallel()
	for region, want := range map[string]bool{"US": true, "US-CA": true, "": true, "DE": false, "FR": false, "BR": false} {
		in := granted("")
		in.Region = MustRegion(region)
		in.GPC = true
		d, w := decide(in, testPolicy())
		if d.OptOut != want || strings.Contains(string(w.Query), "rdp=1") != want || !d.Consent.Denied(AdPersonalization) || !strings.Contains(string(w.Query), "npa=1") {
			t.Errorf("region %q: rdp %v, ad_personalization %v: %s; want rdp %v and npa=1", region, d.OptOut, d.Consent.Value[AdPersonalization], w.Query, want)
		}
	}
}

func TestOptOutDeniesAdUserDataSwitch(t *testing.T) {
	t.Parallel()
	p := testPolicy()
	p.Default.OptOutDeniesAdUserData = true
	in := granted("")
	in.Region = MustRegion("US")
	in.GPC = true
	d, _ := decide(in, p)
	if !d.Consent.Denied(AdUserData) || !d.Consent.Denied(AdPersonalization) {
		t.Errorf("switch on: %v", d.Consent.Value)
	}
}

func TestRegionSignalSwitches(t *testing.T) {
	t.Parallel()
	p := testPolicy()
	p.Default.Signals = p.Default.Signals.With(SignalGPC, false)
	in := granted("&us_privacy=1YYN")
	in.Region = MustRegion("US")
	in.GPC = true
	d, _ := decide(in, p)
	if d.Consent.Source[AdPersonalization] != SourceUSPrivacy {
		t.Errorf("GPC off in the region, US Privacy on: source %v", d.Consent.Source[AdPersonalization])
	}
	p.Default.Signals = p.Default.Signals.With(SignalUSPrivacy, false)
	if d, _ := decide(in, p); d.OptOut {
		t.Errorf("both opt-out signals off, still opted out")
	}
}

// TestCMPCookieMappings checks the shipped presets and the custom formats
// against real-shaped cookie values. A CMP cookie only denies.
func TestCMPCookieMappings(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		mapping CMPCookie
		cookie  string
		deny    [NumTypes]bool
		bad     bool
	}{
		{"onetrust analytics only", CMPPresets["onetrust"],
			"OptanonConsent=isGpcEnabled=0&datestamp=Mon+Nov+30+2026&version=202409.1.0&groups=C0001%3A1%2CC0002%3A1%2CC0003%3A1%2CC0004%3A0&hosts=",
			[4]bool{true, false, true, true}, false},
		{"onetrust all", CMPPresets["onetrust"], "OptanonConsent=groups=C0001%3A1%2CC0002%3A1%2CC0004%3A1", [4]bool{}, false},
		{"onetrust bad value", CMPPresets["onetrust"], "OptanonConsent=groups=C0002%3Ax%2CC0004%3A1", [4]bool{false, true, false, false}, true},
		{"cookiebot marketing refused", CMPPresets["cookiebot"],
			"CookieConsent={stamp:%27-1%27%2Cnecessary:true%2Cpreferences:true%2Cstatistics:true%2Cmarketing:false%2Cmethod:%27explicit%27%2Cver:1%2Cutc:1700000000000%2Cregion:%27de%27}",
			[4]bool{true, false, true, true}, false},
		{"cookiebot all", CMPPresets["cookiebot"], "CookieConsent={stamp:%27x%27%2Cnecessary:true%2Cstatistics:true%2Cmarketing:true}", [4]bool{}, false},
		{"cookieyes analytics refused", CMPPresets["cookieyes"],
			"cookieyes-consent=consentid:abc,consent:yes,action:yes,necessary:yes,functional:no,analytics:no,performance:no,advertisement:yes",
			[4]bool{false, true, false, false}, false},
		{"json custom", CMPCookie{Name: "klaro", Format: CMPFormatJSON, Keys: [4]string{AnalyticsStorage: "google-analytics", AdStorage: "ads.google"}, Granted: []string{"true"}, Denied: []string{"false"}},
			"klaro=%7B%22google-analytics%22%3Afalse%2C%22ads%22%3A%7B%22google%22%3Atrue%7D%7D", [4]bool{false, true, false, false}, false},
		{"json invalid", CMPCookie{Name: "klaro", Format: CMPFormatJSON, Keys: [4]string{AnalyticsStorage: "a"}, Granted: []string{"true"}, Denied: []string{"false"}},
			"klaro=%7Bbroken", [4]bool{false, true, false, false}, true},
		{"absent, not required", CMPPresets["onetrust"], "other=1", [4]bool{}, false},
		{"absent, required", func() CMPCookie { c := CMPPresets["onetrust"]; c.Required = true; return c }(), "other=1", [4]bool{true, true, true, true}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var scratch []byte
			r := readCMPCookie(&tt.mapping, []byte(tt.cookie), false, &scratch)
			if r.deny != tt.deny || r.malformed != tt.bad {
				t.Errorf("readCMPCookie = %v malformed=%v, want %v %v", r.deny, r.malformed, tt.deny, tt.bad)
			}
		})
	}
}

// TestCMPCookieIsDenyOnly: a cookie that grants cannot raise what the hit claims.
func TestCMPCookieIsDenyOnly(t *testing.T) {
	t.Parallel()
	p := testPolicy()
	p.CMPCookies = []CMPCookie{CMPPresets["onetrust"]}
	in := ga4("v=2&tid=G-1&gcs=G100&gcd=13q3q3q2q5l1")
	in.Region = MustRegion("US")
	in.Cookie = []byte("OptanonConsent=groups=C0001%3A1%2CC0002%3A1%2CC0004%3A1")
	if d, _ := decide(in, p); d.Consent.Granted(AnalyticsStorage) || d.Action != ActionCookieless {
		t.Errorf("cookie raised consent: %v %v", d.Consent.Value, d.Action)
	}
	in = granted("")
	in.Cookie = []byte("OptanonConsent=groups=C0001%3A1%2CC0002%3A0%2CC0004%3A1")
	d, w := decide(in, p)
	if !d.Consent.Denied(AnalyticsStorage) || d.SourceName(AnalyticsStorage, p) != "cmp_cookie:OptanonConsent" || !strings.Contains(string(w.Query), "gcs=G110") {
		t.Errorf("cookie denial: %v %s %s", d.Consent.Value, d.SourceName(AnalyticsStorage, p), w.Query)
	}
}

// TestEveryPairOfDeniers: for each pair of inputs that deny
// ad_personalization, the higher-precedence one is reported, and the
// hit's own claim of granted never wins.
func TestEveryPairOfDeniers(t *testing.T) {
	t.Parallel()
	type denier struct {
		src    Source
		query  string
		gpc    bool
		cookie string
	}
	deniers := []denier{
		{SourceGCD, "&gcd=13r3r3r2q5l1", false, ""},
		{SourceNPA, "&npa=1", false, ""},
		{SourceCMPCookie, "", false, "euconsent-v2=" + tcNoP3},
		{SourceTCF, "&gdpr=1&gdpr_consent=" + tcNoP3, false, ""},
		{SourceGPC, "", true, ""},
		{SourceUSPrivacy, "&us_privacy=1YYN", false, ""},
		{SourceGPP, "&gpp=" + url.QueryEscape(gppOptedOut) + "&gpp_sid=7", false, ""},
	}
	p := testPolicy()
	p.CMPCookies = []CMPCookie{CMPPresets["euconsent-v2"]}
	for i, a := range deniers {
		for _, b := range deniers[i+1:] {
			t.Run(fmt.Sprintf("%v+%v", a.src, b.src), func(t *testing.T) {
				q := "v=2&tid=G-1&gcs=G111" + a.query + b.query
				if a.src != SourceGCD && b.src != SourceGCD {
					q += "&gcd=13r3r3r2r5l1"
				}
				in := ga4(q)
				in.Region = MustRegion("US")
				in.GPC = a.gpc || b.gpc
				in.Cookie = []byte(a.cookie + b.cookie)
				d, w := decide(in, p)
				if !d.Consent.Denied(AdPersonalization) || d.Consent.Source[AdPersonalization] != a.src {
					t.Errorf("ad_personalization %v from %v, want denied from %v", d.Consent.Value[AdPersonalization], d.Consent.Source[AdPersonalization], a.src)
				}
				if !strings.Contains(string(w.Query), "npa=1") {
					t.Errorf("npa=1 not written back: %s", w.Query)
				}
			})
		}
	}
}
