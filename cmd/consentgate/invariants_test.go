package main

import (
	"testing"

	"github.com/consentgate/consentgate/consentmode"
	"github.com/consentgate/consentgate/proxy"
)

// TestCheckInvariantsCatchEachBreach feeds hand-made forwards that break
// one promise each: every invariant must be able to fail.
func TestCheckInvariantsCatchEachBreach(t *testing.T) {
	t.Parallel()
	denied := consentmode.State{Value: [4]consentmode.Value{consentmode.Denied, consentmode.Denied, consentmode.Denied, consentmode.Denied}}
	ga4 := consentmode.Decision{Family: consentmode.FamilyGA4, Action: consentmode.ActionCookieless, Consent: denied}
	ads := consentmode.Decision{Family: consentmode.FamilyAds, Action: consentmode.ActionCookieless, Consent: denied}
	mp := consentmode.Decision{Family: consentmode.FamilyMP, Action: consentmode.ActionStrip, Consent: denied}
	orig := "https://x/g/collect?cid=111.222&sid=333"
	tests := []struct {
		name      string
		d         consentmode.Decision
		fwd       *proxy.Forward
		redaction bool
		want      string
	}{
		{"original cid", ga4, &proxy.Forward{URL: "https://g/g/collect?cid=111.222"}, false, "analytics_denied_no_original_ids"},
		{"uid", ga4, &proxy.Forward{URL: "https://g/g/collect?uid=u"}, false, "analytics_denied_no_user_ids"},
		{"user property", ga4, &proxy.Forward{Body: "en=x&up.plan=gold"}, false, "analytics_denied_no_user_ids"},
		{"analytics cookie", ga4, &proxy.Forward{URL: "https://g/g/collect", Headers: map[string]string{"Cookie": "_ga=1"}}, false, "analytics_denied_no_analytics_cookies"},
		{"linker", ga4, &proxy.Forward{URL: "https://g/g/collect?dl=https%3A%2F%2Fs%2F%3F_gl%3D1"}, false, "storage_denied_no_linker"},
		{"ad id", ads, &proxy.Forward{URL: "https://g/pagead/conversion/1/?auid=1.2"}, false, "ad_storage_denied_no_ad_ids"},
		{"ad cookie", ads, &proxy.Forward{URL: "https://g/x", Headers: map[string]string{"Cookie": "_gcl_au=1"}}, false, "ad_storage_denied_no_ad_cookies"},
		{"click id with redaction", ads, &proxy.Forward{URL: "https://g/x?url=https%3A%2F%2Fs%2F%3Fgclid%3D1"}, true, "redaction_no_click_ids"},
		{"user data", ads, &proxy.Forward{URL: "https://g/x?em=tv.1~em.x"}, false, "ad_user_data_denied_no_user_data"},
		{"mp user data", mp, &proxy.Forward{Body: `{"user_id":"u"}`}, false, "ad_user_data_denied_no_user_data"},
		{"email", ads, &proxy.Forward{URL: "https://g/x?v=jo%2540x.com"}, false, "no_email"},
		{"referer path", ads, &proxy.Forward{URL: "https://g/x", Headers: map[string]string{"Referer": "https://s/cart"}}, false, "referer_origin_only"},
		{"credentials", ads, &proxy.Forward{URL: "https://g/x", Headers: map[string]string{"Authorization": "x"}}, false, "no_credentials"},
		{"blocked but forwarded", consentmode.Decision{Family: consentmode.FamilyAds, Action: consentmode.ActionBlock}, &proxy.Forward{URL: "https://g/x"}, false, "blocked_forwards_nothing"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := &proxy.Explanation{Decision: tt.d, Forward: tt.fwd}
			vs := checkInvariants(e, orig, "", tt.redaction)
			found := false
			for _, v := range vs {
				found = found || v.Invariant == tt.want
			}
			if !found {
				t.Errorf("checkInvariants = %+v, want %s", vs, tt.want)
			}
		})
	}
	clean := &proxy.Explanation{Decision: ga4, Forward: &proxy.Forward{URL: "https://g/g/collect?cid=9.9&sid=1&en=x&dl=https%3A%2F%2Fs%2F", Headers: map[string]string{"Referer": "https://s/"}}}
	if vs := checkInvariants(clean, orig, "", true); len(vs) != 0 {
		t.Errorf("clean forward flagged: %+v", vs)
	}
}

// TestProxyFieldsExist: every field name the proxy reports is in the
// catalogue (a missing one would silently report another field).
func TestProxyFieldsExist(t *testing.T) {
	t.Parallel()
	for _, name := range []string{"header:Referer", "header:geo", "header:hop-by-hop", "header:X-Forwarded-For", "header:Cookie", "header:other",
		"header:Authorization", "header:Proxy-Authorization", "header:X-Api-Key"} {
		if _, ok := consentmode.LookupField(name); !ok {
			t.Errorf("field %q is not in the catalogue", name)
		}
	}
}
