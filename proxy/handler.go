package proxy

import (
	"bytes"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"net/netip"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/valyala/fasthttp"
	"go.uber.org/zap"

	"github.com/consentgate/consentgate/config"
	"github.com/consentgate/consentgate/consentmode"
	"github.com/consentgate/consentgate/declog"
	"github.com/consentgate/consentgate/delivery"
	"github.com/consentgate/consentgate/vendors"
)

// Options are the Handler's collaborators; zero values are production defaults.
type Options struct {
	// Dial replaces the upstream dialer (tests point it at a fake upstream).
	Dial fasthttp.DialFunc
	// Now replaces the clock (tests pin the day of the ephemeral ids).
	Now func() time.Time
	// RouteScheme replaces "https" for the routes' Google hosts (tests
	// run a plain-HTTP fake upstream).
	RouteScheme string
}

// Handler serves the public listener. Its configuration is swapped whole
// by SetConfig; each request loads it once and uses that copy throughout.
type Handler struct {
	log *zap.Logger
	// clock is the injected clock (Options.Now); nil in production, where
	// now reads the system clock and requestTime fasthttp's.
	clock   func() time.Time
	clients *clients
	snap    atomic.Pointer[snapshot]
	ready   atomic.Bool
	reqs    sync.Pool // *outbound
	metrics *Metrics
	dlog    *declog.Log
	scripts *scriptCache
	// delivery is nil until StartDelivery: every hit is then proxied.
	delivery *delivery.Delivery
	// vendors builds the other vendors' calls (nil: no vendor is on). It
	// keeps the vendors section of the first config: changing it needs a
	// restart.
	vendors *vendors.Gateway
	// routeScheme is the scheme of the routes' own hosts (subdomain style).
	routeScheme string
	// adminListen is the admin address of the first config: the one
	// bound (listen addresses change only with a restart).
	adminListen string
	// sites caches the registrable domain of the Host for the CORS default.
	sites siteCache
}

// snapshot is one configuration with everything derived from it,
// swapped whole by SetConfig.
type snapshot struct {
	cfg *config.Config
	// routes holds the upstream of each entry of consentmode.Routes.
	routes []upstream
	// lanes holds the delivery lane of each queued route (nil: the
	// route is proxied synchronously).
	lanes []*delivery.Lane
}

// NewHandler returns a Handler serving cfg. It is not ready until
// MarkReady. Close releases its script cache.
func NewHandler(cfg *config.Config, log *zap.Logger, m *Metrics, dlog *declog.Log, opts Options) (*Handler, error) {
	if opts.RouteScheme == "" {
		opts.RouteScheme = "https"
	}
	h := &Handler{log: log, clock: opts.Now, clients: newClients(opts.Dial), metrics: m, dlog: dlog, routeScheme: opts.RouteScheme,
		adminListen: cfg.AdminListen}
	h.reqs.New = func() any { return new(outbound) }
	sc, err := newScriptCache(cfg.Cache.MaxBytes)
	if err != nil {
		return nil, fmt.Errorf("script cache: %w", err)
	}
	h.scripts = sc
	if h.vendors, err = h.newVendors(cfg); err != nil {
		sc.close()
		return nil, fmt.Errorf("vendors: %w", err)
	}
	h.SetConfig(cfg)
	return h, nil
}

// Close stops the script cache's goroutines and delivery (without a
// drain: Server.Run drains at shutdown).
func (h *Handler) Close() {
	h.scripts.close()
	if h.vendors != nil {
		h.vendors.Close()
	}
	if h.delivery != nil {
		h.delivery.Shutdown(0)
	}
}

// StartDelivery opens the spool (when configured), replays what it holds
// and starts the workers. Until it is called, every hit is proxied
// synchronously (explain and tests need no spool). The delivery settings
// are read once, here: changing them needs a restart.
func (h *Handler) StartDelivery() error {
	cfg := h.Config()
	dc := cfg.Delivery
	d, err := delivery.Start(delivery.Options{
		MaxAge: dc.MaxAge, QueueSize: dc.QueueSize, QueueBytes: dc.QueueBytes, Workers: dc.Workers, PipelineConns: dc.PipelineConns, HTTP2: dc.HTTP2,
		SpoolDir: dc.SpoolDir, SpoolMaxBytes: dc.SpoolMaxBytes, SpoolSegmentBytes: dc.SpoolSegmentBytes, SpoolSync: dc.SpoolSync,
		Timeout: cfg.Timeouts.Upstream,
		Log:     h.log, Metrics: h.metrics.delivery, Now: h.now, LabelOf: deliveryLabel, Observe: h.metrics.upstream,
		Client: func(scheme, host string) *fasthttp.HostClient { return h.clients.get(scheme, host, cfg).client },
		Tune:   func(up *delivery.Upstream) { tuneVendorLane(cfg, up) },
	})
	if err != nil {
		return err
	}
	h.delivery = d
	h.SetConfig(cfg) // attach lanes to the queued routes
	return nil
}

