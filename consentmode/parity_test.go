package consentmode

import (
	"strconv"
	"strings"
	"testing"
)

// idsOf returns the cid and sid a rewritten query carries.
func idsOf(q []byte) (cid, sid string) {
	m := params(q)
	if v := m["cid"]; len(v) > 0 {
		cid = v[0]
	}
	if v := m["sid"]; len(v) > 0 {
		sid = v[0]
	}
	return cid, sid
}

// TestEphemeralIDsWithoutPageID: a denied GA4 hit without _p (server-built
// and third-party clients) gets ids from the per-hit nonce, so two
// visitors never share one; with _p, the hits of one page load share theirs.
func TestEphemeralIDsWithoutPageID(t *testing.T) {
	t.Parallel()
	const now = 20000*86400 + 50000
	hit := func(q string, nonce uint64) (string, string) {
		in := ga4(q)
		in.Region = MustRegion("DE")
		in.Now, in.Nonce = now, nonce
		_, w := decide(in, testPolicy())
		return idsOf(w.Query)
	}
	const noP = "v=2&tid=G-1&gcs=G100&cid=1.2&sid=3&en=page_view"
	c1, s1 := hit(noP, 11)
	c2, s2 := hit(noP, 22)
	// sid is a time, as gtag's is; the client id tells visitors apart.
	if c1 == c2 || c1 == "" || s1 == "" || s2 == "" {
		t.Errorf("two visitors without _p share a client id: %s/%s and %s/%s", c1, s1, c2, s2)
	}
	const withP = "v=2&tid=G-1&_p=" + "1728049000123" + "&gcs=G100&cid=1.2&sid=3&en=page_view"
	p1, _ := hit(withP, 11)
	p2, _ := hit(withP, 22)
	if p1 != p2 {
		t.Errorf("one page load got two ids: %s, %s", p1, p2)
	}
}

// TestEphemeralIDTimes: the ids' times are plausible: first visit (cid) <=
// session start (sid) <= hit time, the page load time when _p is recent.
func TestEphemeralIDTimes(t *testing.T) {
	t.Parallel()
	const now = 20000*86400 + 50000
	tests := []struct {
		name, p string
		want    int64
	}{
		{"recent page load", "&_p=" + strconv.FormatInt((now-600)*1000+123, 10), now - 600},
		{"no _p", "", now},
		{"page load in the future (skew)", "&_p=" + strconv.FormatInt((now+60)*1000, 10), now},
		{"page load far in the future", "&_p=" + strconv.FormatInt((now+86400)*1000, 10), now},
		{"page load over a day old", "&_p=" + strconv.FormatInt((now-2*86400)*1000, 10), now},
		{"_p not a time", "&_p=1", now},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			in := ga4("v=2&tid=G-1&gcs=G100&cid=1.2&sid=3" + tt.p)
			in.Region = MustRegion("DE")
			in.Now = now
			_, w := decide(in, testPolicy())
			cid, sid := idsOf(w.Query)
			_, cidT, _ := strings.Cut(cid, ".")
			ct, err1 := strconv.ParseInt(cidT, 10, 64)
			st, err2 := strconv.ParseInt(sid, 10, 64)
			if err1 != nil || err2 != nil || ct > st || st > now || ct != tt.want {
				t.Errorf("cid %s sid %s (hit at %d): want first visit %d <= session start <= hit time", cid, sid, int64(now), tt.want)
			}
		})
	}
}

// TestMPUserID: on the Measurement Protocol user_id follows
// analytics_storage (the sender's) as uid does on the web, and user_data
// follows ad_user_data; without a consent object the fail-closed default
// applies to both.
func TestMPUserID(t *testing.T) {
	t.Parallel()
	ri, _ := MatchRoute([]byte("/mp/collect"))
	p := testPolicy()
	p.MPEnabled = true
	tests := []struct {
		name, region, consent string
		userID, userData      bool
	}{
		{"ad_user_data denied", "DE", `"consent":{"ad_user_data":"DENIED","ad_personalization":"DENIED"},`, true, false},
		{"all granted", "DE", `"consent":{"ad_user_data":"GRANTED","ad_personalization":"GRANTED"},`, true, true},
		{"no consent object, denying region", "DE", "", false, false},
		{"no consent object, granting region", "US", "", true, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			in := &Input{Route: ri, Family: FamilyMP, Query: []byte("measurement_id=G-1&api_secret=s"), Region: MustRegion(tt.region), Day: 20000,
				Body: []byte(`{"client_id":"1.2","user_id":"u42",` + tt.consent + `"user_data":{"sha256_email_address":["x"]},"events":[{"name":"purchase"}]}`)}
			_, w := decide(in, p)
			if got := strings.Contains(string(w.Body), `"user_id":"u42"`); got != tt.userID {
				t.Errorf("user_id kept = %v, want %v: %s", got, tt.userID, w.Body)
			}
			if got := strings.Contains(string(w.Body), `"user_data"`); got != tt.userData {
				t.Errorf("user_data kept = %v, want %v: %s", got, tt.userData, w.Body)
			}
		})
	}
}

