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
)

// Explanation is the explain contract of product.md: the decision for one
// hit and exactly what would be sent upstream. The CLI's explain, the
// admin /debug/explain endpoint and audit all produce it with the same
// code the proxy runs (prepare), so it cannot differ from serve.
type Explanation struct {
	Route        string            `json:"route"`
	Family       string            `json:"family"`
	Region       string            `json:"region"`
	PolicyRegion string            `json:"policy_region"`
	Consent      map[string]string `json:"consent"`
	Sources      map[string]string `json:"sources"`
	Claimed      map[string]string `json:"claimed"`
	// Said is what each of the hit's consent inputs (gcs, gcd, npa, mp,
	// tcf) said about each type, before merging; inputs that said nothing
	// are left out.
	Said     map[string]map[string]string `json:"said"`
	Action   string                       `json:"action"`
	Enforced bool                         `json:"enforced"`
	Reasons  []string                     `json:"reasons"`
	Removed  []string                     `json:"removed"`
	Status   int                          `json:"status,omitempty"` // what the browser gets when nothing is forwarded
	Error    string                       `json:"error,omitempty"`  // why the hit was rejected
	Forward  *Forward                     `json:"forward,omitempty"`
	// Delivery is how a forwarded hit leaves: "queue" (the browser gets
	// 204 at once, the gateway delivers with retries) or "sync" (the
	// browser waits for the upstream), as configured in delivery.*.
	Delivery      string `json:"delivery,omitempty"`
	PolicyVersion string `json:"policy_version"`

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

// ExplainInput describes a hit to explain.
type ExplainInput struct {
	Request *fasthttp.Request
	// Peer is the address the request comes from (default 127.0.0.1, a
	// trusted proxy, so X-Forwarded-For and geo headers in Request count).
	Peer netip.Addr
	// ClientIP, when valid, is used as the visitor's address.
	ClientIP netip.Addr
	// Region, when set, overrides the geo headers.
	Region consentmode.Region
}

// Explain decides one hit as serve would and reports the decision and
// the upstream request it would send. It never sends anything.
func (h *Handler) Explain(in ExplainInput) *Explanation {
	rt := h.rt.Load()
	cfg := rt.cfg
	peer := in.Peer
	if !peer.IsValid() {
		peer = netip.AddrFrom4([4]byte{127, 0, 0, 1})
	}
	req := in.Request
	peerTrusted := trusted(cfg.TrustedProxies, peer)
	client := in.ClientIP
	if !client.IsValid() {
		client = clientIP(&req.Header, peer, cfg.TrustedProxies)
	}
	reg := in.Region
	if reg.IsUnknown() {
		reg, _ = region(&req.Header, peerTrusted, cfg.GeoHeaders)
	}
	var p prepared
	p.route = -1
	p.now = h.now()
	err := h.prepare(rt, req, peer, reg, client, &p)
	defer h.release(&p)
	e := explanation(cfg, &p)
	if he := asError(err); he != nil {
		e.Error, e.Status = he.Reason.String(), he.Status
		e.Action = consentmode.ActionBlock.String()
		return e
	}
	if p.decision.Family == consentmode.FamilyScript {
		e.Delivery = "sync"
		e.Forward = &Forward{Method: "GET", URL: string(scriptURI(nil, p.up, cfg, p.path, req.URI().QueryArgs())), Headers: map[string]string{"Host": p.up.host}}
		return e
	}
	if p.out == nil {
		e.Status = fasthttp.StatusNoContent
		return e
	}
	e.Delivery = config.DeliverySync.String()
	if r := &consentmode.Routes[p.route]; queueable(r) {
		e.Delivery = cfg.Delivery.Mode(r.Family).String()
	}
	out := &p.out.req
	f := &Forward{Method: string(out.Header.Method()), URL: string(out.URI().FullURI()), Headers: map[string]string{"Host": string(out.URI().Host())}, Body: string(out.Body())}
	for k, v := range out.Header.All() {
		name := string(k)
		if prev, ok := f.Headers[name]; ok {
			f.Headers[name] = prev + ", " + string(v)
		} else {
			f.Headers[name] = string(v)
		}
	}
	e.Forward = f
	return e
}

func explanation(cfg *config.Config, p *prepared) *Explanation {
	d := &p.decision
	e := &Explanation{
		Consent:       map[string]string{},
		Sources:       map[string]string{},
		Claimed:       map[string]string{},
		Said:          map[string]map[string]string{},
		Reasons:       d.Reasons.Strings(),
		Removed:       d.Removed.Names(),
		Enforced:      cfg.Enforce,
		PolicyVersion: cfg.PolicyVersion,
		Decision:      *d,
	}
	if p.route < 0 {
		return e
	}
	e.Route = consentmode.Routes[d.Route].Name
	e.Family = d.Family.String()
	e.Region = d.Region.String()
	e.PolicyRegion = "default"
	if !d.PolicyRegion.IsUnknown() {
		e.PolicyRegion = d.PolicyRegion.String()
	} else if d.Region.IsUnknown() {
		e.PolicyRegion = "unknown"
	}
	e.Action = d.Action.String()
	for t := range consentmode.NumTypes {
		name := consentmode.Type(t).String()
		e.Consent[name] = d.Consent.Value[t].String()
		e.Sources[name] = d.SourceName(consentmode.Type(t), cfg.Policy)
		if v := d.Claimed[t]; v != consentmode.Unset {
			e.Claimed[name] = v.String()
		}
		for _, in := range []struct {
			name string
			v    *[consentmode.NumTypes]consentmode.Value
		}{{"gcs", &d.Said.GCS}, {"gcd", &d.Said.GCD}, {"npa", &d.Said.NPA}, {"mp", &d.Said.MP}, {"tcf", &d.Said.TCF}} {
			if v := in.v[t]; v != consentmode.Unset {
				if e.Said[name] == nil {
					e.Said[name] = map[string]string{}
				}
				e.Said[name][in.name] = v.String()
			}
		}
	}
	return e
}

// explainRequest is the body of POST /debug/explain.
type explainRequest struct {
	Method   string            `json:"method"`
	URL      string            `json:"url"`
	Headers  map[string]string `json:"headers"`
	Body     string            `json:"body"`
	Region   string            `json:"region"`
	ClientIP string            `json:"client_ip"`
}

// serveExplain answers POST /debug/explain with the explain --json answer
// for the hit described in the JSON body.
func (h *Handler) serveExplain(ctx *fasthttp.RequestCtx) {
	if !ctx.IsPost() {
		ctx.Response.Header.Set("Allow", "POST")
		ctx.Error("POST a JSON hit: {\"method\":\"GET\",\"url\":\"https://host/g/collect?...\",\"headers\":{},\"body\":\"\",\"region\":\"DE\"}\n", fasthttp.StatusMethodNotAllowed)
		return
	}
	var r explainRequest
	if err := json.Unmarshal(ctx.PostBody(), &r); err != nil {
		ctx.Error("invalid JSON: "+err.Error()+"\n", fasthttp.StatusBadRequest)
		return
	}
	req, in, err := BuildExplainRequest(r.Method, r.URL, r.Headers, r.Body, r.Region, r.ClientIP)
	if err != nil {
		ctx.Error(err.Error()+"\n", fasthttp.StatusBadRequest)
		return
	}
	defer fasthttp.ReleaseRequest(req)
	b, _ := json.MarshalIndent(h.Explain(in), "", "  ") // a map/string struct always marshals
	ctx.SetContentType("application/json")
	ctx.SetBody(append(b, '\n'))
}

// BuildExplainRequest turns a described hit into the request explain
// decides on. The URL must be absolute (its host becomes the Host header).
// The caller releases the request with fasthttp.ReleaseRequest.
func BuildExplainRequest(method, url string, headers map[string]string, body, region, client string) (*fasthttp.Request, ExplainInput, error) {
	var in ExplainInput
	if method == "" {
		method = fasthttp.MethodGet
		if body != "" {
			method = fasthttp.MethodPost
		}
	}
	if !strings.HasPrefix(url, "http://") && !strings.HasPrefix(url, "https://") {
		return nil, in, errors.New("explain: the URL must be absolute (https://host/path?query)")
	}
	req := fasthttp.AcquireRequest()
	req.Header.SetMethod(strings.ToUpper(method))
	req.SetRequestURI(url)
	req.Header.SetHostBytes(req.URI().Host())
	names := make([]string, 0, len(headers))
	for k := range headers {
		names = append(names, k)
	}
	sort.Strings(names)
	for _, k := range names {
		req.Header.Set(k, headers[k])
	}
	if body != "" {
		req.SetBodyString(body)
	}
	in.Request = req
	if region != "" {
		r, ok := consentmode.ParseRegion([]byte(region))
		if !ok {
			fasthttp.ReleaseRequest(req)
			return nil, in, errors.New("explain: region " + region + " is not an ISO 3166 code")
		}
		in.Region = r
	}
	if client != "" {
		ip, err := netip.ParseAddr(client)
		if err != nil {
			fasthttp.ReleaseRequest(req)
			return nil, in, errors.New("explain: client IP " + client + " is not an IP address")
		}
		in.ClientIP = ip
	}
	return req, in, nil
}