// SetConfig swaps in a new configuration. Requests in flight finish with
// the one they started with.
func (h *Handler) SetConfig(cfg *config.Config) {
	rt := &snapshot{cfg: cfg, routes: make([]upstream, len(consentmode.Routes)), lanes: make([]*delivery.Lane, len(consentmode.Routes))}
	for i, r := range consentmode.Routes {
		if cfg.Upstream != nil {
			rt.routes[i] = h.clients.get(cfg.Upstream.Scheme, cfg.Upstream.Host, cfg)
		} else {
			rt.routes[i] = h.clients.get(h.routeScheme, r.Host, cfg)
		}
		if h.delivery != nil && queueable(&r) && cfg.Delivery.Mode(r.Family) == config.DeliveryQueue {
			up := rt.routes[i]
			l, err := h.delivery.Lane(delivery.Upstream{Scheme: up.scheme, Host: up.host, Client: up.client})
			if err != nil {
				h.log.Error("delivery: lane not started; the route is proxied synchronously", zap.String("route", r.Name), zap.Error(err))
				continue
			}
			rt.lanes[i] = l
		}
	}
	h.snap.Store(rt)
}

// Config returns the configuration in use.
func (h *Handler) Config() *config.Config { return h.snap.Load().cfg }

// MarkReady sets the readiness reported by /readyz.
func (h *Handler) MarkReady(ready bool) { h.ready.Store(ready) }

// outbound is one upstream request being built; pooled.
type outbound struct {
	req    fasthttp.Request
	work   consentmode.Work
	uri    []byte // scratch: the script cache key
	cookie []byte // the client's Cookie header, rebuilt without allocating
	path   []byte // scratch for a Floodlight path
	dry    []byte // the Cookie header of a dry run
	hdr    []byte // scratch: a forwarded header value with e-mails redacted
	// headers is what copyHeaders left out, for Decide (kept here, not
	// on the stack: Decide's Input would move it to the heap).
	headers consentmode.HeaderFindings
}

// prepared is the outcome of preparing one hit.
type prepared struct {
	now      time.Time // the request's time: its day keys the ephemeral ids
	cfg      *config.Config
	path     []byte // the request path without path_prefix (borrowed)
	route    int
	decision consentmode.Decision
	up       upstream
	lane     *delivery.Lane // nil: proxied synchronously
	out      *outbound      // nil when nothing is forwarded
	queued   bool           // handed to delivery (or refused by it)
	vendors  vendors.Plan   // the other vendors' calls (GA4 hits)
}

// prepare matches the route, decides, and (unless the hit is blocked)
// builds the upstream request in p.out. It reads req and never changes it.
// The caller releases p.out with h.release.
func (h *Handler) prepare(rt *snapshot, req *fasthttp.Request, region consentmode.Region, client netip.Addr, p *prepared) error {
	cfg := rt.cfg
	p.cfg = cfg
	path, err := h.matchRoute(cfg, req, p)
	if err != nil {
		return err
	}
	route := &consentmode.Routes[p.route]
	p.up, p.lane = rt.routes[p.route], rt.lanes[p.route]
	routePath, matrix := route.SplitPath(path)

	// The Work's buffers back the upstream request (SetBodyRaw does not
	// copy), so they travel with it and return to the pool together.
	o := h.reqs.Get().(*outbound)
	p.out = o
	out := &o.req
	out.Reset()
	out.Header.SetMethodBytes(req.Header.Method())
	o.headers = consentmode.HeaderFindings{}
	copyHeaders(&out.Header, &req.Header, cfg.GeoHeaders, &o.headers, &o.work, &o.hdr)
	o.cookie = appendCookies(o.cookie[:0], &req.Header)
	in := consentmode.Input{
		Route:      p.route,
		Family:     route.Family,
		Kind:       route.Kind,
		Path:       routePath,
		PathTag:    route.PathTag(path),
		Query:      req.URI().QueryString(),
		Matrix:     matrix,
		Body:       req.Body(),
		Cookie:     o.cookie,
		GPC:        h.gpc(&req.Header),
		Region:     region,
		Day:        p.now.Unix() / 86400,
		Now:        p.now.Unix(),
		Nonce:      rand.Uint64(), // ids of a hit without _p: one per hit
		ClientIP:   client,
		TagGateway: cfg.Upstream != nil,
		Headers:    &o.headers,
	}
	p.decision = consentmode.Decide(&in, cfg.Policy, &o.work)
	d := &p.decision
	if d.Reasons.Has(consentmode.ReasonInvalidBody) && d.Action == consentmode.ActionBlock {
		return errInvalidBody
	}
	if h.vendors != nil && d.Action != consentmode.ActionBlock { // no call at all on the hot path without vendors
		// A hit the gateway blocks (a tag not allowed, an e-mail it cannot
		// redact, basic mode) makes no vendor call either.
		h.planVendors(p, &in)
	}
	if route.Family == consentmode.FamilyScript {
		h.release(p) // scripts are fetched by serveScript
		if d.Action == consentmode.ActionBlock {
			return errTagNotAllowed
		}
		return nil
	}
	if d.Action == consentmode.ActionBlock && cfg.Enforce {
		h.release(p) // nothing is forwarded
		return nil
	}
	enforce := cfg.Enforce && d.Action != consentmode.ActionBlock
	buildOutbound(cfg, route, p, &in, routePath, enforce)
	return nil
}

