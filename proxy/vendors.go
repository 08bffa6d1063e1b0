package proxy

import (
	"bytes"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/netip"
	"strconv"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/consentgate/consentgate/config"
	"github.com/consentgate/consentgate/consentmode"
	"github.com/consentgate/consentgate/declog"
	"github.com/consentgate/consentgate/delivery"
	"github.com/consentgate/consentgate/vendors"
)

// This file connects the other vendors (package vendors) to the hit path:
// each GA4 hit's vendor plan is made in prepare (so serve, explain and the
// decision log see the same one), offered to the vendors' builder (a
// copy into its queue, never waiting) once the hit's answer is set, and
// the envelope routes (/vendors/<name>/events)
// let merchants' backends send their own vendor calls through the same
// consent mapping.

// vendorsPrefix is the path of the envelope routes, under path_prefix.
const vendorsPrefix = "/vendors/"

// newVendors makes the vendors' gateway of cfg, or nil when no vendor is
// on. Its calls go to delivery once StartDelivery has run; before that
// (explain, tests without delivery) only Preview is used.
func (h *Handler) newVendors(cfg *config.Config) (*vendors.Gateway, error) {
	if !cfg.Vendors.Any() {
		return nil, nil
	}
	return vendors.New(vendors.Options{
		Config:  &cfg.Vendors,
		Log:     h.log,
		Metrics: h.metrics.set,
		Now:     h.now,
		Sink: func(_ consentmode.Vendor, scheme, host string) (vendors.Sink, error) {
			if h.delivery == nil {
				return nil, errNoDelivery
			}
			up := h.clients.get(scheme, host, cfg)
			return h.delivery.Lane(delivery.Upstream{Scheme: up.scheme, Host: up.host, Client: up.client})
		},
	})
}

var errNoDelivery = errors.New("proxy: delivery is not started")

// planVendors sets p.vendors for a decided GA4 hit that is not blocked;
// h.vendors is set. The consent facts (a TC string to parse) are read
// only for a hit with an event some vendor takes.
func (h *Handler) planVendors(p *prepared, in *consentmode.Input) {
	if in.Family != consentmode.FamilyGA4 {
		return
	}
	m := h.vendors.Events(in.Query, in.Body)
	if !m.Any() {
		return
	}
	f := consentmode.FactsOf(&p.decision, in.GPC, in.Query, in.Cookie)
	p.vendors = h.vendors.PlanMapped(&f, m)
}

// vendorHit is the copy-free view of the request the vendors' builder
// reads (Offer and Preview copy what they keep).
func vendorHit(req *fasthttp.Request, cookie []byte, at time.Time, client netip.Addr) vendors.Hit {
	return vendors.Hit{At: at, Query: req.URI().QueryString(), Body: req.Body(), Cookie: cookie,
		UserAgent: req.Header.UserAgent(), ClientIP: client}
}

// offerVendors hands an answered GA4 hit with a vendor plan to the
// vendors' builder (a plan that only blocks too: its events are counted).
// Only a hit the browser will not send again (its answer is not an error)
// is offered: a retried hit would reach the vendors twice.
func (h *Handler) offerVendors(ctx *fasthttp.RequestCtx, p *prepared, client netip.Addr, at time.Time) {
	if !p.vendors.Planned() || ctx.Response.StatusCode() >= 400 {
		return
	}
	var cookies [1024]byte
	hit := vendorHit(&ctx.Request, appendCookies(cookies[:0], &ctx.Request.Header), at, client)
	h.vendors.Offer(p.vendors, &hit)
}

// Errors of the envelope routes.
var (
	errNoEnvelope     = &Error{Status: fasthttp.StatusBadRequest, Reason: rejectNoEnvelope}
	errBadEnvelope    = &Error{Status: fasthttp.StatusBadRequest, Reason: rejectBadEnvelope}
	errVendorPayload  = &Error{Status: fasthttp.StatusBadRequest, Reason: rejectVendorPayload}
	errVendorNotFound = &Error{Status: fasthttp.StatusNotFound, Reason: rejectUnknownPath}
)

