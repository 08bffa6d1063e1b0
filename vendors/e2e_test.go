package vendors_test

import (
	"fmt"
	"net/netip"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/VictoriaMetrics/metrics"
	"github.com/valyala/fasthttp"

	"github.com/consentgate/consentgate/config"
	"github.com/consentgate/consentgate/consentmode"
	"github.com/consentgate/consentgate/delivery"
	"github.com/consentgate/consentgate/vendors"
	"github.com/consentgate/consentgate/vendors/vendortest"
)

// TestThroughDelivery sends a purchase through durable delivery (the
// package's Sink in production) to the fake APIs over HTTP, first while
// they answer 503: every vendor gets the event once, with the hit's event
// id, and nothing violates the schema.
func TestThroughDelivery(t *testing.T) {
	t.Parallel()
	tokens := [3]string{"tok-meta-1", "tok-ms-2", "tok-tt-3"}
	fake, err := vendortest.Start(vendortest.Options{Tokens: tokens})
	if err != nil {
		t.Fatal(err)
	}
	defer fake.Close()
	fake.SetDown(true)
	u, _ := url.Parse(fake.URL)
	status := make(chan int, 64)
	d, err := delivery.Start(delivery.Options{MaxAge: time.Minute, QueueSize: 64, QueueBytes: 1 << 20, Workers: 2, Timeout: 5 * time.Second,
		Metrics: delivery.NewMetrics(metrics.NewSet(), []string{"vendor"}), LabelOf: func(int) int { return 0 },
		Observe: func(_ int, _ time.Duration, s int, _ error) {
			select {
			case status <- s:
			default:
			}
		}})
	if err != nil {
		t.Fatal(err)
	}
	g := gatewayOver(t, d, u, tokens)
	h := &vendors.Hit{
		At:        time.Now(),
		Query:     []byte("v=2&tid=G-1&en=purchase&ep.event_id=evt-77&epn.value=9.5&cu=EUR&dl=https%3A%2F%2Fshop.example%2Fdone"),
		Cookie:    []byte("_fbp=fb.1.1.2; _ttp=x"),
		UserAgent: []byte("UA/1"),
		ClientIP:  netip.MustParseAddr("203.0.113.9"),
	}
	f := consentmode.VendorFacts{Consent: consentmode.State{Value: [consentmode.NumTypes]consentmode.Value{consentmode.Granted, consentmode.Granted, consentmode.Granted, consentmode.Granted}}}
	if !g.Offer(g.Plan(&f, h.Query, nil), h) {
		t.Fatal("Offer refused")
	}
	g.Close()
	if s := <-status; s != 503 {
		t.Fatalf("first attempt answered %d, want 503", s)
	}
	fake.SetDown(false)
	for v := range consentmode.Vendor(consentmode.NumVendors) {
		if err := fake.WaitEvents(v, 1, 30*time.Second); err != nil {
			t.Fatal(err)
		}
	}
	d.Shutdown(time.Minute)
	if vs := fake.Violations(); len(vs) > 0 {
		t.Fatalf("violations: %v", vs)
	}
	for v := range consentmode.Vendor(consentmode.NumVendors) {
		evs := fake.Events(v)
		id := evs[0]["event_id"]
		if id == nil {
			id = evs[0]["eventId"]
		}
		if len(evs) != 1 || id != "evt-77" {
			t.Errorf("%s got %v", v, evs)
		}
		for _, r := range fake.Received(v) {
			if strings.Contains(r.Path+r.Query, tokens[v]) {
				t.Errorf("%s: the token is in the URL", v)
			}
		}
	}
}