// matchRoute checks the request's path and body and finds its route
// (p.route, p.path). It returns the path without path_prefix.
func (h *Handler) matchRoute(cfg *config.Config, req *fasthttp.Request, p *prepared) ([]byte, error) {
	path := req.URI().PathOriginal()
	if !cleanPath(path) {
		return nil, errBadPath
	}
	if err := h.checkBody(req); err != nil {
		return nil, err
	}
	if cfg.PathPrefix != "" {
		rest, ok := cutPrefixPath(path, cfg.PathPrefix)
		if !ok {
			return nil, errNotFound
		}
		path = rest
	}
	ri, ok := consentmode.MatchRoute(path)
	if !ok {
		if bytes.IndexByte(path, ';') >= 0 {
			return nil, errBadPath
		}
		return nil, errNotFound
	}
	route := &consentmode.Routes[ri]
	if route.TagGatewayOnly && cfg.Upstream == nil {
		return nil, errNotFound
	}
	if !route.HasMatrix() && bytes.IndexByte(path, ';') >= 0 {
		return nil, errBadPath // ';' parameters only where the route has a matrix
	}
	p.route = ri
	p.path = path
	if route.Family == consentmode.FamilyMP && !cfg.Policy.MPEnabled {
		return nil, errRouteOff
	}
	if !route.Allows(req.Header.Method()) {
		return nil, errMethod
	}
	return path, nil
}

// buildOutbound completes the upstream request of p.out, whose headers
// copyHeaders set: method, URI, Cookie, the tag gateway's client headers
// and the body. With enforce false (a dry run) the hit goes as it came.
func buildOutbound(cfg *config.Config, route *consentmode.Route, p *prepared, in *consentmode.Input, routePath []byte, enforce bool) {
	o, d := p.out, &p.decision
	w := &o.work
	out := &o.req

	// The URI, set part by part (no string to parse again): scheme and host
	// of the upstream, the path prefix kept in tag-gateway style, the
	// rewritten matrix and query.
	upPath := o.path[:0]
	if cfg.Upstream != nil {
		upPath = append(upPath, cfg.PathPrefix...)
	}
	q := in.Query
	if enforce {
		q = w.Query
	}
	if route.HasMatrix() {
		m := in.Matrix
		if enforce {
			m = w.Matrix
		}
		upPath = route.AppendPath(upPath, routePath, m)
		if len(q) == 0 {
			// Floodlight ends its matrix with '?'. fasthttp drops an
			// empty query, so the '?' goes into the path.
			upPath = append(upPath, '?')
		}
	} else {
		upPath = append(upPath, routePath...)
	}
	o.path = upPath
	uri := out.URI()
	// Sent as given, as the upstream client does (DisablePathNormalizing);
	// explain prints it the same way.
	uri.DisablePathNormalizing = true
	uri.SetScheme(p.up.scheme)
	uri.SetHost(p.up.host)
	uri.SetPathBytes(upPath)
	uri.SetQueryStringBytes(q)

	cookie := w.Cookie
	if !enforce {
		// A dry run forwards the hit as it came, but a site's own cookies
		// (sessions) never travel: only Google's.
		o.dry = consentmode.AppendGoogleCookies(o.dry[:0], in.Cookie)
		cookie = o.dry
	}
	if len(cookie) > 0 {
		out.Header.SetBytesV("Cookie", cookie)
	}
	if in.TagGateway && in.ClientIP.IsValid() {
		// Tag gateway style: the client IP and region as headers.
		ip := in.ClientIP
		if enforce {
			ip = d.SentIP(ip)
		}
		var buf [64]byte
		out.Header.SetBytesV("X-Forwarded-For", ip.AppendTo(buf[:0]))
		if !in.Region.IsUnknown() {
			var rb [6]byte
			out.Header.SetBytesV("X-Forwarded-CountryRegion", append(rb[:0], in.Region.String()...))
		}
	}
	body := in.Body
	if enforce && len(in.Body) > 0 {
		body = w.Body
	}
	if len(body) > 0 {
		out.SetBodyRaw(body)
	}
}

