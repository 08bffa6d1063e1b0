package vendors

import (
	"testing"

	"github.com/consentgate/consentgate/config"
	"github.com/consentgate/consentgate/consentmode"
)

func TestPlan(t *testing.T) {
	t.Parallel()
	g, err := New(Options{Config: testConfig(t, "https://api.example")})
	if err != nil {
		t.Fatal(err)
	}
	send := func(f consentmode.VendorFlags) consentmode.VendorCall {
		return consentmode.VendorCall{Action: consentmode.VendorSend, Flags: f, Rule: -1}
	}
	var none consentmode.VendorCall
	granted := consentmode.VendorFacts{Consent: state(G, G, G)}
	adDenied := consentmode.VendorFacts{Consent: state(D, G, G)}
	persDenied := consentmode.VendorFacts{Consent: state(G, G, D)}
	for _, tc := range []struct {
		name        string
		facts       consentmode.VendorFacts
		query, body string
		want        [3]consentmode.VendorCall
	}{
		{"purchase granted", granted, "v=2&en=purchase", "", [3]consentmode.VendorCall{send(0), send(0), send(0)}},
		{"unmapped event", granted, "v=2&en=page_view", "", [3]consentmode.VendorCall{}},
		{"no event name", granted, "v=2&tid=G-1", "", [3]consentmode.VendorCall{}},
		{"event mapped to some vendors", granted, "en=view_item", "", [3]consentmode.VendorCall{send(0), none, send(0)}},
		{"ad_storage denied blocks Meta and TikTok", adDenied, "en=purchase", "",
			[3]consentmode.VendorCall{{Action: consentmode.VendorBlock, Rule: 0}, {Action: consentmode.VendorSend, Flags: consentmode.FlagNoIDs, Rule: 0}, {Action: consentmode.VendorBlock, Rule: 0}}},
		{"ad_personalization denied: non-conversion only to Meta", persDenied, "en=add_to_cart", "",
			[3]consentmode.VendorCall{{Action: consentmode.VendorSend, Flags: consentmode.FlagOptOut, Rule: 2}, none, none}},
		{"ad_personalization denied: conversion to all", persDenied, "en=purchase", "",
			[3]consentmode.VendorCall{{Action: consentmode.VendorSend, Flags: consentmode.FlagOptOut, Rule: 2}, {Action: consentmode.VendorSend, Flags: consentmode.FlagConversionsOnly, Rule: 2}, {Action: consentmode.VendorSend, Flags: consentmode.FlagConversionsOnly, Rule: 2}}},
		{"batched body: a line's event counts", persDenied, "v=2&en=page_view", "en=scroll\r\nen=purchase&epn.value=3\n",
			[3]consentmode.VendorCall{{Action: consentmode.VendorSend, Flags: consentmode.FlagOptOut, Rule: 2}, {Action: consentmode.VendorSend, Flags: consentmode.FlagConversionsOnly, Rule: 2}, {Action: consentmode.VendorSend, Flags: consentmode.FlagConversionsOnly, Rule: 2}}},
		{"batched body: a line overrides the query's event", granted, "v=2&en=purchase", "en=page_view\nen=scroll", [3]consentmode.VendorCall{}},
		{"batched body: a line without en takes the query's", granted, "v=2&en=purchase", "epn.value=3", [3]consentmode.VendorCall{send(0), send(0), send(0)}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := g.Plan(&tc.facts, []byte(tc.query), []byte(tc.body))
			if p.Calls != tc.want {
				t.Errorf("Plan = %v, want %v", p.Calls, tc.want)
			}
			if p.Sends() != (tc.want[0].Action == consentmode.VendorSend || tc.want[1].Action == consentmode.VendorSend || tc.want[2].Action == consentmode.VendorSend) {
				t.Errorf("Sends() = %v", p.Sends())
			}
		})
	}
}

func TestPlanVendorOff(t *testing.T) {
	t.Parallel()
	c := testConfig(t, "https://api.example")
	c.On[consentmode.VendorTikTok] = nil
	g, err := New(Options{Config: c})
	if err != nil {
		t.Fatal(err)
	}
	f := consentmode.VendorFacts{Consent: state(G, G, G)}
	p := g.Plan(&f, []byte("en=purchase"), nil)
	if p.Calls[consentmode.VendorTikTok].Action != consentmode.VendorNone || p.Calls[consentmode.VendorMeta].Action != consentmode.VendorSend {
		t.Errorf("Plan = %v, want TikTok none, Meta send", p.Calls)
	}
}

// TestPlanAllocs pins Plan at zero allocations, with vendors on and with
// none (the GA4 hot path when no vendor is configured). Not parallel:
// allocations are counted process-wide.
func TestPlanAllocs(t *testing.T) {
	on, err := New(Options{Config: testConfig(t, "https://api.example")})
	if err != nil {
		t.Fatal(err)
	}
	off, err := New(Options{Config: &config.Vendors{BatchMaxEvents: 100}})
	if err != nil {
		t.Fatal(err)
	}
	f := consentmode.VendorFacts{Consent: state(G, D, D)}
	q, body := []byte(purchaseQuery), []byte("en=page_view\nen=purchase&epn.value=3\nen=add_to_cart")
	for name, g := range map[string]*Gateway{"vendors on": on, "no vendor": off} {
		var p Plan
		if n := testing.AllocsPerRun(200, func() { p = g.Plan(&f, q, body) }); n != 0 {
			t.Errorf("%s: Plan allocates %v times, want 0", name, n)
		}
		if g == on && !p.Sends() {
			t.Errorf("%s: the purchase does not send: %v", name, p.Calls)
		}
	}
}

// TestOfferAllocs pins Offer's cost on the hit path: the job and one
// buffer holding the copies of the hit's bytes. Not parallel; the
// builder waits in the sink meanwhile, so only Offer allocates.
func TestOfferAllocs(t *testing.T) {
	sink := newGatedSink()
	g, err := New(Options{Config: testConfig(t, "https://api.example"), Sink: func(consentmode.Vendor, string, string) (Sink, error) { return sink, nil }})
	if err != nil {
		t.Fatal(err)
	}
	f := consentmode.VendorFacts{Consent: state(G, G, G)}
	h := purchaseHit()
	p := g.Plan(&f, h.Query, h.Body)
	g.Offer(p, h)
	<-sink.started
	defer func() { close(sink.release); g.Close() }()
	if n := testing.AllocsPerRun(100, func() { g.Offer(p, h) }); n > 2 {
		t.Errorf("Offer allocates %v times, want at most 2", n)
	}
}
