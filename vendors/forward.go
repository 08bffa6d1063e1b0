package vendors

import (
	"bytes"
	"encoding/json"
	"fmt"
	"time"

	"github.com/consentgate/consentgate/consentmode"
)

// Forward enforces call c on a merchant backend's own payload for vendor
// v (the vendor's documented JSON: an object with a "data" array of
// events) and hands it to v's sink with the ids and token the gateway
// holds. A block queues nothing and returns 0, nil; a send removes what
// the flags take out with the builder's code (apply), drops events that
// are not conversions under FlagConversionsOnly, and returns the events
// handed on. Malformed JSON and more events than the API takes are
// errors (ErrPayload, ErrTooMany). When the lane refuses an event (full,
// closing), Forward stops there and returns the events queued before it
// with the lane's error; the rest are counted dropped (sink_refused).
// payload is not kept.
func (g *Gateway) Forward(v consentmode.Vendor, c consentmode.VendorCall, payload []byte, at time.Time) (int, error) {
	if int(v) >= consentmode.NumVendors || g.cfg.On[v] == nil {
		return 0, ErrVendorOff
	}
	top, evs, err := decodePayload(v, payload)
	if err != nil {
		return 0, err
	}
	switch c.Action {
	case consentmode.VendorSend:
	case consentmode.VendorBlock:
		g.m.events[v][actionBlock].Add(len(evs))
		return 0, nil
	default:
		return 0, nil
	}
	var w consentmode.Work
	kept := evs[:0]
	for _, ev := range evs {
		if g.apply(v, c, ev.(map[string]any), &w) {
			kept = append(kept, ev)
		}
	}
	g.m.events[v][actionDropped].Add(len(evs) - len(kept))
	// One call per event, as the builder's: each is spooled and counted
	// on its own, and the lane merges them again.
	for i, ev := range kept {
		if err := g.send(v, top, []any{ev}, at); err != nil {
			// The rest is not handed on either: counted with the one
			// refused, and the caller hears how many were queued.
			g.m.dropped[v][causeSinkRefused].Add(len(kept) - i - 1)
			return i, err
		}
	}
	return len(kept), nil
}

// decodePayload reads a vendor payload: a JSON object whose "data" is an
// array of 1 to MaxEvents objects.
func decodePayload(v consentmode.Vendor, b []byte) (map[string]any, []any, error) {
	d := json.NewDecoder(bytes.NewReader(b))
	d.UseNumber()
	var top map[string]any
	if err := d.Decode(&top); err != nil || top == nil {
		return nil, nil, fmt.Errorf("%w: not a JSON object", ErrPayload)
	}
	if d.More() {
		return nil, nil, fmt.Errorf("%w: data after the object", ErrPayload)
	}
	evs, ok := top["data"].([]any)
	if !ok || len(evs) == 0 {
		return nil, nil, fmt.Errorf("%w: no data array of events", ErrPayload)
	}
	if len(evs) > Specs[v].MaxEvents {
		return nil, nil, fmt.Errorf("%w: %d events, at most %d", ErrTooMany, len(evs), Specs[v].MaxEvents)
	}
	for _, ev := range evs {
		if _, ok := ev.(map[string]any); !ok {
			return nil, nil, fmt.Errorf("%w: an event is not an object", ErrPayload)
		}
	}
	delete(top, "data")
	return top, evs, nil
}
