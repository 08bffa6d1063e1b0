package vendors

import (
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/VictoriaMetrics/metrics"
	"github.com/valyala/fasthttp"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	"github.com/consentgate/consentgate/config"
	"github.com/consentgate/consentgate/consentmode"
)

// queueLen bounds the hits waiting for the builder: Offer drops (and
// counts) a hit beyond it rather than block the hit path.
const queueLen = 4096

// Gateway builds the vendors' calls from offered GA4 hits and forwards
// merchants' own calls, under the consent decision of each.
type Gateway struct {
	cfg *config.Vendors
	// sinkOf gives a vendor's lane; it is asked on the first call (the
	// caller may start delivery after New) and again until it answers.
	sinkOf func(v consentmode.Vendor, scheme, host string) (Sink, error)
	sinkMu sync.Mutex
	sinks  [consentmode.NumVendors]Sink
	conv   [consentmode.NumVendors]map[string]bool
	log    *zap.Logger
	slog   *zap.Logger // log, sampled: per-event lines
	now    func() time.Time
	m      *gatewayMetrics
	any    bool

	mu     sync.RWMutex // guards closed against sends on ch
	closed bool
	ch     chan *job
	done   chan struct{}
}

// job is an offered hit and its plan; the hit's buffers are copies.
type job struct {
	p Plan
	h Hit
}

// Errors of New and Forward.
var (
	ErrNoConfig  = errors.New("vendors: no configuration")
	ErrVendorOff = errors.New("vendors: the vendor is not enabled")
	ErrPayload   = errors.New("vendors: malformed vendor payload")
	// ErrTooMany is an ErrPayload too.
	ErrTooMany     = fmt.Errorf("%w: too many events", ErrPayload)
	ErrPreviewOnly = errors.New("vendors: no sink: the gateway only previews")
)

// New makes a Gateway. With opts.Sink nil it only plans and previews
// (explain); otherwise it starts the builder goroutine, which asks Sink
// for a vendor's lane when it first has a call for it (so delivery may
// start after New), and again after an error.
func New(opts Options) (*Gateway, error) {
	if opts.Config == nil {
		return nil, ErrNoConfig
	}
	g := &Gateway{cfg: opts.Config, log: opts.Log}
	if g.log == nil {
		g.log = zap.NewNop()
	}
	g.slog = g.log.WithOptions(zap.WrapCore(func(c zapcore.Core) zapcore.Core {
		return zapcore.NewSamplerWithOptions(c, time.Second, 10, 100)
	}))
	if g.now = opts.Now; g.now == nil {
		g.now = time.Now
	}
	set := opts.Metrics
	if set == nil {
		set = metrics.NewSet()
	}
	g.m = newGatewayMetrics(set)
	for v := range consentmode.Vendor(consentmode.NumVendors) {
		g.conv[v] = map[string]bool{}
		o := g.cfg.On[v]
		if o == nil {
			continue
		}
		g.any = true
		if o.Endpoint == nil {
			return nil, fmt.Errorf("vendors: %s has no endpoint", v)
		}
		for _, e := range g.cfg.Events {
			if e.Conversion && e.Name[v] != "" {
				g.conv[v][e.Name[v]] = true
			}
		}
	}
	g.sinkOf = opts.Sink
	if opts.Sink != nil {
		g.ch = make(chan *job, queueLen)
		g.done = make(chan struct{})
		go g.run()
	}
	return g, nil
}

// Mapped is which vendors a GA4 hit's events map to (Gateway.Events).
type Mapped struct {
	to, conv [consentmode.NumVendors]bool // some event maps; some conversion maps
}

// Any reports whether some event maps to a vendor that is on: when not,
// the hit has no vendor plan and its consent facts need not be read.
func (m Mapped) Any() bool { return m.to != [consentmode.NumVendors]bool{} }

// Events reads the event names of a GA4 hit and looks them up. It costs
// no allocation.
func (g *Gateway) Events(query, body []byte) Mapped {
	if !g.any {
		return Mapped{}
	}
	var m Mapped
	m.to, m.conv = g.mapped(query, body)
	return m
}

// Plan returns what the hit's events mean for each vendor. query and
// body are the GA4 hit's; they are not kept. It costs no allocation.
func (g *Gateway) Plan(f *consentmode.VendorFacts, query, body []byte) Plan {
	return g.PlanMapped(f, g.Events(query, body))
}

