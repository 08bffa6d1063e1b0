package vendors

import (
	"bytes"
	"encoding/json"
	"flag"
	"net/http"
	"net/netip"
	"net/url"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/consentgate/consentgate/config"
	"github.com/consentgate/consentgate/consentmode"
	"github.com/consentgate/consentgate/vendors/vendortest"
)

var update = flag.Bool("update", false, "rewrite the golden files")

const (
	metaToken = "meta-token-1"
	msToken   = "ms-token-2"
	ttToken   = "tt-token-3"
)

// testConfig turns every vendor on at endpoint base.
func testConfig(t testing.TB, base string) *config.Vendors {
	t.Helper()
	u, err := url.Parse(base)
	if err != nil {
		t.Fatal(err)
	}
	c := &config.Vendors{
		EventIDParam:   "ep.event_id",
		BatchMaxEvents: 100,
		Events: map[string]config.VendorEvent{
			"purchase":    {Name: [3]string{"Purchase", "purchase", "CompletePayment"}, Conversion: true},
			"add_to_cart": {Name: [3]string{"AddToCart", "add_to_cart", "AddToCart"}},
			"view_item":   {Name: [3]string{"ViewContent", "", "ViewContent"}},
		},
	}
	c.On[consentmode.VendorMeta] = &config.Vendor{ID: "1234567890", Token: metaToken, Endpoint: u, APIVersion: "v21.0"}
	c.On[consentmode.VendorMicrosoft] = &config.Vendor{ID: "187000123", Token: msToken, Endpoint: u}
	c.On[consentmode.VendorTikTok] = &config.Vendor{ID: "CTTPIXEL123", Token: ttToken, Endpoint: u}
	return c
}

// httpSink posts each accepted request to the fake at once.
type httpSink struct {
	base string
	mu   sync.Mutex
	n    int
}