// release returns the outbound request of p to the pool.
func (h *Handler) release(p *prepared) {
	if p.out != nil {
		p.out.req.SetBodyRaw(nil)
		h.reqs.Put(p.out)
		p.out = nil
	}
}

// appendCookies appends the request's cookies as one Cookie header value.
// fasthttp may already have parsed them; rebuilding from its list costs
// no allocation, unlike Peek("Cookie") on a parsed header.
func appendCookies(dst []byte, h *fasthttp.RequestHeader) []byte {
	for k, v := range h.Cookies() {
		if len(dst) > 0 {
			dst = append(dst, "; "...)
		}
		if len(k) > 0 {
			dst = append(append(dst, k...), '=')
		}
		dst = append(dst, v...)
	}
	return dst
}

func cutPrefixPath(path []byte, prefix string) ([]byte, bool) {
	if len(path) < len(prefix) || string(path[:len(prefix)]) != prefix {
		return nil, false
	}
	rest := path[len(prefix):]
	if len(rest) == 0 {
		return []byte("/"), true
	}
	if rest[0] != '/' {
		return nil, false
	}
	return rest, true
}

// ServeHTTP is the public listener's handler. Every answer but the
// health checks' is counted by family and status class.
func (h *Handler) ServeHTTP(ctx *fasthttp.RequestCtx) {
	if h.health(ctx, ctx.Path()) {
		return
	}
	if c, ok := ctx.Conn().(*conn); ok {
		c.b.doneReading(c)
	}
	h.metrics.inFlight.Inc()
	f := h.serve(ctx)
	h.metrics.response(f, ctx.Response.StatusCode())
	h.metrics.inFlight.Dec()
}

// serve handles one request and returns the family of its route
// (FamilyUnknown when none matched).
func (h *Handler) serve(ctx *fasthttp.RequestCtx) consentmode.Family {
	start := h.requestTime(ctx)
	rt := h.snap.Load()
	cfg := rt.cfg

	if len(ctx.Request.Header.RequestURI()) > cfg.Limits.MaxURLBytes {
		h.writeError(ctx, errURITooLong, -1)
		return consentmode.FamilyUnknown
	}
	origin := ctx.Request.Header.Peek("Origin")
	allowed := len(origin) > 0 && originAllowed(cfg, origin, ctx.Host(), &h.sites)
	if ctx.IsOptions() {
		h.preflight(ctx, origin, allowed)
		return consentmode.FamilyUnknown
	}
	if h.vendors != nil {
		if rest, ok := envelopePath(cfg, ctx.URI().PathOriginal()); ok {
			h.serveEnvelope(ctx, rt, rest, start)
			return consentmode.FamilyUnknown
		}
	}
	if len(origin) > 0 && !allowed && len(cfg.CORSOrigins) > 0 && !sameOrigin(ctx, origin) {
		h.writeError(ctx, errOriginNotAllowed, -1)
		return consentmode.FamilyUnknown
	}

	peer := remoteAddr(ctx)
	peerTrusted := trusted(cfg.TrustedProxies, peer)
	client := clientIP(&ctx.Request.Header, peer, cfg.TrustedProxies)
	reg, conflict := region(&ctx.Request.Header, peerTrusted, cfg.GeoHeaders)
	if conflict {
		h.metrics.conflicting(conflictGeo)
	}
	reg = cfg.Policy.Resolve(reg) // an unassigned code (QQ) is no country

	var p prepared
	p.route = -1
	p.now = start
	if err := h.prepare(rt, &ctx.Request, reg, client, &p); err != nil {
		h.release(&p)
		h.writeError(ctx, err, p.route)
		if p.route >= 0 {
			return consentmode.Routes[p.route].Family
		}
		return consentmode.FamilyUnknown
	}
	defer h.release(&p)
	d := &p.decision
	if d.Family == consentmode.FamilyScript {
		h.serveScript(ctx, &p, reg, start)
		return d.Family
	}
	if p.out == nil { // blocked
		if allowed {
			setCORS(&ctx.Response.Header, origin)
		}
		ctx.SetStatusCode(fasthttp.StatusNoContent)
		h.record(ctx, &p, fasthttp.StatusNoContent, 0, nil, start)
	} else if l := p.lane; l != nil {
		h.enqueue(ctx, l, &p, origin, allowed, start)
	} else {
		h.proxy(ctx, &p, origin, allowed, start)
	}
	if h.vendors != nil {
		h.offerVendors(ctx, &p, client, start)
	}
	return d.Family
}

