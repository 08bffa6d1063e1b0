package vendors

import (
	"go/parser"
	"go/token"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/consentgate/consentgate/consentmode"
)

func TestUserHashes(t *testing.T) {
	t.Parallel()
	const hexEm = "bc4795ee8be72a7a92a83a67b1ad3de72cc8013906871a9edab60efb93e20fe8"
	for _, c := range []struct{ in, em, ph string }{
		{"tv.1~em.vEeV7ovnKnqSqDpnsa095yzIATkGhxqe2rYO-5PiD-g", hexEm, ""},
		{"tv.1~em." + strings.ToUpper(hexEm) + "~ph.vEeV7ovnKnqSqDpnsa095yzIATkGhxqe2rYO-5PiD-g", hexEm, hexEm},
		{"tv.1~em.jane@example.com", "", ""},                                         // plain: dropped
		{"tv.1~em.vEeV7ovnKnqSqDpnsa095yzIATkGhxqe2rYO-5PiD-g~fn.jane@x.de", "", ""}, // any plain e-mail drops all
		{"tv.1~em.not-a-hash", "", ""},
		{"tv.1~ph.short", "", ""},
		{"", "", ""},
	} {
		em, ph := userHashes(c.in)
		if em != c.em || ph != c.ph {
			t.Errorf("userHashes(%q) = %q, %q; want %q, %q", c.in, em, ph, c.em, c.ph)
		}
	}
}

