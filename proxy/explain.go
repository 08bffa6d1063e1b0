package proxy

import (
	"encoding/json"
	"errors"
	"net/netip"
	"sort"
	"strings"

	"github.com/valyala/fasthttp"

	"github.com/consentgate/consentgate/config"
	"github.com/consentgate/consentgate/consentmode"
	"github.com/consentgate/consentgate/declog"
	"github.com/consentgate/consentgate/vendors"
)

// Explanation is what explain reports for one hit (the explain contract
// of docs/spec.md §4): its decision record and exactly what would be sent
// upstream. The CLI's explain and audit and the admin /debug/explain
// endpoint all produce it with the code the proxy runs (prepare), so it
// cannot differ from serve.
type Explanation struct {
	declog.Record
	// ClientIP is the visitor's address the decision and the forward used
	// (the upstream gets it truncated), and ClientIPFrom where it came
	// from: "given" (Hit.ClientIP, --client-ip), "x-forwarded-for" (the
	// header, believed from explain's stand-in peer 127.0.0.1 when that is
	// a trusted proxy) or "peer" (none given: the stand-in itself).
	ClientIP     string   `json:"client_ip"`
	ClientIPFrom string   `json:"client_ip_from"`
	Forward      *Forward `json:"forward,omitempty"`
	// Profile is consent.profile: "strict" or "google".
	Profile string `json:"profile"`
	// VendorCalls are the other vendors' calls the hit would make, built
	// by the code that sends them (tokens redacted), and VendorWhy the
	// rows of the vendor mapping that decided each vendor's call.
	VendorCalls []vendors.Call      `json:"vendor_calls,omitempty"`
	VendorWhy   map[string][]string `json:"vendor_why,omitempty"`
	// VendorSkipped counts, per vendor, the hit's events that would not
	// leave although the call is send (conversions only; incomplete).
	VendorSkipped map[string]vendors.Skip `json:"vendor_skipped,omitempty"`
	// Decision is the decision itself, for audit's invariant checks.
	Decision consentmode.Decision `json:"-"`
}

// Forward is the upstream request exactly as it would be sent.
type Forward struct {
	Method  string            `json:"method"`
	URL     string            `json:"url"`
	Headers map[string]string `json:"headers"`
	Body    string            `json:"body"`
}

// Hit describes a hit to explain in plain values; it is also the JSON
// body of POST /debug/explain.
type Hit struct {
	// Method defaults to GET, or POST when there is a body.
	Method string `json:"method"`
	// URL must be absolute: its host becomes the Host header.
	URL     string            `json:"url"`
	Headers map[string]string `json:"headers"`
	Body    string            `json:"body"`
	// Region, an ISO 3166 code, overrides the geo headers.
	Region string `json:"region"`
	// ClientIP is the visitor's address. Without it the hit comes from a
	// trusted proxy at 127.0.0.1, so X-Forwarded-For and geo headers count.
	ClientIP string `json:"client_ip"`
}

// Explain decides one hit as serve would and reports the decision and
// the upstream request it would send. It never sends anything. The error
// says what is wrong with a hit that cannot be described as a request.
func (h *Handler) Explain(hit Hit) (*Explanation, error) {
	req := fasthttp.AcquireRequest()
	defer fasthttp.ReleaseRequest(req)
	reg, client, err := hit.request(req)
	if err != nil {
		return nil, err
	}
	rt := h.snap.Load()
	cfg := rt.cfg
	peer := netip.AddrFrom4([4]byte{127, 0, 0, 1})
	from := "given"
	if !client.IsValid() {
		client = clientIP(&req.Header, peer, cfg.TrustedProxies)
		from = "x-forwarded-for"
		if client == peer {
			from = "peer"
		}
	}
	if reg.IsUnknown() {
		reg, _ = region(&req.Header, trusted(cfg.TrustedProxies, peer), cfg.GeoHeaders)
	}
	var p prepared
	p.route = -1
	p.now = h.now()
	reg = cfg.Policy.Resolve(reg)
	err = h.prepare(rt, req, reg, client, &p)
	defer h.release(&p)
	e := &Explanation{Record: declog.NewRecord(&p.decision, cfg, p.route >= 0), Decision: p.decision, ClientIP: client.String(), ClientIPFrom: from, Profile: cfg.Policy.Profile.String()}
	e.AddSaid(&p.decision)
	if err == nil {
		h.explainVendors(e, &p, req, client)
	}
	if he := asError(err); he != nil {
		e.Error, e.Status = he.Reason.String(), he.Status
		e.Action = consentmode.ActionBlock.String()
		return e, nil
	}
	switch {
	case p.decision.Family == consentmode.FamilyScript:
		e.Delivery = config.DeliverySync.String()
		e.Forward = &Forward{Method: "GET", URL: string(scriptURI(nil, p.up, cfg, p.path, req.URI().QueryArgs())), Headers: map[string]string{"Host": p.up.host}}
	case p.out == nil:
		e.Status = fasthttp.StatusNoContent
	default:
		e.Delivery = config.DeliverySync.String()
		if r := &consentmode.Routes[p.route]; queueable(r) {
			e.Delivery = cfg.Delivery.Mode(r.Family).String()
		}
		e.Forward = forwardOf(&p.out.req)
	}
	return e, nil
}