// TestRemarketingPing: under denied ad_personalization, Google's tag still
// sends the view-through (remarketing) ping with npa=1 as a consent-status
// ping; the gateway forwards it the same way (cookieless when ad_storage is
// denied) and keeps the audience endpoints blocked.
func TestRemarketingPing(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name, url string
		action    Action
		npa       bool
	}{
		{"view-through, ad_personalization denied", "/pagead/viewthroughconversion/123/?en=gtag.config&gcd=13r3r3r2q5l1&url=https%3A%2F%2Fshop.example%2F", ActionStrip, true},
		{"view-through, all denied", "/pagead/viewthroughconversion/123/?en=gtag.config&gcd=13q3q3q2q5l1&auid=1.2", ActionCookieless, true},
		{"view-through, all granted", "/pagead/viewthroughconversion/123/?en=gtag.config&gcd=13r3r3r2r5l1", ActionForward, false},
		{"rmkt/collect, ad_personalization denied", "/rmkt/collect/123/?en=add_to_cart&gcd=13r3r3r2q5l1", ActionBlock, false},
		{"1p-user-list, ad_personalization denied", "/pagead/1p-user-list/123/?en=add_to_cart&gcd=13r3r3r2q5l1", ActionBlock, false},
		{"Protected Audience join, ad_personalization denied", "/td/rul/123?gcd=13r3r3r2q5l1", ActionBlock, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			in := leakInput(t, tt.url, "", "DE")
			in.Cookie = []byte("_gcl_au=1.1.1")
			d, w := decide(in, testPolicy())
			if d.Action != tt.action {
				t.Fatalf("action %v (%v), want %v", d.Action, d.Reasons.Strings(), tt.action)
			}
			if tt.action == ActionBlock {
				if !d.Reasons.Has(ReasonRemarketingDenied) {
					t.Errorf("reasons %v lack remarketing_denied", d.Reasons.Strings())
				}
				return
			}
			if got := strings.Contains(string(w.Query), "npa=1"); got != tt.npa {
				t.Errorf("npa=1 = %v, want %v: %s", got, tt.npa, w.Query)
			}
			if tt.action == ActionCookieless && (len(w.Cookie) > 0 || strings.Contains(string(w.Query), "auid")) {
				t.Errorf("cookieless ping carries identifiers: %s cookie %q", w.Query, w.Cookie)
			}
		})
	}
}

// TestWriteBackAgrees: what the gateway writes back never contradicts
// itself: gcu=1 goes on every downgrade, also when the hit contradicts
// itself; a gcd saying no consent command ran is replaced whole, so its
// letters and tail agree.
func TestWriteBackAgrees(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name, query, region string
		want, notWant       []string
	}{
		{"gcu with a self-contradicting hit", "gcs=G111&gcd=13r3q3r2r5l1&gcu=1", "US", nil, []string{"gcu=1"}},
		{"gcu on a plain downgrade", "gcs=G111&gcd=13r3r3r2r5l1&gcu=1&gdpr=1&gdpr_consent=" + tcNoP1, "US", nil, []string{"gcu=1"}},
		{"gcu when nothing was lowered", "gcs=G111&gcd=13r3r3r2r5l1&gcu=1", "US", []string{"gcu=1"}, nil},
		{"no command ran, denying region", "gcd=13l3l3l3l1", "DE", []string{"gcd=13m3m3m2m5l1"}, []string{"13m3m3m3m1"}},
		{"no command ran, old format", "gcd=11l1l1l1l1", "DE", []string{"gcd=13m3m3m2m5l1"}, nil},
		{"no command ran, granting region", "gcd=13l3l3l3l1", "US", []string{"gcd=13l3l3l3l1"}, nil},
		{"a command ran: letters edited in place", "gcd=13r3r3r2r5l1&gcs=G111", "US", []string{"gcd=13r3r3r2r5l1"}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			in := ga4("v=2&tid=G-1&_p=1&" + tt.query)
			in.Region = MustRegion(tt.region)
			_, w := decide(in, testPolicy())
			for _, s := range tt.want {
				if !strings.Contains(string(w.Query), s) {
					t.Errorf("%s lacks %s", w.Query, s)
				}
			}
			for _, s := range tt.notWant {
				if strings.Contains(string(w.Query), s) {
					t.Errorf("%s carries %s", w.Query, s)
				}
			}
		})
	}
}

// TestProfiles: consent.profile strict removes user_id and user properties
// from a hit with analytics_storage denied; google keeps them, as Google's
// cookieless pings carry them, and keeps the tag's own page-scoped ids.
func TestProfiles(t *testing.T) {
	t.Parallel()
	const q = "v=2&tid=G-1&_p=1&gcs=G100&cid=555.666&sid=777&uid=u42&up.plan=gold&upn.age=3&sct=4&ecid=99&en=page_view"
	tests := []struct {
		profile       Profile
		clientIDTag   bool
		keep, removed []string
	}{
		{ProfileStrict, false, []string{"en=page_view"}, []string{"uid=u42", "up.plan", "upn.age", "cid=555.666", "sct=4", "ecid=99"}},
		{ProfileGoogle, true, []string{"uid=u42", "up.plan=gold", "upn.age=3", "cid=555.666&sid=777"}, []string{"sct=4", "ecid=99"}},
	}
	for _, tt := range tests {
		t.Run(tt.profile.String(), func(t *testing.T) {
			p := testPolicy()
			p.Profile, p.ClientIDTag = tt.profile, tt.clientIDTag
			in := ga4(q)
			in.Region = MustRegion("DE")
			in.Cookie = []byte("cc_cookie=x")
			d, w := decide(in, p)
			if d.Action != ActionCookieless {
				t.Fatalf("action %v", d.Action)
			}
			for _, s := range tt.keep {
				if !strings.Contains(string(w.Query), s) {
					t.Errorf("%s lacks %s", w.Query, s)
				}
			}
			for _, s := range tt.removed {
				if strings.Contains(string(w.Query), s) {
					t.Errorf("%s carries %s", w.Query, s)
				}
			}
		})
	}
}