func TestStripClickIDs(t *testing.T) {
	t.Parallel()
	for in, want := range map[string]string{
		"https://a.example/p?fbclid=1&x=2&MSCLKID=3&ttclid=4#top": "https://a.example/p?x=2#top",
		"https://a.example/p?gclid=1":                             "https://a.example/p",
		"https://a.example/p":                                     "https://a.example/p",
		"https://a.example/p?fbclidx=1":                           "https://a.example/p?fbclidx=1",
	} {
		if got := stripClickIDs(in); got != want {
			t.Errorf("stripClickIDs(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestParseItem(t *testing.T) {
	t.Parallel()
	it, ok := parseItem("idSKU_1~nmTee~pr10.5~qt2~caApparel")
	if !ok || it != (item{ID: "SKU_1", Name: "Tee", Price: 10.5, HasPrice: true, Qty: 2}) {
		t.Errorf("parseItem = %+v, %v", it, ok)
	}
	if _, ok := parseItem("caApparel~qt2"); ok {
		t.Error("an item without id or name parsed")
	}
}

// TestBuildKeepsDataHome: a uid that is an e-mail, a plain e-mail in em
// and an e-mail in the referrer do not leave; the Microsoft click id
// comes from the _uetmsclkid cookie when the page URL has none; a _fbc
// cookie wins over the fbclid of the URL.
func TestBuildKeepsDataHome(t *testing.T) {
	t.Parallel()
	h := purchaseHit()
	h.Query = []byte("v=2&en=purchase&uid=jane%40example.com&em=tv.1~em.jane%40example.com&dl=https%3A%2F%2Fshop.example%2F%3Ffbclid%3DURLCLICK&dr=https%3A%2F%2Fmail.example%2F%3Fto%3Djane%40example.com")
	h.Cookie = []byte("_fbc=fb.1.1.COOKIECLICK; _uetmsclkid=_uetMSCOOKIE1")
	calls := previewGranted(t, h)
	for _, c := range calls {
		b := string(c.Body)
		if strings.Contains(b, "jane") || strings.Contains(b, "external_id") || strings.Contains(b, "externalId") || strings.Contains(b, `"em"`) || strings.Contains(b, `"email"`) {
			t.Errorf("%s: user data left: %s", c.Vendor, b)
		}
		if strings.Contains(b, metaToken) || strings.Contains(b, msToken) || strings.Contains(b, ttToken) || strings.Contains(c.URL, "token") {
			t.Errorf("%s: Preview shows a token", c.Vendor)
		}
	}
	if !strings.Contains(string(calls[0].Body), `"fbc":"fb.1.1.COOKIECLICK"`) {
		t.Errorf("Meta fbc: %s", calls[0].Body)
	}
	if !strings.Contains(string(calls[1].Body), `"msclkid":"MSCOOKIE1"`) {
		t.Errorf("Microsoft msclkid: %s", calls[1].Body)
	}
	if calls[0].URL != "https://api.example/v21.0/1234567890/events" || calls[2].URL != "https://api.example/open_api/v1.3/event/track/" {
		t.Errorf("URLs %s %s", calls[0].URL, calls[2].URL)
	}
}

// TestFlagTable: the table docs print comes from Specs and names every
// flag that acts on a vendor.
func TestFlagTable(t *testing.T) {
	t.Parallel()
	rows := FlagTable()
	got := map[string]bool{}
	for _, r := range rows {
		got[r.Vendor+"/"+r.Flag] = true
	}
	for _, want := range []string{"meta/no_ids", "meta/no_user_data", "meta/opt_out", "meta/limited_data_use",
		"microsoft/no_ids", "microsoft/no_user_data", "tiktok/no_ids", "tiktok/no_user_data", "tiktok/limited_data_use"} {
		if !got[want] {
			t.Errorf("FlagTable lacks %s", want)
		}
	}
	for _, r := range rows {
		if r.Vendor == "microsoft" && r.Flag == "no_ids" && (len(r.Set) != 1 || r.Set[0] != `adStorageConsent="D"`) {
			t.Errorf("microsoft no_ids sets %v", r.Set)
		}
	}
}

// TestImports: the package (not its tests) imports neither delivery,
// proxy nor declog; it reaches delivery through Sink.
func TestImports(t *testing.T) {
	t.Parallel()
	for _, dir := range []string{".", "vendortest"} {
		files, _ := filepath.Glob(filepath.Join(dir, "*.go"))
		for _, p := range files {
			if strings.HasSuffix(p, "_test.go") {
				continue
			}
			f, err := parser.ParseFile(token.NewFileSet(), p, nil, parser.ImportsOnly)
			if err != nil {
				t.Fatal(err)
			}
			for _, imp := range f.Imports {
				for _, bad := range []string{"/delivery", "/proxy", "/declog"} {
					if strings.Contains(imp.Path.Value, "consentgate/consentgate"+bad) {
						t.Errorf("%s imports %s", p, imp.Path.Value)
					}
				}
			}
		}
	}
}

// TestBuildRedactsEveryEmail: an e-mail address in any value of the hit
// (the page title, an item name, the user agent) leaves redacted, as it
// does from every value Google gets; the same for a merchant's payload.
func TestBuildRedactsEveryEmail(t *testing.T) {
	t.Parallel()
	h := purchaseHit()
	h.Query = []byte("v=2&en=purchase&ep.event_id=e1&dt=Account%20of%20jane%40example.com&pr1=idSKU-1~nmGift%20for%20jane%40example.com~pr5&dl=https%3A%2F%2Fshop.example%2Fdone")
	h.UserAgent = []byte("Mozilla/5.0 (contact jane@example.com)")
	calls := previewGranted(t, h)
	for _, c := range calls {
		if strings.Contains(string(c.Body), "jane") {
			t.Errorf("%s: an e-mail address left: %s", c.Vendor, c.Body)
		}
	}
	fake := &recordingSink{}
	g2, err := New(Options{Config: testConfig(t, "https://api.example"), Sink: func(consentmode.Vendor, string, string) (Sink, error) { return fake, nil }})
	if err != nil {
		t.Fatal(err)
	}
	defer g2.Close()
	payload := `{"data":[{"event_name":"Purchase","event_time":1,"action_source":"website","event_source_url":"https://shop.example/?u=jane@example.com",` +
		`"user_data":{"client_user_agent":"UA jane@example.com"},"custom_data":{"content_name":"jane@example.com"}}]}`
	if _, err := g2.Forward(consentmode.VendorMeta, consentmode.VendorCall{Action: consentmode.VendorSend}, []byte(payload), time.Now()); err != nil {
		t.Fatal(err)
	}
	if b := fake.bodies(); len(b) != 1 || strings.Contains(b[0], "jane") {
		t.Errorf("forwarded: %q", b)
	}
}

// recordingSink keeps the body of every call it takes.
type recordingSink struct {
	mu sync.Mutex
	b  []string
}

func (s *recordingSink) Accept(_ int, out *fasthttp.Request, _, _ []byte, _ time.Time) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.b = append(s.b, string(out.Body()))
	return nil
}

func (s *recordingSink) bodies() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.b...)
}

// previewGranted previews h with everything granted and the three
// vendors on; it fails unless each makes one call.
func previewGranted(t *testing.T, h *Hit) []Call {
	t.Helper()
	g, err := New(Options{Config: testConfig(t, "https://api.example")})
	if err != nil {
		t.Fatal(err)
	}
	f := consentmode.VendorFacts{Consent: state(G, G, G)}
	calls, _ := g.Preview(g.Plan(&f, h.Query, h.Body), h)
	if len(calls) != 3 {
		t.Fatalf("%d calls", len(calls))
	}
	return calls
}
