package proxy

import (
	"net/url"
	"strings"
	"testing"
)

// TestSignalsEnforcedEndToEnd: a hit claiming G111 reaches the upstream
// with the state the visitor's signals enforce, written back into gcs,
// gcd, npa and rdp.
func TestSignalsEnforcedEndToEnd(t *testing.T) {
	t.Parallel()
	const claim = "/g/collect?v=2&tid=G-ABC123&_p=1&gcs=G111&gcd=13r3r3r2r5l1&cid=1.2&en=page_view"
	tests := []struct {
		name    string
		extra   string
		headers map[string]string
		want    map[string]string
	}{
		{"CMP cookie (OneTrust)", "", map[string]string{"Cookie": "OptanonConsent=groups=C0001%3A1%2CC0002%3A0%2CC0004%3A1; _ga=GA1.1.1"},
			map[string]string{"gcs": "G110", "gcd": "13r3q3r2r5l1"}},
		{"TCF gdpr_consent", "&gdpr=1&gdpr_consent=notatcstring", nil,
			map[string]string{"gcs": "G101", "gcd": "13q3r3q2q5l1", "npa": "1"}},
		{"GPC", "", map[string]string{"Sec-GPC": "1"},
			map[string]string{"gcd": "13r3r3r2q5l1", "npa": "1", "rdp": "1"}},
		{"US Privacy", "&us_privacy=1YYN", nil,
			map[string]string{"gcd": "13r3r3r2q5l1", "npa": "1", "rdp": "1"}},
		{"GPP usnat opt-out", "&gpp=" + url.QueryEscape("DBABLA~CFgGAAAAAABA") + "&gpp_sid=7", nil,
			map[string]string{"gcd": "13r3r3r2q5l1", "npa": "1", "rdp": "1"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			g := newGateway(t, `consent: {cmp_cookies: [{preset: euconsent-v2}, {preset: onetrust}]}`)
			h := map[string]string{"CF-IPCountry": "US"}
			for k, v := range tt.headers {
				h[k] = v
			}
			g.do(fromProxy, "GET", claim+tt.extra, h, "")
			q := query(t, onlyRequest(t, g.up).URI)
			for k, v := range tt.want {
				if q.Get(k) != v {
					t.Errorf("%s = %q, want %q (upstream got %v)", k, q.Get(k), v, q)
				}
			}
			lines := g.waitLog(1)
			if len(lines) != 1 || !strings.Contains(lines[0], `"consent_downgraded"`) {
				t.Errorf("decision log: %v", lines)
			}
		})
	}
}
