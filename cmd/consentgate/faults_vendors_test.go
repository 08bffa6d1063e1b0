//go:build faults

package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/consentgate/consentgate/consentmode"
	"github.com/consentgate/consentgate/vendors/vendortest"
)

// vendorTokens are the tokens the vendor fake accepts, one per vendor.
var vendorTokens = [consentmode.NumVendors]string{"fault-meta-token", "fault-microsoft-token", "fault-tiktok-token"}

// vendorIDKey is where each vendor's event carries the event id.
var vendorIDKey = [consentmode.NumVendors]string{"event_id", "eventId", "event_id"}

// vendorsYAML enables the three vendors against endpoint and maps the
// load's page_view to a conversion of each, with ep.seq as the event id:
// every accepted GA4 hit the consent allows makes one event per vendor
// whose id is its seq.
func vendorsYAML(endpoint string) string {
	var b strings.Builder
	b.WriteString(`vendors:
  event_id_param: ep.seq
  batch_max_events: 100
  events:
    - {ga4: page_view, meta: PageView, microsoft: page_view, tiktok: Pageview, conversion: true}
`)
	for v := range consentmode.Vendor(consentmode.NumVendors) {
		fmt.Fprintf(&b, "  %s: {enabled: true, id: %q, token: %q, endpoint: %q}\n", v, "FAULT"+strconv.Itoa(int(v)+1), vendorTokens[v], endpoint)
	}
	return b.String()
}

// vendorFake is the vendor APIs' fake behind a handler that notes when
// each event id first arrived (answered 200).
type vendorFake struct {
	*vendortest.Fake
	URL string

	mu      sync.Mutex
	firstAt [consentmode.NumVendors]map[string]time.Time
}

func startVendorFake(t *testing.T) *vendorFake {
	t.Helper()
	f, err := vendortest.New(vendortest.Options{Tokens: vendorTokens})
	if err != nil {
		t.Fatal(err)
	}
	vf := &vendorFake{Fake: f}
	for v := range vf.firstAt {
		vf.firstAt[v] = map[string]time.Time{}
	}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		r.Body = io.NopCloser(bytes.NewReader(body))
		sw := &statusWriter{ResponseWriter: w, status: http.StatusOK}
		f.ServeHTTP(sw, r)
		if sw.status != http.StatusOK {
			return
		}
		var doc struct {
			Data []map[string]any `json:"data"`
		}
		if json.Unmarshal(body, &doc) != nil {
			return
		}
		v := consentmode.VendorTikTok
		switch {
		case strings.HasPrefix(r.URL.Path, "/v1/"):
			v = consentmode.VendorMicrosoft
		case strings.HasSuffix(r.URL.Path, "/events"):
			v = consentmode.VendorMeta
		}
		now := time.Now()
		vf.mu.Lock()
		for _, ev := range doc.Data {
			if id, ok := ev[vendorIDKey[v]].(string); ok {
				if _, seen := vf.firstAt[v][id]; !seen {
					vf.firstAt[v][id] = now
				}
			}
		}
		vf.mu.Unlock()
	}))
	vf.URL = srv.URL
	t.Cleanup(srv.Close)
	return vf
}

// lastFirstArrival returns when the last of ids first arrived at vendor
// v (zero if one never did).
func (vf *vendorFake) lastFirstArrival(v consentmode.Vendor, ids []string) time.Time {
	vf.mu.Lock()
	defer vf.mu.Unlock()
	var last time.Time
	for _, id := range ids {
		at, ok := vf.firstAt[v][id]
		if !ok {
			return time.Time{}
		}
		if at.After(last) {
			last = at
		}
	}
	return last
}

type statusWriter struct {
	http.ResponseWriter
	status int
}

func (w *statusWriter) WriteHeader(code int) {
	w.status = code
	w.ResponseWriter.WriteHeader(code)
}

// vendorWant is, per vendor, the event ids (seqs) that must arrive.
type vendorWant [consentmode.NumVendors][]string

