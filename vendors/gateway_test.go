package vendors

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/VictoriaMetrics/metrics"
	"github.com/valyala/fasthttp"

	"github.com/consentgate/consentgate/consentmode"
)

// gatedSink records each call's event ids; the first Accept waits on
// release, so hits pile up behind a slow sink.
type gatedSink struct {
	mu      sync.Mutex
	calls   [][]string
	tags    []int
	paths   []string
	started chan struct{}
	release chan struct{}
	once    sync.Once
	err     error
}

func newGatedSink() *gatedSink {
	return &gatedSink{started: make(chan struct{}), release: make(chan struct{})}
}

func (s *gatedSink) Accept(tag int, out *fasthttp.Request, path, query []byte, at time.Time) error {
	var body struct {
		Data []map[string]any `json:"data"`
	}
	if err := json.Unmarshal(out.Body(), &body); err != nil {
		return err
	}
	var ids []string
	for _, e := range body.Data {
		id, _ := e["event_id"].(string)
		if id == "" {
			id, _ = e["eventId"].(string)
		}
		ids = append(ids, id)
	}
	s.mu.Lock()
	s.calls = append(s.calls, ids)
	s.tags = append(s.tags, tag)
	s.paths = append(s.paths, string(path))
	s.mu.Unlock()
	s.once.Do(func() {
		close(s.started)
		<-s.release
	})
	return s.err
}

func hitN(i int) *Hit {
	h := purchaseHit()
	h.Query = []byte(strings.Replace(purchaseQuery, "ep.event_id=evt-1001", fmt.Sprintf("ep.event_id=evt-%d", i), 1))
	return h
}

// TestOneCallPerEvent: the builder hands every event to its lane as a
// call of its own (the lane merges them: TestMergeBuiltCalls), each once,
// with the vendor's tag and path; Close hands on everything offered.
func TestOneCallPerEvent(t *testing.T) {
	t.Parallel()
	c := testConfig(t, "https://api.example")
	c.On[consentmode.VendorMicrosoft], c.On[consentmode.VendorTikTok] = nil, nil
	sink := newGatedSink()
	g, err := New(Options{Config: c, Sink: func(consentmode.Vendor, string, string) (Sink, error) { return sink, nil }})
	if err != nil {
		t.Fatal(err)
	}
	f := consentmode.VendorFacts{Consent: state(G, G, G)}
	const n = 50
	offer := func(i int) {
		h := hitN(i)
		if !g.Offer(g.Plan(&f, h.Query, h.Body), h) {
			t.Fatalf("hit %d refused", i)
		}
	}
	offer(0)
	<-sink.started // the builder waits in the sink with hit 0
	for i := 1; i < n; i++ {
		offer(i)
	}
	close(sink.release)
	g.Close()
	seen := map[string]int{}
	for _, ids := range sink.calls {
		if len(ids) != 1 {
			t.Errorf("a call of %d events, want 1", len(ids))
		}
		for _, id := range ids {
			seen[id]++
		}
	}
	for i := range n {
		if id := fmt.Sprintf("evt-%d", i); seen[id] != 1 {
			t.Errorf("%s sent %d times", id, seen[id])
		}
	}
	if sink.tags[0] != TagBase+int(consentmode.VendorMeta) || sink.paths[0] != "/v21.0/1234567890/events" {
		t.Errorf("tag %d path %s", sink.tags[0], sink.paths[0])
	}
}