// forwardOf copies an upstream request into plain values.
func forwardOf(out *fasthttp.Request) *Forward {
	f := &Forward{Method: string(out.Header.Method()), URL: string(out.URI().FullURI()), Headers: map[string]string{"Host": string(out.URI().Host())}, Body: string(out.Body())}
	for k, v := range out.Header.All() {
		name := string(k)
		if prev, ok := f.Headers[name]; ok {
			f.Headers[name] = prev + ", " + string(v)
		} else {
			f.Headers[name] = string(v)
		}
	}
	return f
}

// serveExplain answers POST /debug/explain with the explain --json answer
// for the hit described in the JSON body.
func (h *Handler) serveExplain(ctx *fasthttp.RequestCtx) {
	if !ctx.IsPost() {
		ctx.Response.Header.Set("Allow", "POST")
		ctx.Error("POST a JSON hit: {\"method\":\"GET\",\"url\":\"https://host/g/collect?...\",\"headers\":{},\"body\":\"\",\"region\":\"DE\"}\n", fasthttp.StatusMethodNotAllowed)
		return
	}
	var hit Hit
	if err := json.Unmarshal(ctx.PostBody(), &hit); err != nil {
		ctx.Error("invalid JSON: "+err.Error()+"\n", fasthttp.StatusBadRequest)
		return
	}
	e, err := h.Explain(hit)
	if err != nil {
		ctx.Error(err.Error()+"\n", fasthttp.StatusBadRequest)
		return
	}
	b, _ := json.MarshalIndent(e, "", "  ") // a map/string struct always marshals
	ctx.SetContentType("application/json")
	ctx.SetBody(append(b, '\n'))
}

// request writes the hit into req and parses its region and client IP
// (zero when not given).
func (hit *Hit) request(req *fasthttp.Request) (reg consentmode.Region, client netip.Addr, err error) {
	if !strings.HasPrefix(hit.URL, "http://") && !strings.HasPrefix(hit.URL, "https://") {
		return reg, client, errors.New("explain: the URL must be absolute (https://host/path?query)")
	}
	if hit.Region != "" {
		r, ok := consentmode.ParseRegion([]byte(hit.Region))
		if !ok {
			return reg, client, errors.New("explain: region " + hit.Region + " is not an ISO 3166 code")
		}
		reg = r
	}
	if hit.ClientIP != "" {
		ip, perr := netip.ParseAddr(hit.ClientIP)
		if perr != nil {
			return reg, client, errors.New("explain: client IP " + hit.ClientIP + " is not an IP address")
		}
		client = ip
	}
	method := hit.Method
	if method == "" {
		method = fasthttp.MethodGet
		if hit.Body != "" {
			method = fasthttp.MethodPost
		}
	}
	req.Header.SetMethod(strings.ToUpper(method))
	req.SetRequestURI(hit.URL)
	req.Header.SetHostBytes(req.URI().Host())
	names := make([]string, 0, len(hit.Headers))
	for k := range hit.Headers {
		names = append(names, k)
	}
	sort.Strings(names)
	for _, k := range names {
		req.Header.Set(k, hit.Headers[k])
	}
	if hit.Body != "" {
		req.SetBodyString(hit.Body)
	}
	return reg, client, nil
}