// wantVendorEvents derives what each vendor must receive from the
// accepted requests of a load: every page_view (a GET's hit, a batched
// POST's first line) makes an event. The load's denied hits (gcs=G100,
// secretEvery) deny ad_storage: Meta and TikTok are blocked, Microsoft
// gets them without ids. The granted ones (gcs=G111, no gcd, region
// unknown: ad_user_data and ad_personalization default to denied) go to
// all three, as conversions. denied lists the seqs of the denied hits.
func wantVendorEvents(spec loadSpec, results []reqResult, keep func(reqResult) bool) (want vendorWant, denied map[string]bool) {
	denied = map[string]bool{}
	for i, r := range results {
		if r.err != nil || r.status != http.StatusNoContent || !keep(r) {
			continue
		}
		id := strconv.Itoa(r.seqs[0]) // the page_view
		isPost := spec.postEvery > 0 && i%spec.postEvery == spec.postEvery-1
		isDenied := !isPost && spec.secretEvery > 0 && i%spec.secretEvery == spec.secretEvery-1
		want[consentmode.VendorMicrosoft] = append(want[consentmode.VendorMicrosoft], id)
		if isDenied {
			denied[id] = true
			continue
		}
		want[consentmode.VendorMeta] = append(want[consentmode.VendorMeta], id)
		want[consentmode.VendorTikTok] = append(want[consentmode.VendorTikTok], id)
	}
	return want, denied
}

// vendorCounts is what the fake accepted of one vendor's wanted events.
type vendorCounts struct {
	want, arrived, duplicated, missing int
	unwanted                           int // events whose id is not wanted (a blocked hit's, or none)
}

func (c vendorCounts) String() string {
	return fmt.Sprintf("want %d / arrived %d / duplicated %d / missing %d / unwanted %d", c.want, c.arrived, c.duplicated, c.missing, c.unwanted)
}

// countVendorEvents counts, per vendor, the wanted ids among the events
// the fake accepted.
func countVendorEvents(f *vendorFake, want vendorWant) [consentmode.NumVendors]vendorCounts {
	var out [consentmode.NumVendors]vendorCounts
	for v := range consentmode.Vendor(consentmode.NumVendors) {
		got := map[string]int{}
		for _, ev := range f.Events(v) {
			id, _ := ev[vendorIDKey[v]].(string)
			got[id]++
		}
		c := vendorCounts{want: len(want[v])}
		wanted := make(map[string]bool, len(want[v]))
		for _, id := range want[v] {
			wanted[id] = true
			switch n := got[id]; {
			case n == 0:
				c.missing++
			default:
				c.arrived++
				c.duplicated += n - 1
			}
		}
		for id, n := range got {
			if !wanted[id] {
				c.unwanted += n
			}
		}
		out[v] = c
	}
	return out
}

// waitVendorEvents waits until every wanted event arrived or the
// deadline passes, counting again at each request the fake records.
func waitVendorEvents(f *vendorFake, want vendorWant, deadline time.Duration) ([consentmode.NumVendors]vendorCounts, time.Duration) {
	start := time.Now()
	timeout := time.NewTimer(deadline)
	defer timeout.Stop()
	for {
		changed := f.Changed() // before counting: a request in between wakes the wait
		c := countVendorEvents(f, want)
		done := true
		for _, x := range c {
			done = done && x.missing == 0
		}
		if done {
			return c, time.Since(start)
		}
		select {
		case <-changed:
		case <-timeout.C:
			return countVendorEvents(f, want), time.Since(start) // missing ones fail the test
		}
	}
}

// familySample returns the sample of a consentgate_delivery_* counter for
// one family.
func familySample(m map[string]float64, name, family string) float64 {
	return m[name+`{family="`+family+`"}`]
}

// vendorSamples reads the consentgate_vendor_* samples of the gateway's
// /metrics (the fault suite's metrics keeps only delivery's).
func vendorSamples(g *gateway) (map[string]float64, error) {
	c := &http.Client{Timeout: 5 * time.Second}
	resp, err := c.Get("http://" + g.admin + "/metrics")
	if err != nil {
		return nil, err
	}
	defer func() { _ = resp.Body.Close() }()
	out := map[string]float64{}
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if !strings.HasPrefix(line, "consentgate_vendor_") {
			continue
		}
		if i := strings.LastIndexByte(line, ' '); i > 0 {
			if v, err := strconv.ParseFloat(line[i+1:], 64); err == nil {
				out[line[:i]] = v
			}
		}
	}
	return out, sc.Err()
}