// TestOfferDrops: a full queue and a closed gateway refuse hits and
// count them per planned vendor; a refusing sink counts its events.
func TestOfferDrops(t *testing.T) {
	t.Parallel()
	c := testConfig(t, "https://api.example")
	c.On[consentmode.VendorTikTok] = nil
	sink := newGatedSink()
	sink.err = errors.New("queue full")
	set := metrics.NewSet()
	g, err := New(Options{Config: c, Metrics: set, Sink: func(consentmode.Vendor, string, string) (Sink, error) { return sink, nil }})
	if err != nil {
		t.Fatal(err)
	}
	f := consentmode.VendorFacts{Consent: state(G, G, G)}
	h := purchaseHit()
	p := g.Plan(&f, h.Query, h.Body)
	g.Offer(p, h)
	<-sink.started
	refused := 0
	for range queueLen + 10 {
		if !g.Offer(p, h) {
			refused++
		}
	}
	if refused != 10 {
		t.Errorf("%d hits refused, want 10", refused)
	}
	close(sink.release)
	g.Close()
	if g.Offer(p, h) {
		t.Error("Offer took a hit after Close")
	}
	for _, want := range []string{
		`consentgate_vendor_dropped_total{vendor="meta",cause="queue_full"} 10`,
		`consentgate_vendor_dropped_total{vendor="microsoft",cause="queue_full"} 10`,
		`consentgate_vendor_dropped_total{vendor="tiktok",cause="queue_full"} 0`,
		`consentgate_vendor_dropped_total{vendor="meta",cause="closed"} 1`,
		fmt.Sprintf(`consentgate_vendor_dropped_total{vendor="meta",cause="sink_refused"} %d`, queueLen+1),
		`consentgate_vendor_events_total{vendor="meta",action="send"} 0`,
	} {
		if !strings.Contains(metricsText(set), want+"\n") {
			t.Errorf("metrics lack %s", want)
		}
	}
}

func metricsText(s *metrics.Set) string {
	var b strings.Builder
	s.WritePrometheus(&b)
	return b.String()
}

// TestMetricsRegistered: every label combination exists at New.
func TestMetricsRegistered(t *testing.T) {
	t.Parallel()
	set := metrics.NewSet()
	if _, err := New(Options{Config: testConfig(t, "https://api.example"), Metrics: set}); err != nil {
		t.Fatal(err)
	}
	text := metricsText(set)
	for _, v := range consentmode.VendorNames() {
		for _, a := range actionNames {
			want := fmt.Sprintf(`consentgate_vendor_events_total{vendor=%q,action=%q} 0`, v, a)
			if !strings.Contains(text, want) {
				t.Errorf("missing %s", want)
			}
		}
		for _, c := range causeNames {
			want := fmt.Sprintf(`consentgate_vendor_dropped_total{vendor=%q,cause=%q} 0`, v, c)
			if !strings.Contains(text, want) {
				t.Errorf("missing %s", want)
			}
		}
	}
}

// TestEventCounts: sent, blocked and consent-dropped events are counted
// per vendor.
func TestEventCounts(t *testing.T) {
	t.Parallel()
	g, set := countingGateway(t)
	// ad_storage and ad_personalization denied: Meta and TikTok blocked,
	// Microsoft gets the conversion only.
	f := consentmode.VendorFacts{Consent: state(D, G, D)}
	h := purchaseHit()
	h.Body = []byte("en=purchase\nen=add_to_cart")
	g.Offer(g.Plan(&f, h.Query, h.Body), h)
	g.Close()
	text := metricsText(set)
	for _, want := range []string{
		`consentgate_vendor_events_total{vendor="meta",action="block"} 2`,
		`consentgate_vendor_events_total{vendor="tiktok",action="block"} 2`,
		`consentgate_vendor_events_total{vendor="microsoft",action="send"} 1`,
		`consentgate_vendor_events_total{vendor="microsoft",action="dropped_by_consent"} 1`,
	} {
		if !strings.Contains(text, want+"\n") {
			t.Errorf("metrics lack %s", want)
		}
	}
}