// PlanMapped is Plan for a hit whose events Events has read already.
func (g *Gateway) PlanMapped(f *consentmode.VendorFacts, m Mapped) Plan {
	var p Plan
	if !m.Any() {
		return p
	}
	calls := consentmode.DecideVendors(f)
	for v := range consentmode.Vendor(consentmode.NumVendors) {
		c := calls[v]
		if !m.to[v] || (c.Action == consentmode.VendorSend && c.Flags.Has(consentmode.FlagConversionsOnly) && !m.conv[v]) {
			continue
		}
		p.Calls[v] = c
	}
	return p
}

// mapped reads the event names (en) of a GA4 hit, in the query and in
// each line of a batched body (a line's own en over the query's), and
// reports which vendors some event maps to, and to which of them a
// conversion does.
func (g *Gateway) mapped(query, body []byte) (mapped, conv [consentmode.NumVendors]bool) {
	see := func(name []byte) {
		m, ok := g.cfg.Events[string(name)]
		if !ok {
			return
		}
		for v := range consentmode.Vendor(consentmode.NumVendors) {
			if g.cfg.On[v] != nil && m.Name[v] != "" {
				mapped[v] = true
				conv[v] = conv[v] || m.Conversion
			}
		}
	}
	qName, _ := rawParam(query, "en")
	n := lines(body, func(line []byte) {
		if name, ok := rawParam(line, "en"); ok {
			see(name)
		} else {
			see(qName)
		}
	})
	if n == 0 {
		see(qName)
	}
	return mapped, conv
}

// Config is the vendors section the gateway was made with (it keeps it:
// changing it needs a restart).
func (g *Gateway) Config() *config.Vendors { return g.cfg }

// Sends reports whether a call of p sends.
func (p *Plan) Sends() bool {
	for _, c := range p.Calls {
		if c.Action == consentmode.VendorSend {
			return true
		}
	}
	return false
}

// Planned reports whether any call of p is not VendorNone.
func (p *Plan) Planned() bool {
	return p.Calls != [consentmode.NumVendors]consentmode.VendorCall{}
}

// Offer hands a hit to the builder without waiting: h is copied, so the
// caller may reuse its buffers at once. It returns false when the queue
// is full or the gateway closed (or only previews); the drop is counted
// per planned vendor. A plan with only blocks is taken too: its events
// are counted as blocked.
func (g *Gateway) Offer(p Plan, h *Hit) bool {
	if !p.Planned() {
		return true
	}
	if g.ch == nil {
		g.dropPlanned(&p, causeClosed)
		return false
	}
	buf := make([]byte, 0, len(h.Query)+len(h.Body)+len(h.Cookie)+len(h.UserAgent))
	j := &job{p: p, h: *h}
	buf = append(buf, h.Query...)
	j.h.Query = buf[:len(buf):len(buf)]
	buf = append(buf, h.Body...)
	j.h.Body = buf[len(j.h.Query):len(buf):len(buf)]
	mark := len(buf)
	buf = append(buf, h.Cookie...)
	j.h.Cookie = buf[mark:len(buf):len(buf)]
	mark = len(buf)
	buf = append(buf, h.UserAgent...)
	j.h.UserAgent = buf[mark:len(buf):len(buf)]
	g.mu.RLock()
	defer g.mu.RUnlock()
	if g.closed {
		g.dropPlanned(&p, causeClosed)
		return false
	}
	select {
	case g.ch <- j:
		return true
	default:
		g.dropPlanned(&p, causeQueueFull)
		return false
	}
}

func (g *Gateway) dropPlanned(p *Plan, cause int) {
	for v, c := range p.Calls {
		if c.Action == consentmode.VendorSend {
			g.m.dropped[v][cause].Inc()
		}
	}
}

// Close stops taking hits, builds and hands to the sinks every hit
// queued, and returns. The caller shuts delivery down after it.
func (g *Gateway) Close() {
	if g.ch == nil {
		return
	}
	g.mu.Lock()
	if !g.closed {
		g.closed = true
		close(g.ch)
	}
	g.mu.Unlock()
	<-g.done
}