// settledFamilies is settled for a gateway with vendors: the GA4 family's
// accepted_total must match the 204s the clients got, and every family
// (GA4 and each vendor's) must have delivered what it accepted, less
// what was dropped (dropped_total is counted by cause, not by family: a
// drop anywhere counts against every family's balance).
func settledFamilies(t *testing.T, g *gateway, ls loadStats) map[string]float64 {
	t.Helper()
	families := []string{"ga4"}
	for v := range consentmode.Vendor(consentmode.NumVendors) {
		families = append(families, "vendor_"+v.String())
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		m, err := g.metrics()
		if err != nil {
			t.Errorf("%s: metrics: %v", g.name, err)
			return nil
		}
		dropped := sumPrefix(m, "consentgate_delivery_dropped_total")
		var problems []string
		acc := familySample(m, "consentgate_delivery_accepted_total", "ga4")
		if acc < float64(ls.accepted) || acc > float64(ls.accepted+ls.errors) {
			problems = append(problems, fmt.Sprintf("ga4 accepted_total %g, the clients got %d 204s (%d without answer)", acc, ls.accepted, ls.errors))
		}
		for _, f := range families {
			a := familySample(m, "consentgate_delivery_accepted_total", f)
			d := familySample(m, "consentgate_delivery_delivered_total", f)
			if d > a || d+dropped < a {
				problems = append(problems, fmt.Sprintf("%s: accepted_total %g, delivered_total %g, dropped_total (all families) %g", f, a, d, dropped))
			}
		}
		if len(problems) == 0 || time.Now().After(deadline) {
			for _, p := range problems {
				t.Errorf("%s: metrics do not balance: %s", g.name, p)
			}
			t.Logf("%s (%d error log lines) metrics:%s", g.name, g.errorLines(), metricsLine(m))
			return m
		}
		// Polls the other process's /metrics until the counts settle.
		time.Sleep(50 * time.Millisecond)
	}
}