// envelopeHeader carries the consent of an envelope route's call.
const envelopeHeader = "Consent-Envelope"

// serveEnvelope answers POST /vendors/<name>/events: a merchant backend's
// own call to vendor name, with its visitor's consent in the
// Consent-Envelope header. The consent is decided as a GA4 hit carrying
// it would be, mapped by DecideVendors, and applied to the payload, which
// leaves (queued, with the gateway's token) without the envelope. No
// envelope, or a malformed one: 400, nothing leaves.
func (h *Handler) serveEnvelope(ctx *fasthttp.RequestCtx, rt *snapshot, rest []byte, start time.Time) {
	cfg := rt.cfg
	vc := h.vendors.Config() // the vendors section is read at start, as the builder's
	name, tail, _ := bytes.Cut(rest, []byte("/"))
	v, ok := consentmode.ParseVendor(string(name))
	if !ok || string(tail) != "events" || vc.On[v] == nil || vc.EnvelopeToken == "" {
		h.writeError(ctx, errVendorNotFound, -1)
		return
	}
	// The routes spend the merchant's vendor tokens: only its own
	// backends, holding vendors.envelope_token, may call them.
	if !bearer(ctx.Request.Header.Peek("Authorization"), vc.EnvelopeToken) {
		h.writeError(ctx, errUnauthorized, -1)
		return
	}
	if !ctx.IsPost() {
		h.writeError(ctx, errMethod, -1)
		ctx.Response.Header.Set("Allow", "POST")
		return
	}
	raw := ctx.Request.Header.Peek(envelopeHeader)
	env, err := vendors.ParseEnvelope(raw)
	if err != nil {
		e := errBadEnvelope
		if len(raw) == 0 {
			e = errNoEnvelope
		}
		h.writeError(ctx, e, -1)
		h.metrics.envelope(v, e.Reason.String())
		return
	}
	var w consentmode.Work
	in := consentmode.Input{
		Route: ga4Route, Family: consentmode.FamilyGA4,
		Query: env.Query, GPC: env.GPC, Region: cfg.Policy.Resolve(env.Region),
		Day: start.Unix() / 86400, Now: start.Unix(), Nonce: rand.Uint64(),
		Headers: &consentmode.HeaderFindings{},
	}
	d := consentmode.Decide(&in, cfg.Policy, &w)
	f := consentmode.FactsOf(&d, env.GPC, env.Query, nil)
	call := consentmode.DecideVendors(&f)[v]
	events, err := h.vendors.Forward(v, call, ctx.PostBody(), start)
	status := fasthttp.StatusAccepted
	switch {
	case err != nil && errors.Is(err, vendors.ErrPayload):
		h.writeError(ctx, errVendorPayload, -1)
		h.metrics.envelope(v, rejectVendorPayload.String())
		status = ctx.Response.StatusCode()
	case err != nil:
		// Delivery did not take the call (queue or spool full, closing):
		// 503 with Retry-After; the events before it are queued (the
		// vendors de-duplicate a retried call by event id).
		if asError(err) == nil {
			err = errQueueFull // delivery not (or no longer) there: try again
		}
		h.writeError(ctx, err, -1)
		ctx.Response.Header.Set("Consentgate-Queued-Events", strconv.Itoa(events))
		status = ctx.Response.StatusCode()
	default:
		if call.Action != consentmode.VendorSend || events == 0 {
			status = fasthttp.StatusOK // answered, nothing left
		}
		ctx.SetStatusCode(status)
		ctx.SetContentType("application/json")
		ctx.SetBodyString(fmt.Sprintf(`{"vendor":%q,"action":%q,"events":%d}`+"\n", v.String(), call.String(), events))
		h.metrics.envelope(v, call.Action.String())
	}
	if h.dlog != nil {
		var calls [consentmode.NumVendors]consentmode.VendorCall
		calls[v] = call
		mode := "none"
		if status == fasthttp.StatusAccepted {
			mode = "queue"
		}
		hit := declog.Hit{Query: env.Query, GPC: env.GPC}
		h.dlog.Add(declog.Entry{At: start, Hit: h.dlog.NextHit(), Decision: d, Config: cfg, Status: status, Delivery: mode,
			Vendors: calls, Envelope: true}, &hit)
	}
}