// proxy sends the prepared hit upstream and relays the answer, cleaned as
// the decision says.
func (h *Handler) proxy(ctx *fasthttp.RequestCtx, p *prepared, origin []byte, allowed bool, start time.Time) {
	cfg, d := p.cfg, &p.decision
	upStart := time.Now()
	err := p.up.client.DoTimeout(&p.out.req, &ctx.Response, cfg.Timeouts.Upstream)
	upLatency := time.Since(upStart)
	if err != nil {
		h.writeError(ctx, &upstreamError{err}, p.route)
		if allowed {
			setCORS(&ctx.Response.Header, origin)
		}
		h.record(ctx, p, ctx.Response.StatusCode(), upLatency, err, start)
		return
	}
	upStatus := ctx.Response.StatusCode()
	cleanResponse(&ctx.Response, d)
	if allowed {
		setCORS(&ctx.Response.Header, origin)
	}
	if !cfg.Enforce {
		// Dry run: the browser sees what it would have without the gateway.
	} else if d.ServerContainer {
		ctx.Response.ResetBody()
		ctx.Response.Header.Del("Content-Type")
		setStatus(&ctx.Response, fasthttp.StatusNoContent)
	} else {
		if cfg.Upstream != nil {
			rewriteLocation(&ctx.Response, cfg)
		}
		if d.Action == consentmode.ActionCookieless || d.Action == consentmode.ActionStrip {
			dropOffsiteLocation(&ctx.Response, ctx)
		}
	}
	h.record(ctx, p, upStatus, upLatency, nil, start)
}

// enqueue hands the rewritten hit to its lane and answers the browser
// 204 at once, or 503 with Retry-After when the queue cannot take it.
func (h *Handler) enqueue(ctx *fasthttp.RequestCtx, l *delivery.Lane, p *prepared, origin []byte, allowed bool, start time.Time) {
	o := p.out
	p.queued = true
	if err := l.Accept(p.route, &o.req, o.path, o.req.URI().QueryString(), start); err != nil {
		h.writeError(ctx, err, p.route)
		if allowed {
			setCORS(&ctx.Response.Header, origin)
		}
		h.record(ctx, p, ctx.Response.StatusCode(), 0, nil, start)
		return
	}
	if allowed {
		setCORS(&ctx.Response.Header, origin)
	}
	ctx.SetStatusCode(fasthttp.StatusNoContent)
	h.record(ctx, p, fasthttp.StatusNoContent, 0, nil, start)
}

// queueable reports whether a route's hits may be queued: the browser
// does not use the answer. Protected Audience joins and the Measurement
// Protocol's validation endpoint are always proxied.
func queueable(r *consentmode.Route) bool {
	switch r.Family {
	case consentmode.FamilyGA4, consentmode.FamilyUA, consentmode.FamilyAds, consentmode.FamilyFloodlight:
		return !strings.HasPrefix(r.Name, "ads_td_")
	case consentmode.FamilyMP:
		return r.Name != "mp_debug_collect"
	}
	return false
}

// requestTime is when fasthttp read the request (no clock read of ours),
// or the injected clock in tests.
func (h *Handler) requestTime(ctx *fasthttp.RequestCtx) time.Time {
	if h.clock != nil {
		return h.clock()
	}
	return ctx.Time()
}

// now reads the injected clock in tests, the system clock otherwise.
func (h *Handler) now() time.Time {
	if h.clock != nil {
		return h.clock()
	}
	return time.Now()
}

