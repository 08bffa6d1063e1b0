// Package vendors turns decided GA4 hits into server-side conversion calls
// for other advertising vendors (Meta Conversions API, Microsoft
// Advertising UET Conversions API, TikTok Events API) and hands them to
// durable delivery, and enforces consent on calls merchants' own backends
// send through the gateway (the envelope routes). What each vendor may get
// comes from consentmode.DecideVendors alone; this package builds the
// payloads that decision allows.
//
// It must not import proxy or declog.
package vendors

import (
	"net/netip"
	"time"

	"github.com/valyala/fasthttp"
	"go.uber.org/zap"

	"github.com/VictoriaMetrics/metrics"

	"github.com/consentgate/consentgate/config"
	"github.com/consentgate/consentgate/consentmode"
)

// TagBase is added to a vendor's index to make its delivery tag: the
// proxy's route tags are below it.
const TagBase = 1000

// Sink takes a built request for durable delivery (a delivery.Lane).
type Sink interface {
	Accept(tag int, out *fasthttp.Request, path, query []byte, at time.Time) error
}

// Options are the Gateway's settings and collaborators.
type Options struct {
	Config *config.Vendors
	// Sink returns the delivery lane of a vendor's endpoint (scheme, host).
	// Nil makes a Gateway that only plans and previews (explain): Offer
	// refuses, Forward returns ErrPreviewOnly.
	Sink    func(v consentmode.Vendor, scheme, host string) (Sink, error)
	Log     *zap.Logger
	Metrics *metrics.Set
	Now     func() time.Time
}

// Hit is a GA4 hit handed to Offer: copied by Offer, so the caller may
// reuse its buffers at once.
type Hit struct {
	At        time.Time
	Query     []byte // the hit's query string as the browser sent it
	Body      []byte // its body (batched events, one per line)
	Cookie    []byte // its Cookie header
	UserAgent []byte
	ClientIP  netip.Addr
}

// Plan is what a hit's events mean for each vendor: Calls[v] is VendorNone
// when v is off or none of the hit's events maps to v, else
// DecideVendors' call.
type Plan struct {
	Calls [consentmode.NumVendors]consentmode.VendorCall
}