// A vendor API down (503) for 15 s of a 30 s run at 200 req/s, with
// every accepted page_view also making a Meta, Microsoft and TikTok
// event: GA4 does not notice (every accepted hit delivered, p99 within
// the hang limit, the hits accepted during the outage delivered during
// it), and the vendors lose nothing the consent allows (each wanted
// event arrives at least once after the recovery; duplicates are
// reported), and nothing the consent blocks.
func TestFaultVendorDown(t *testing.T) {
	fake := startVendorFake(t)
	up := newFakeUpstream(t)
	cfg := defaultGWConfig(t, up)
	cfg.vendors = vendorsYAML(fake.URL)
	gw := startFaultGateway(t, "vendor-down", cfg, waitServing)
	// Meta requires the page URL (event_source_url): the hits carry dl.
	spec := loadSpec{target: gw.public, rate: faultRate, count: 30 * faultRate, timeout: faultTimeout, postEvery: 10, secretEvery: 7,
		query: "&dl=" + url.QueryEscape("https://shop.example/checkout")}
	l := startLoad(t, spec)
	l.at(5 * time.Second)
	fake.SetDown(true)
	downAt := time.Now()
	l.at(20 * time.Second)
	fake.SetDown(false)
	upAt := time.Now()
	l.wait()
	ls := l.stats()
	during := l.statsOf(func(r reqResult) bool { return !r.sent.Before(downAt) && r.sent.Before(upAt) })
	// GA4 delivers in milliseconds: what was accepted until 1 s before
	// the vendor recovered must have reached Google while it was down.
	acceptedDown := l.statsOf(func(r reqResult) bool {
		return r.status == http.StatusNoContent && !r.sent.Before(downAt) && r.done.Before(upAt.Add(-time.Second))
	})
	uc, took := up.waitDelivered(ls.acceptedReqs, deliverWithin)

	all := func(reqResult) bool { return true }
	want, denied := wantVendorEvents(spec, l.snapshot(), all)
	vc, vtook := waitVendorEvents(fake, want, deliverWithin)
	// The events of the hits accepted during the outage waited in the
	// spool: when did the last of them arrive?
	backlog, _ := wantVendorEvents(spec, l.snapshot(), func(r reqResult) bool { return !r.sent.Before(downAt) && r.done.Before(upAt) })
	var caughtUp []string
	for v := range consentmode.Vendor(consentmode.NumVendors) {
		at := "never"
		if last := fake.lastFirstArrival(v, backlog[v]); !last.IsZero() {
			at = last.Sub(upAt).Round(10 * time.Millisecond).String()
		}
		caughtUp = append(caughtUp, fmt.Sprintf("%s %s", v, at))
	}
	m := settledFamilies(t, gw, ls)
	vm, err := vendorSamples(gw)
	if err != nil {
		t.Errorf("vendor metrics: %v", err)
	}

	report(t, "vendor-down-15s", ls, uc, droppedByCause(m))
	var parts []string
	for v := range consentmode.Vendor(consentmode.NumVendors) {
		parts = append(parts, fmt.Sprintf("%s %d/%d/%d/%d", v, vc[v].want, vc[v].arrived, vc[v].duplicated, vc[v].missing))
	}
	line := fmt.Sprintf("%-16s vendor events want/arrived/duplicated/missing: %s; the outage's backlog in full after the recovery: %s; all arrived %v after the load", "  (vendors)", strings.Join(parts, ", "), strings.Join(caughtUp, ", "), vtook.Round(100*time.Millisecond))
	t.Log(line)
	reportsMu.Lock()
	reports = append(reports, line)
	reportsMu.Unlock()
	details(t, ls, uc, took)
	checkBalance(t, ls, uc, 0, spoolSettled(t, gw), m)
	checkCommon(t, ls, uc)

	// GA4 not slowed.
	t.Logf("during the vendor outage: %d requests, p50 %v p99 %v max %v", during.sent, during.p50, during.p99, during.max)
	if ls.accepted != ls.sent {
		t.Errorf("%d of %d requests not accepted (answers %s)", ls.sent-ls.accepted, ls.sent, ls.statusString())
	}
	if ls.p99 >= hangP99Limit || during.p99 >= hangP99Limit {
		t.Errorf("browser p99 %v (during the vendor outage %v), want < %v", ls.p99, during.p99, hangP99Limit)
	}
	if len(acceptedDown.acceptedReqs) == 0 {
		t.Errorf("no GA4 request accepted during the vendor outage")
	} else if last := up.lastFirstDelivery(acceptedDown.acceptedReqs); last.IsZero() || !last.Before(upAt) {
		t.Errorf("the %d GA4 requests accepted during the vendor outage were not all delivered before the vendor recovered (last %v after the recovery)",
			len(acceptedDown.acceptedReqs), last.Sub(upAt))
	} else {
		t.Logf("the %d GA4 requests accepted during the vendor outage were all delivered during it, the last %v before the recovery",
			len(acceptedDown.acceptedReqs), upAt.Sub(last).Round(time.Millisecond))
	}

	// The vendors lose nothing the consent allows.
	for v := range consentmode.Vendor(consentmode.NumVendors) {
		t.Logf("%s: %s", v, vc[v])
		if vc[v].missing != 0 {
			t.Errorf("%s: %d of %d events the consent allows never arrived within %v", v, vc[v].missing, vc[v].want, deliverWithin)
		}
		if vc[v].unwanted != 0 {
			t.Errorf("%s: %d events the consent does not allow (or with an id no accepted hit had)", v, vc[v].unwanted)
		}
		if vc[v].want == 0 {
			t.Errorf("%s: no event expected: the scenario tested nothing", v)
		}
		down := 0
		for _, r := range fake.Received(v) {
			if r.Status == http.StatusServiceUnavailable {
				down++
			}
			if strings.Contains(string(r.Body), secretMarker) || strings.Contains(r.Query, secretMarker) {
				t.Errorf("%s: a call carries an identifier the decision removed", v)
			}
		}
		t.Logf("%s: %d calls, %d of them answered 503 during the outage", v, len(fake.Received(v)), down)
		if down == 0 {
			t.Errorf("%s: no call reached the vendor while it was down: the scenario tested nothing", v)
		}
	}
	for _, ev := range fake.Events(consentmode.VendorMicrosoft) {
		id, _ := ev["eventId"].(string)
		consent := "G"
		if denied[id] {
			consent = "D"
		}
		if got, _ := ev["adStorageConsent"].(string); got != consent {
			t.Errorf("microsoft event %s: adStorageConsent %q, want %q", id, got, consent)
			break
		}
	}
	if v := fake.Violations(); len(v) > 0 {
		t.Errorf("the vendor fake saw %d schema or auth violations, the first: %s", len(v), v[0])
	}
	var vdrops []string
	for k, x := range vm {
		if strings.HasPrefix(k, "consentgate_vendor_dropped_total") && x != 0 {
			vdrops = append(vdrops, fmt.Sprintf("%s=%g", strings.TrimPrefix(k, "consentgate_vendor_dropped_total"), x))
		}
	}
	slices.Sort(vdrops)
	if len(vdrops) > 0 {
		t.Errorf("vendor events dropped before delivery: %v", vdrops)
	}
}