// run is the builder goroutine: it builds each hit's events and hands
// each event to its vendor's lane as a call of its own, so that every
// event is spooled, retried and counted on its own. The lane merges the
// events waiting for it into one call of up to vendors.batch_max_events
// (delivery's coalescing lanes): batches grow with the load and the API's
// latency, and no event waits outside the spool for a batch to fill.
func (g *Gateway) run() {
	defer close(g.done)
	var w consentmode.Work
	for j := range g.ch {
		b := g.build(&j.p, &j.h, &w)
		for v := range b {
			g.m.events[v][actionBlock].Add(b[v].blocked)
			g.m.events[v][actionDropped].Add(b[v].dropped)
			g.m.dropped[v][causeIncomplete].Add(b[v].incomplete)
			for _, ev := range b[v].events {
				if err := g.send(consentmode.Vendor(v), nil, []any{ev}, j.h.At); err != nil {
					// Counted (sink_refused); logged sampled: a full spool
					// refuses every event.
					if ce := g.slog.Check(zap.WarnLevel, "vendor call refused by delivery"); ce != nil {
						ce.Write(zap.Stringer("vendor", consentmode.Vendor(v)), zap.Error(err))
					}
				}
			}
		}
	}
}

// send encodes events and hands them to v's sink, counting the outcome.
func (g *Gateway) send(v consentmode.Vendor, top map[string]any, evs []any, at time.Time) error {
	r, err := g.request(v, top, evs, false)
	var sink Sink
	if err == nil {
		sink, err = g.sink(v)
	}
	if err == nil {
		req := fasthttp.AcquireRequest()
		req.Header.SetMethod(fasthttp.MethodPost)
		for _, h := range r.headers {
			req.Header.Set(h[0], h[1])
		}
		req.SetBody(r.body)
		if at.IsZero() {
			at = g.now()
		}
		err = sink.Accept(TagBase+int(v), req, []byte(r.path), nil, at)
		fasthttp.ReleaseRequest(req)
	}
	if err != nil {
		g.m.dropped[v][causeSinkRefused].Add(len(evs))
		return err
	}
	g.m.events[v][actionSend].Add(len(evs))
	return nil
}

// sink returns v's lane, asking sinkOf the first time.
func (g *Gateway) sink(v consentmode.Vendor) (Sink, error) {
	g.sinkMu.Lock()
	defer g.sinkMu.Unlock()
	if s := g.sinks[v]; s != nil {
		return s, nil
	}
	if g.sinkOf == nil {
		return nil, ErrPreviewOnly
	}
	o := g.cfg.On[v]
	s, err := g.sinkOf(v, o.Endpoint.Scheme, o.Endpoint.Host)
	if err != nil {
		return nil, fmt.Errorf("vendors: %s lane: %w", v, err)
	}
	g.sinks[v] = s
	return s, nil
}

// Call is a vendor call as explain shows it.
type Call struct {
	Vendor string          `json:"vendor"`
	Method string          `json:"method"`
	URL    string          `json:"url"`
	Events int             `json:"events"`
	Body   json.RawMessage `json:"body"`
}

// Skip counts a vendor's events of a hit that do not leave although its
// call is send: left out by the consent (conversions_only), or missing a
// field the API requires (cause "incomplete").
type Skip struct {
	Consent    int `json:"by_consent,omitempty"`
	Incomplete int `json:"incomplete,omitempty"`
}

// Preview returns the calls hit h would make under plan p (one per event:
// its lane merges them with the other events waiting), built by the
// builder's code, the token replaced by "REDACTED", and per vendor the
// events that would not leave. Nothing is sent or counted.
func (g *Gateway) Preview(p Plan, h *Hit) ([]Call, [consentmode.NumVendors]Skip) {
	var w consentmode.Work
	b := g.build(&p, h, &w)
	var out []Call
	var skips [consentmode.NumVendors]Skip
	for v := range consentmode.Vendor(consentmode.NumVendors) {
		skips[v] = Skip{Consent: b[v].dropped, Incomplete: b[v].incomplete}
		for _, ev := range b[v].events {
			r, err := g.request(v, nil, []any{ev}, true)
			if err != nil {
				break
			}
			u := *g.cfg.On[v].Endpoint
			u.Path = r.path
			out = append(out, Call{Vendor: v.String(), Method: fasthttp.MethodPost, URL: u.String(), Events: 1, Body: r.body})
		}
	}
	return out, skips
}