// TestCoalescedThroughDelivery: with the lanes coalescing (as the proxy
// makes them: delivery's Tune with vendors.Merge), the events of many
// hits that wait while the API is down leave in far fewer calls than
// events, every event once, each call passing the schema.
func TestCoalescedThroughDelivery(t *testing.T) {
	t.Parallel()
	tokens := [3]string{"tok-meta-1", "tok-ms-2", "tok-tt-3"}
	fake, err := vendortest.Start(vendortest.Options{Tokens: tokens})
	if err != nil {
		t.Fatal(err)
	}
	defer fake.Close()
	fake.SetDown(true)
	u, _ := url.Parse(fake.URL)
	set := metrics.NewSet()
	d, err := delivery.Start(delivery.Options{MaxAge: time.Minute, QueueSize: 256, QueueBytes: 1 << 20, Workers: 2, PipelineConns: 1, Timeout: 5 * time.Second,
		Metrics: delivery.NewMetrics(set, []string{"vendor"}),
		Tune:    func(up *delivery.Upstream) { up.Merge, up.Batch = vendors.Merge, 100 }})
	if err != nil {
		t.Fatal(err)
	}
	g := gatewayOver(t, d, u, tokens)
	f := consentmode.VendorFacts{Consent: consentmode.State{Value: [consentmode.NumTypes]consentmode.Value{consentmode.Granted, consentmode.Granted, consentmode.Granted, consentmode.Granted}}}
	const n = 40
	for i := range n {
		h := &vendors.Hit{
			At:        time.Now(),
			Query:     fmt.Appendf(nil, "v=2&tid=G-1&en=purchase&ep.event_id=evt-%d&epn.value=9.5&cu=EUR&dl=https%%3A%%2F%%2Fshop.example%%2Fdone", i),
			UserAgent: []byte("UA/1"),
			ClientIP:  netip.MustParseAddr("203.0.113.9"),
		}
		if !g.Offer(g.Plan(&f, h.Query, nil), h) {
			t.Fatal("Offer refused")
		}
	}
	g.Close()
	fake.SetDown(false)
	for v := range consentmode.Vendor(consentmode.NumVendors) {
		if err := fake.WaitEvents(v, n, 30*time.Second); err != nil {
			t.Fatal(err)
		}
	}
	d.Shutdown(time.Minute)
	if vs := fake.Violations(); len(vs) > 0 {
		t.Fatalf("violations: %v", vs)
	}
	all := 0
	for v := range consentmode.Vendor(consentmode.NumVendors) {
		ids := map[any]int{}
		for _, e := range fake.Events(v) {
			id := e["event_id"]
			if id == nil {
				id = e["eventId"]
			}
			ids[id]++
		}
		for i := range n {
			if ids[fmt.Sprintf("evt-%d", i)] != 1 {
				t.Errorf("%s: evt-%d arrived %d times", v, i, ids[fmt.Sprintf("evt-%d", i)])
			}
		}
		calls := 0
		for _, r := range fake.Received(v) {
			if r.Status < 300 {
				calls++
			}
		}
		all += calls
		t.Logf("%s: %d events in %d accepted calls", v, n, calls)
	}
	if all > 3*n/4 {
		t.Errorf("%d accepted calls for %d events: the lanes do not coalesce", all, 3*n)
	}
}

// gatewayOver makes a Gateway with the three vendors on at u, each with
// its token, whose lanes are d's.
func gatewayOver(t *testing.T, d *delivery.Delivery, u *url.URL, tokens [3]string) *vendors.Gateway {
	t.Helper()
	c := &config.Vendors{EventIDParam: "ep.event_id", BatchMaxEvents: 100, Events: map[string]config.VendorEvent{
		"purchase": {Name: [3]string{"Purchase", "purchase", "CompletePayment"}, Conversion: true},
	}}
	for v := range consentmode.Vendor(consentmode.NumVendors) {
		c.On[v] = &config.Vendor{ID: "P1", Token: tokens[v], Endpoint: u, APIVersion: "v21.0"}
	}
	g, err := vendors.New(vendors.Options{Config: c, Sink: func(_ consentmode.Vendor, scheme, host string) (vendors.Sink, error) {
		return d.Lane(delivery.Upstream{Scheme: scheme, Host: host, Client: &fasthttp.HostClient{Addr: host}})
	}})
	if err != nil {
		t.Fatal(err)
	}
	return g
}