// health answers /healthz and /readyz (at the root and under path_prefix).
func (h *Handler) health(ctx *fasthttp.RequestCtx, path []byte) bool {
	switch string(path) {
	case "/healthz":
		ctx.SetStatusCode(fasthttp.StatusOK)
		ctx.SetBodyString("ok\n")
		return true
	case "/readyz":
		if h.ready.Load() {
			ctx.SetStatusCode(fasthttp.StatusOK)
			ctx.SetBodyString("ready\n")
		} else {
			ctx.SetStatusCode(fasthttp.StatusServiceUnavailable)
			ctx.SetBodyString("not ready\n")
		}
		return true
	}
	return false
}

// dropOffsiteLocation removes a Location header pointing to another host:
// a cookieless or stripped hit must not bounce the browser to Google.
func dropOffsiteLocation(resp *fasthttp.Response, ctx *fasthttp.RequestCtx) {
	loc := resp.Header.Peek("Location")
	if len(loc) == 0 {
		return
	}
	if len(loc) > 0 && loc[0] == '/' && (len(loc) == 1 || loc[1] != '/') {
		return // same host
	}
	resp.Header.Del("Location")
	if sc := resp.StatusCode(); sc >= 300 && sc < 400 {
		setStatus(resp, fasthttp.StatusNoContent)
		resp.ResetBody()
	}
}

// setStatus replaces the status of an upstream response. The reason
// phrase Google sent ("Found") is dropped with its code, so the status
// line says "204 No Content", not "204 Found".
func setStatus(resp *fasthttp.Response, code int) {
	resp.SetStatusCode(code)
	resp.Header.SetStatusMessage(nil)
}

// rewriteLocation points a Location at the tag-gateway upstream's
// measurement path back at the first-party path.
func rewriteLocation(resp *fasthttp.Response, cfg *config.Config) {
	loc := resp.Header.Peek("Location")
	if len(loc) == 0 {
		return
	}
	if rest, ok := bytes.CutPrefix(loc, []byte(cfg.Upstream.Scheme+"://"+cfg.Upstream.Host+cfg.PathPrefix)); ok && (len(rest) == 0 || rest[0] == '/' || rest[0] == '?') {
		// A longer Location is left as Google sent it: the browser is
		// sent to the upstream directly (dropOffsiteLocation still
		// removes it from cookieless and stripped hits).
		var buf [2048]byte
		if len(cfg.PathPrefix)+len(rest) < len(buf) {
			resp.Header.SetBytesV("Location", append(append(buf[:0], cfg.PathPrefix...), rest...))
		}
	}
}

// isTimeout reports whether err is a network timeout.
func isTimeout(err error) bool {
	var ne net.Error
	return errors.Is(err, fasthttp.ErrTimeout) || (errors.As(err, &ne) && ne.Timeout())
}

// record counts a finished hit and queues its decision-log line.
func (h *Handler) record(ctx *fasthttp.RequestCtx, p *prepared, status int, latency time.Duration, err error, start time.Time) {
	d := &p.decision
	h.metrics.observe(d)
	errKind := ""
	if err != nil {
		errKind = classifyUpstream(err).String()
	}
	if p.out != nil && !p.queued {
		h.metrics.upstream(p.route, latency, status, err)
	}
	if err != nil {
		if ce := h.log.Check(zap.WarnLevel, "upstream error"); ce != nil {
			ce.Write(zap.String("route", consentmode.Routes[d.Route].Name), zap.String("kind", errKind), zap.Error(err))
		}
	}
	mode := "none" // nothing left for the upstream
	if p.queued {
		mode = "queue"
	} else if p.out != nil || d.Family == consentmode.FamilyScript {
		mode = "sync"
	}
	if h.dlog == nil {
		return
	}
	// The hit's consent inputs, for the record (declog copies what it
	// keeps). The cookies are gathered on the stack: Peek("Cookie")
	// allocates.
	var cookies [1024]byte
	hit := declog.Hit{Query: ctx.URI().QueryString(), Cookie: appendCookies(cookies[:0], &ctx.Request.Header), GPC: h.gpc(&ctx.Request.Header)}
	if p.route >= 0 {
		r := &consentmode.Routes[p.route]
		_, hit.Matrix = r.SplitPath(p.path)
		hit.PathTag = r.PathTag(p.path)
	}
	h.dlog.Add(declog.Entry{At: start, Hit: h.dlog.NextHit(), Decision: *d, Config: p.cfg, Status: status, Latency: latency, ErrKind: errKind, Delivery: mode,
		Vendors: p.vendors.Calls}, &hit)
}
