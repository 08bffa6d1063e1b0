package consentmode

import "testing"

// Real-shaped hits for the benchmarks and the allocation tests.
var (
	benchGA4GET = "v=2&tid=G-F9XM71K45T&gtm=45he5641v9184715813z89184708445za204zb9184708445&_p=1749196701069&gcs=G100&gcd=13p3p3p2p5l1" +
		"&npa=1&dma_cps=-&dma=1&tag_exp=101509157~103116026~103200004&cid=1174285007.1749196701&ecid=1548980841&ul=de-de&sr=1920x1080" +
		"&uaa=arm&uab=64&uafvl=Chromium%3B136.0.7103.114%7CGoogle%2520Chrome%3B136.0.7103.114&uamb=0&uam=&uap=macOS&uapv=15.4.1&uaw=0" +
		"&are=1&frm=0&pscdl=denied&_eu=AAAAAGA&_s=1&sid=1749196701&sct=1&seg=0" +
		"&dl=https%3A%2F%2Fsesamy.bestbytes.com%2F%3Futm_source%3Dgoogle%26gclid%3DCj0KCQjwlrvBBhDnARIsAHEQgOSQ%26_gl%3D1*1x2y3z*_ga*MTE3NDI4NTAwNy4xNzQ5MTk2NzAx" +
		"&dr=https%3A%2F%2Fwww.google.com%2F&dt=Sesamy%20%E2%80%93%20Home&en=page_view&_fv=1&_nsi=1&_ss=1&tfd=1523"
	benchGA4Batch = "v=2&tid=G-F9XM71K45T&gtm=45je5641&_p=1749196701069&gcs=G111&gcd=13r3r3r2r5l1&npa=0&dma=1&cid=1174285007.1749196701" +
		"&ul=de-de&sr=1920x1080&_s=3&sid=1749196701&sct=2&seg=1&dl=https%3A%2F%2Fshop.example%2Fcart&dt=Cart"
	benchGA4BatchBody = "en=page_view&_et=12&ep.page_type=cart\r\nen=scroll&epn.percent_scrolled=90&_et=3400\r\n" +
		"en=view_item&ep.item_id=SKU-1&epn.value=49.99\r\nen=add_to_cart&ep.item_id=SKU-1&epn.value=49.99&up.plan=gold\r\n" +
		"en=user_engagement&_et=5000&ep.ga_temp_client_id=1174285007.1749196701\r\n"
	benchAds = "random=1782761485612&en=conversion&gtm=45Pe66p0v9210171140z8836065292za20gzb836065292zd836065292xea&gcs=G100&gcd=13q3q3q2q5l1" +
		"&dma=1&tag_exp=101509157~103116026&u_w=1920&u_h=1080&url=https%3A%2F%2Fatomkraftwerke24.de%2Fshop%2Fdanke%3Fgclid%3DCj0KCQ" +
		"&ref=https%3A%2F%2Fatomkraftwerke24.de%2Fshop%2F&frm=0&tiba=Danke&value=49&currency_code=EUR&oid=7192923&auid=1235240376.1778240583" +
		"&gclaw=CjwKCAjw_x&em=tv.1~em.vEeV7ovnKnqSqDpnsa095yzIATkGhxqenz7YhNfEpPU&ecsid=1234&data=event%3Dconversion&rfmt=3&fmt=4"
	benchFloodlight = "src=14804749;type=delif0;cat=allvi0;rcb=15;ord=5426429458572;npa=0;auiddc=2106096883.1779186070;" +
		"u1=https%3A%2F%2Fwww.delife.de%2F;gdid=dMzk4MW;pscdl=noapi;frm=0;gpp=DBAA;gpp_sid=-1;gcs=G100;gcd=13q3q3q2q5l1;dma_cps=a;dma=1;" +
		"tag_exp=101509157;~oref=https%3A%2F%2Fwww.delife.de%2F%3Fgclid%3DCj0"
)

// benchLinker is a _gl linker with a client id and a stored gclid.
const benchLinker = "1*1q2w3e*_ga*MTE3NDI4NTAwNy4xNzQ5MTk2NzAx*_gcl_aw*R0NMLjE3NDkxOTY3MDEuQ2owS0NRandMaW5rZXJDbGljaw.."

func routeIndex(name string) int {
	for i, r := range Routes {
		if r.Name == name {
			return i
		}
	}
	return -1
}

func benchInputs() map[string]*Input {
	de := MustRegion("DE")
	return map[string]*Input{
		"GA4":        {Route: 0, Family: FamilyGA4, Query: []byte(benchGA4GET), Region: de, Day: 20000, Cookie: []byte("_ga=GA1.1.1174285007.1749196701; _ga_F9XM71K45T=GS1.1.1749196701.1.0.1749196701.0.0.0")},
		"GA4Batch":   {Route: 0, Family: FamilyGA4, Query: []byte(benchGA4Batch), Body: []byte(benchGA4BatchBody), Region: de, Day: 20000},
		"Ads":        {Route: routeIndex("ads_conversion"), Family: FamilyAds, PathTag: []byte("1071635065"), Query: []byte(benchAds), Region: de, Day: 20000, Cookie: []byte("_gcl_au=1.1.1235240376.1778240583")},
		"Floodlight": {Route: routeIndex("floodlight_activity"), Family: FamilyFloodlight, Matrix: []byte(benchFloodlight), Region: de, Day: 20000},
		// A linker with a click id, top level and nested twice in dl.
		"GA4Linker": {Route: 0, Family: FamilyGA4, Region: de, Day: 20000, Query: []byte("v=2&tid=G-1&_p=1&gcs=G101&_gl=" + benchLinker +
			"&dl=https%3A%2F%2Fshop.example%2F%3Fnext%3Dhttps%253A%252F%252Fa%252F%253F_gl%253D" + benchLinker + "%2526x%253D1")},
	}
}

func benchDecide(b *testing.B, name string) {
	in := benchInputs()[name]
	p := testPolicy()
	var w Work
	Decide(in, p, &w) // warm the buffers
	b.ReportAllocs()
	b.SetBytes(int64(len(in.Query) + len(in.Body) + len(in.Matrix)))
	b.ResetTimer()
	for b.Loop() {
		Decide(in, p, &w)
	}
}

// BenchmarkDecideGA4 is a single-event GA4 GET hit, analytics denied:
// parse, decide and rewrite (the cookieless path is the longest).
func BenchmarkDecideGA4(b *testing.B)        { benchDecide(b, "GA4") }
func BenchmarkDecideGA4Batch(b *testing.B)   { benchDecide(b, "GA4Batch") }
func BenchmarkDecideAds(b *testing.B)        { benchDecide(b, "Ads") }
func BenchmarkDecideFloodlight(b *testing.B) { benchDecide(b, "Floodlight") }