func (s *httpSink) Accept(tag int, out *fasthttp.Request, path, query []byte, at time.Time) error {
	u := s.base + string(path)
	if len(query) > 0 {
		u += "?" + string(query)
	}
	req, err := http.NewRequest(string(out.Header.Method()), u, bytes.NewReader(out.Body()))
	if err != nil {
		return err
	}
	for k, v := range out.Header.All() {
		req.Header.Set(string(k), string(v))
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	resp.Body.Close()
	s.mu.Lock()
	s.n++
	s.mu.Unlock()
	return nil
}

func startFake(t *testing.T) *vendortest.Server {
	t.Helper()
	f, err := vendortest.Start(vendortest.Options{Tokens: [3]string{metaToken, msToken, ttToken}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(f.Close)
	return f
}

// The purchase hit, in the shape of the recorded GA4 hits of
// testdata/public-hits.tsv, with items, value, currency, transaction and
// event ids, a user id, Google's user-provided data and click ids on the
// page URL.
const purchaseQuery = "v=2&tid=G-TEST123&gtm=45je4580v880158425za200&_p=1715625261583&gcs=G111&gcd=13r3r3r2r5l1&npa=0&dma=1" +
	"&cid=414801335.1715625262&ul=en-us&sr=1920x1080&_s=3&sid=1715625261&sct=1&seg=1" +
	"&dl=https%3A%2F%2Fshop.example%2Fcheckout%2Fdone%3Forder%3DT-1001%26fbclid%3DFBCLID123%26msclkid%3DMSCLK456%26ttclid%3DTTCLID789" +
	"&dr=https%3A%2F%2Fshop.example%2Fcart&dt=Thank%20you&en=purchase&_et=1280" +
	"&ep.transaction_id=T-1001&ep.event_id=evt-1001&epn.value=30.03&cu=EUR" +
	"&pr1=idSKU_123~nmStan%20and%20Friends%20Tee~pr10.01~qt3" +
	"&uid=user-42&em=tv.1~em.vEeV7ovnKnqSqDpnsa095yzIATkGhxqe2rYO-5PiD-g&tfd=353"

const purchaseCookie = "_ga=GA1.1.414801335.1715625262; _fbp=fb.1.1715625262000.1116446470; _uetvid=7e3c0f10a1b111eeb0b5e7f0c3d2a1b0; _uetmsclkid=_uetMSCOOKIE1; _ttp=2Xa9QkTtPcookie"

func purchaseHit() *Hit {
	return &Hit{
		At:        time.Unix(1765100000, 123e6).UTC(),
		Query:     []byte(purchaseQuery),
		Cookie:    []byte(purchaseCookie),
		UserAgent: []byte("Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36"),
		ClientIP:  netip.MustParseAddr("203.0.113.7"),
	}
}

func state(ad, userData, pers consentmode.Value) consentmode.State {
	var s consentmode.State
	s.Value[consentmode.AdStorage] = ad
	s.Value[consentmode.AnalyticsStorage] = consentmode.Granted
	s.Value[consentmode.AdUserData] = userData
	s.Value[consentmode.AdPersonalization] = pers
	return s
}

// tcVector returns the TC string of a vector of testdata/iab/tcf-vectors.json.
func tcVector(t testing.TB, name string) string {
	b, err := os.ReadFile("../testdata/iab/tcf-vectors.json")
	if err != nil {
		t.Fatal(err)
	}
	var d struct{ Vectors []struct{ Name, TC string } }
	if err := json.Unmarshal(b, &d); err != nil {
		t.Fatal(err)
	}
	for _, v := range d.Vectors {
		if v.Name == name {
			return v.TC
		}
	}
	t.Fatalf("no TCF vector %s", name)
	return ""
}

type consentCase struct {
	name  string
	facts func(t testing.TB) consentmode.VendorFacts
}

var G, D = consentmode.Granted, consentmode.Denied

var consentCases = []consentCase{
	{"granted", func(testing.TB) consentmode.VendorFacts { return consentmode.VendorFacts{Consent: state(G, G, G)} }},
	{"ad_storage_denied", func(testing.TB) consentmode.VendorFacts { return consentmode.VendorFacts{Consent: state(D, G, G)} }},
	{"ad_user_data_denied", func(testing.TB) consentmode.VendorFacts { return consentmode.VendorFacts{Consent: state(G, D, G)} }},
	{"ad_personalization_denied", func(testing.TB) consentmode.VendorFacts { return consentmode.VendorFacts{Consent: state(G, G, D)} }},
	{"gpc", func(testing.TB) consentmode.VendorFacts {
		d := consentmode.Decision{Consent: state(G, G, G)}
		return consentmode.FactsOf(&d, true, nil, nil)
	}},
	// random-015 gives vendor 1126 consent and Purpose 1; spec-example does not.
	{"tcf_without_1126", func(t testing.TB) consentmode.VendorFacts {
		d := consentmode.Decision{Consent: state(G, G, G)}
		return consentmode.FactsOf(&d, false, []byte("gdpr=1&gdpr_consent="+tcVector(t, "spec-example")), nil)
	}},
	{"tcf_with_1126", func(t testing.TB) consentmode.VendorFacts {
		d := consentmode.Decision{Consent: state(G, G, G)}
		return consentmode.FactsOf(&d, false, []byte("gdpr=1&gdpr_consent="+tcVector(t, "random-015")), nil)
	}},
}

// redactToken replaces the tokens a body holds (Meta's access_token).
func redactToken(b []byte) []byte {
	return bytes.ReplaceAll(b, []byte(metaToken), []byte(redacted))
}

// TestGolden sends the purchase hit under each consent state through the
// builder to the fake APIs and compares the bodies they received with
// the golden files; every body passes the schema check, and Preview
// shows the same body.
func TestGolden(t *testing.T) {
	for _, cc := range consentCases {
		t.Run(cc.name, func(t *testing.T) {
			fake := startFake(t)
			g, err := New(Options{Config: testConfig(t, fake.URL), Sink: func(consentmode.Vendor, string, string) (Sink, error) {
				return &httpSink{base: fake.URL}, nil
			}})
			if err != nil {
				t.Fatal(err)
			}
			facts := cc.facts(t)
			h := purchaseHit()
			p := g.Plan(&facts, h.Query, h.Body)
			preview, _ := g.Preview(p, h)
			if !g.Offer(p, h) {
				t.Fatal("Offer refused the hit")
			}
			g.Close()
			if v := fake.Violations(); len(v) > 0 {
				t.Fatalf("schema violations: %v", v)
			}
			for v := range consentmode.Vendor(consentmode.NumVendors) {
				got := []byte("-- no call: " + p.Calls[v].String() + " --\n")
				rs := fake.Received(v)
				if len(rs) > 1 {
					t.Fatalf("%s: %d calls, want at most 1", v, len(rs))
				}
				if len(rs) == 1 {
					got = append(redactToken(rs[0].Body), '\n')
					var pv []byte
					for _, c := range preview {
						if c.Vendor == v.String() {
							pv = c.Body
						}
					}
					if !bytes.Equal(pv, redactToken(rs[0].Body)) {
						t.Errorf("%s: Preview shows\n%s\nbut the fake got\n%s", v, pv, rs[0].Body)
					}
				}
				golden(t, filepath.Join("testdata", "golden", cc.name+"."+v.String()+".json"), got)
			}
		})
	}
}

func golden(t *testing.T, path string, got []byte) {
	t.Helper()
	if *update {
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run with -update)", err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("%s differs:\ngot  %s\nwant %s", path, got, want)
	}
}

// FuzzPreview builds calls from arbitrary hits under every consent
// state: no panic, and every body passes the vendor's schema.
func FuzzPreview(f *testing.F) {
	f.Add([]byte(purchaseQuery), []byte(""), []byte(purchaseCookie), uint8(0))
	f.Add([]byte("v=2&en=purchase"), []byte("en=purchase&pr1=id~qt-1\nen=add_to_cart&epn.value=x"), []byte("_fbc=;_uetmsclkid=_uet"), uint8(3))
	f.Add([]byte("en=purchase&dl=%zz&em=tv.1~em.%40"), []byte("\r\n\n"), []byte(""), uint8(7))
	fake, err := vendortest.New(vendortest.Options{})
	if err != nil {
		f.Fatal(err)
	}
	g, err := New(Options{Config: testConfig(f, "https://api.example")})
	if err != nil {
		f.Fatal(err)
	}
	var facts []consentmode.VendorFacts
	for _, c := range consentCases {
		facts = append(facts, c.facts(f))
	}
	f.Fuzz(func(t *testing.T, q, body, cookie []byte, cs uint8) {
		facts := facts[int(cs)%len(facts)]
		h := &Hit{At: time.Unix(1765100000, 0), Query: q, Body: body, Cookie: cookie, UserAgent: []byte("UA/1")}
		calls, _ := g.Preview(g.Plan(&facts, q, body), h)
		for _, c := range calls {
			v, _ := consentmode.ParseVendor(c.Vendor)
			var doc map[string]any
			d := json.NewDecoder(bytes.NewReader(c.Body))
			d.UseNumber()
			if err := d.Decode(&doc); err != nil {
				t.Fatalf("%s: %v", c.Vendor, err)
			}
			delete(doc, "access_token")
			if ps := fake.Schema(v).Check(v, doc); len(ps) > 0 {
				t.Fatalf("%s: %v\n%s", c.Vendor, ps, c.Body)
			}
		}
	})
}