// TestCloseFlushes: Close comes while the sink is slow and hits are
// queued; every hit Offer took leaves before Close returns, none after.
func TestCloseFlushes(t *testing.T) {
	t.Parallel()
	c := testConfig(t, "https://api.example")
	c.On[consentmode.VendorMicrosoft], c.On[consentmode.VendorTikTok] = nil, nil
	sink := newGatedSink()
	g, err := New(Options{Config: c, Sink: func(consentmode.Vendor, string, string) (Sink, error) { return sink, nil }})
	if err != nil {
		t.Fatal(err)
	}
	f := consentmode.VendorFacts{Consent: state(G, G, G)}
	taken := 0
	offer := func(i int) bool {
		h := hitN(i)
		ok := g.Offer(g.Plan(&f, h.Query, h.Body), h)
		if ok {
			taken++
		}
		return ok
	}
	offer(0)
	<-sink.started
	for i := 1; i < 30; i++ {
		offer(i)
	}
	closed := make(chan struct{})
	go func() { g.Close(); close(closed) }()
	// Offer succeeds until Close has shut the queue (it is far from full).
	for i := 30; offer(i); i++ {
	}
	close(sink.release)
	<-closed
	n := 0
	for _, ids := range sink.calls {
		n += len(ids)
	}
	if n != taken {
		t.Errorf("%d events left, %d hits taken", n, taken)
	}
}

// TestIncompleteEvents: a hit without a page URL and User-Agent gives no
// Meta event (Meta would reject the whole batch for it) and is counted;
// TikTok, which needs neither, still gets it.
func TestIncompleteEvents(t *testing.T) {
	t.Parallel()
	g, set := countingGateway(t)
	f := consentmode.VendorFacts{Consent: state(G, G, G)}
	h := &Hit{At: time.Unix(1765100000, 0), Query: []byte("v=2&en=purchase&ep.event_id=e1")}
	g.Offer(g.Plan(&f, h.Query, h.Body), h)
	g.Close()
	text := metricsText(set)
	for _, want := range []string{
		`consentgate_vendor_dropped_total{vendor="meta",cause="incomplete"} 1`,
	} {
		if !strings.Contains(text, want+"\n") {
			t.Errorf("metrics lack %s", want)
		}
	}
}

// TestSinkAskedLate: New does not ask for the lanes (delivery may start
// after it); the first call does, and asks again after an error.
func TestSinkAskedLate(t *testing.T) {
	t.Parallel()
	sink := newGatedSink()
	close(sink.release)
	var mu sync.Mutex
	asked, ready := 0, false
	g, err := New(Options{Config: testConfig(t, "https://api.example"), Sink: func(consentmode.Vendor, string, string) (Sink, error) {
		mu.Lock()
		defer mu.Unlock()
		asked++
		if !ready {
			return nil, errors.New("delivery is not started")
		}
		return sink, nil
	}})
	if err != nil {
		t.Fatal(err)
	}
	if asked != 0 {
		t.Fatalf("New asked for %d lanes", asked)
	}
	if _, err := g.Forward(consentmode.VendorMeta, send(0), []byte(metaPayload), time.Now()); err == nil {
		t.Error("Forward without a lane succeeded")
	}
	mu.Lock()
	ready = true
	mu.Unlock()
	if n, err := g.Forward(consentmode.VendorMeta, send(0), []byte(metaPayload), time.Now()); n != 1 || err != nil {
		t.Errorf("Forward = %d, %v", n, err)
	}
	g.Close()
	if len(sink.calls) != 1 || asked != 2 {
		t.Errorf("%d calls, lanes asked %d times", len(sink.calls), asked)
	}
}

// countingGateway is a Gateway with the three vendors on, its own metrics
// set and a sink that takes every call at once.
func countingGateway(t *testing.T) (*Gateway, *metrics.Set) {
	t.Helper()
	sink := newGatedSink()
	close(sink.release)
	set := metrics.NewSet()
	g, err := New(Options{Config: testConfig(t, "https://api.example"), Metrics: set, Sink: func(consentmode.Vendor, string, string) (Sink, error) { return sink, nil }})
	if err != nil {
		t.Fatal(err)
	}
	return g, set
}