// ga4Route is the index of the GA4 collect route: the envelope's consent
// is decided as a GA4 hit's.
var ga4Route = func() int {
	for i, r := range consentmode.Routes {
		if r.Name == "ga4_collect" {
			return i
		}
	}
	panic("proxy: no ga4_collect route")
}()

// envelopePath returns the rest of path after path_prefix and
// /vendors/, and whether path is an envelope route's.
func envelopePath(cfg *config.Config, path []byte) ([]byte, bool) {
	if cfg.PathPrefix != "" {
		rest, ok := cutPrefixPath(path, cfg.PathPrefix)
		if !ok {
			return nil, false
		}
		path = rest
	}
	return bytes.CutPrefix(path, []byte(vendorsPrefix))
}

// explainVendors adds the hit's vendor calls to its explanation: what
// each vendor's call is, why, and the requests that would leave.
func (h *Handler) explainVendors(e *Explanation, p *prepared, req *fasthttp.Request, client netip.Addr) {
	if h.vendors == nil || p.decision.Family != consentmode.FamilyGA4 {
		return
	}
	e.SetVendors(p.vendors.Calls)
	var cookies [4096]byte
	cookie := appendCookies(cookies[:0], &req.Header)
	f := consentmode.FactsOf(&p.decision, h.gpc(&req.Header), req.URI().QueryString(), cookie)
	for v, c := range p.vendors.Calls {
		if c.Action == consentmode.VendorNone {
			continue
		}
		if e.VendorWhy == nil {
			e.VendorWhy = map[string][]string{}
		}
		why := []string{}
		for _, cond := range f.Applied(consentmode.Vendor(v)) {
			why = append(why, cond.String())
		}
		e.VendorWhy[consentmode.Vendor(v).String()] = why
	}
	if p.vendors.Sends() {
		hit := vendorHit(req, cookie, p.now, client)
		var skips [consentmode.NumVendors]vendors.Skip
		e.VendorCalls, skips = h.vendors.Preview(p.vendors, &hit)
		for v, s := range skips {
			if s != (vendors.Skip{}) {
				if e.VendorSkipped == nil {
					e.VendorSkipped = map[string]vendors.Skip{}
				}
				e.VendorSkipped[consentmode.Vendor(v).String()] = s
			}
		}
	}
}

// tuneVendorLane makes the lane of a vendor's endpoint coalesce: the
// events waiting for it leave as one call of up to
// vendors.batch_max_events (delivery's coalescing lanes); and reads
// TikTok's answers, which say an error in a 200's body. A host that is
// also where Google's hits go (a test setup) keeps an ordinary lane.
func tuneVendorLane(cfg *config.Config, up *delivery.Upstream) {
	if cfg.Upstream != nil && cfg.Upstream.Scheme == up.Scheme && cfg.Upstream.Host == up.Host {
		return
	}
	var on []consentmode.Vendor
	for v, o := range cfg.Vendors.On {
		if o != nil && o.Endpoint.Scheme == up.Scheme && o.Endpoint.Host == up.Host {
			on = append(on, consentmode.Vendor(v))
		}
	}
	if len(on) == 0 {
		return
	}
	up.Merge, up.Batch = vendors.Merge, cfg.Vendors.BatchMaxEvents
	// Answers are read for a refusal only on a host of one vendor (a test
	// may put all three on one): another vendor's answer says nothing of
	// TikTok's code.
	if len(on) == 1 {
		up.Refused = vendors.Refused(on[0])
	}
}
