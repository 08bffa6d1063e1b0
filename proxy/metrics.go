package proxy

import (
	"bytes"
	"fmt"
	"io"
	"sort"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/VictoriaMetrics/metrics"

	"github.com/consentgate/consentgate/consentmode"
)

// Metrics are the gateway's Prometheus metrics. Every labelled series is
// created up front from the closed catalogues of consentmode (routes,
// actions, reasons, fields, types, sources), so no label ever comes from
// request data and the hot path only increments pre-resolved counters.
type Metrics struct {
	set *metrics.Set

	hits        [][]*metrics.Counter // [route][action]
	reasons     [][]*metrics.Counter // [family][reason]
	downgrades  [consentmode.NumTypes][]*metrics.Counter
	malformed   map[consentmode.Reason]*metrics.Counter
	regionUnkwn *metrics.Counter
	removed     []*metrics.Counter             // [field]
	upLatency   []*metrics.PrometheusHistogram // [route]
	upErrors    []counterVec[upstreamErrKind]  // [route]
	responses   [][numClasses]*metrics.Counter // [family][status class]
	rejectedBy  counterVec[rejectReason]
	conflicts   map[string]*metrics.Counter
	acceptErrs  map[string]*metrics.Counter
	budget      atomic.Pointer[budget] // the public server's, for the gauges
	cache       map[string]*metrics.Counter
	reloads     map[string]*metrics.Counter
	logDropped  *metrics.Counter
	inFlight    *metrics.Gauge
	enforcing   *metrics.Gauge
	delivery    *deliveryMetrics
}

// catalogue is a closed set of label values: a small integer type whose
// values run from 0 to a count constant and whose String is the label.
type catalogue interface {
	~uint8
	String() string
}

// counterVec is one counter per value of a catalogue K, indexed by K and
// all created up front: every value of K has its series.
type counterVec[K catalogue] []*metrics.Counter

// newCounterVec creates the series prefix+`"label"}` for every value of K
// below n; prefix is the name and the labels before K's, e.g.
// `consentgate_rejected_total{reason=`.
func newCounterVec[K catalogue](s *metrics.Set, prefix string, n K) counterVec[K] {
	v := make(counterVec[K], n)
	for k := range n {
		v[k] = s.NewCounter(prefix + strconv.Quote(k.String()) + "}")
	}
	return v
}

// inc counts one k.
func (v counterVec[K]) inc(k K) { v[k].Inc() }

// Status classes of consentgate_responses_total: 1xx to 5xx.
const numClasses = 5

// familyLabel names a family in labels; requests that matched no route
// (unknown paths, malformed requests, preflights) count as "none".
func familyLabel(f consentmode.Family) string {
	if f == consentmode.FamilyUnknown {
		return "none"
	}
	return f.String()
}

// NewMetrics creates every series in a fresh set.
func NewMetrics(version string) *Metrics {
	s := metrics.NewSet()
	m := &Metrics{set: s, malformed: map[consentmode.Reason]*metrics.Counter{},
		conflicts: map[string]*metrics.Counter{}, acceptErrs: map[string]*metrics.Counter{}, cache: map[string]*metrics.Counter{}, reloads: map[string]*metrics.Counter{}}
	for _, r := range consentmode.Routes {
		row := make([]*metrics.Counter, 5)
		for _, a := range consentmode.Actions() {
			row[a] = s.NewCounter(fmt.Sprintf(`consentgate_hits_total{route=%q,family=%q,action=%q}`, r.Name, r.Family, a))
		}
		m.hits = append(m.hits, row)
	}
	m.reasons = make([][]*metrics.Counter, len(consentmode.Families())+1)
	for _, f := range consentmode.Families() {
		for _, r := range consentmode.AllReasons() {
			for len(m.reasons[f]) <= int(r) {
				m.reasons[f] = append(m.reasons[f], nil)
			}
			m.reasons[f][r] = s.NewCounter(fmt.Sprintf(`consentgate_decision_reasons_total{family=%q,reason=%q}`, f, r))
		}
	}
	sources := []consentmode.Source{consentmode.SourceGCD, consentmode.SourceGCS, consentmode.SourceNPA, consentmode.SourceCMPCookie,
		consentmode.SourceTCF, consentmode.SourceGPC, consentmode.SourceUSPrivacy, consentmode.SourceGPP, consentmode.SourceMP, consentmode.SourceRegionDefault}
	for t := range consentmode.NumTypes {
		m.downgrades[t] = make([]*metrics.Counter, consentmode.SourceNotApplicable+1)
		for _, src := range sources {
			m.downgrades[t][src] = s.NewCounter(fmt.Sprintf(`consentgate_consent_downgrades_total{type=%q,source=%q}`, consentmode.Type(t), src))
		}
	}
	for _, in := range []struct {
		r    consentmode.Reason
		name string
	}{{consentmode.ReasonMalformedGCS, "gcs"}, {consentmode.ReasonMalformedGCD, "gcd"}, {consentmode.ReasonMalformedNPA, "npa"},
		{consentmode.ReasonMalformedTCF, "tcf"}, {consentmode.ReasonMalformedUSPrivacy, "us_privacy"}, {consentmode.ReasonMalformedGPP, "gpp"},
		{consentmode.ReasonMalformedCMPCookie, "cmp_cookie"}, {consentmode.ReasonInvalidBody, "body"}} {
		m.malformed[in.r] = s.NewCounter(fmt.Sprintf(`consentgate_malformed_signals_total{input=%q}`, in.name))
	}
	m.regionUnkwn = s.NewCounter(`consentgate_region_unknown_total`)
	for _, name := range consentmode.FieldNames() {
		m.removed = append(m.removed, s.NewCounter(fmt.Sprintf(`consentgate_removed_fields_total{field=%q}`, name)))
	}
	for _, r := range consentmode.Routes {
		m.upLatency = append(m.upLatency, s.NewPrometheusHistogramExt(fmt.Sprintf(`consentgate_upstream_duration_seconds{family=%q,route=%q}`, r.Family, r.Name),
			[]float64{.005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10}))
		m.upErrors = append(m.upErrors, newCounterVec(s, fmt.Sprintf(`consentgate_upstream_errors_total{family=%q,route=%q,kind=`, r.Family, r.Name), numUpstreamErrKinds))
	}
	m.responses = make([][numClasses]*metrics.Counter, len(consentmode.Families())+1)
	for _, f := range append([]consentmode.Family{consentmode.FamilyUnknown}, consentmode.Families()...) {
		for c := range numClasses {
			m.responses[f][c] = s.NewCounter(fmt.Sprintf(`consentgate_responses_total{family=%q,class="%dxx"}`, familyLabel(f), c+1))
		}
	}
	m.rejectedBy = newCounterVec(s, `consentgate_rejected_total{reason=`, numRejectReasons)
	for _, hd := range []string{"geo", "content_encoding", "content_type", "sec_gpc"} {
		m.conflicts[hd] = s.NewCounter(fmt.Sprintf(`consentgate_conflicting_headers_total{header=%q}`, hd))
	}
	for _, k := range []string{"emfile", "enfile", "enobufs", "enomem", "other"} {
		m.acceptErrs[k] = s.NewCounter(fmt.Sprintf(`consentgate_accept_errors_total{kind=%q}`, k))
	}
	s.NewGauge(`consentgate_reading_requests`, func() float64 {
		if b := m.budget.Load(); b != nil {
			return float64(b.reading())
		}
		return 0
	})
	s.NewGauge(`consentgate_buffered_request_bytes`, func() float64 {
		if b := m.budget.Load(); b != nil {
			return float64(b.bytes.Load())
		}
		return 0
	})
	for _, r := range []string{"hit", "miss", "stale", "error", "coalesced"} {
		m.cache[r] = s.NewCounter(fmt.Sprintf(`consentgate_script_cache_total{result=%q}`, r))
	}
	for _, r := range []string{"success", "failure", "unchanged"} {
		m.reloads[r] = s.NewCounter(fmt.Sprintf(`consentgate_config_reloads_total{result=%q}`, r))
	}
	m.logDropped = s.NewCounter(`consentgate_decision_log_dropped_total`)
	m.inFlight = s.NewGauge(`consentgate_in_flight_requests`, nil)
	m.enforcing = s.NewGauge(`consentgate_enforcing`, nil)
	s.NewGauge(fmt.Sprintf(`consentgate_build_info{version=%q}`, version), nil).Set(1)
	m.delivery = newDeliveryMetrics(s)
	return m
}

// WritePrometheus writes every metric in the Prometheus text format, with
// the Go runtime and process metrics. With metadata exposed
// (metrics.ExposeMetadata, as serve does), every # HELP line carries the
// text of Help.
func (m *Metrics) WritePrometheus(w io.Writer) {
	var buf bytes.Buffer
	m.set.WritePrometheus(&buf)
	metrics.WriteProcessMetrics(&buf)
	b := buf.Bytes()
	for len(b) > 0 {
		line := b
		if i := bytes.IndexByte(b, '\n'); i >= 0 {
			line, b = b[:i+1], b[i+1:]
		} else {
			b = nil
		}
		name, ok := bytes.CutPrefix(bytes.TrimRight(line, "\n"), []byte("# HELP "))
		if ok && bytes.IndexByte(name, ' ') < 0 {
			fmt.Fprintf(w, "# HELP %s %s\n", name, Help(string(name)))
			continue
		}
		_, _ = w.Write(line)
	}
}

// observe counts one decided hit.
func (m *Metrics) observe(d *consentmode.Decision) {
	if int(d.Route) < len(m.hits) {
		m.hits[d.Route][d.Action].Inc()
	}
	if rs := m.reasons[d.Family]; rs != nil {
		for r := range d.Reasons.All {
			rs[r].Inc()
			if c := m.malformed[r]; c != nil {
				c.Inc()
			}
		}
	}
	if d.Reasons.Has(consentmode.ReasonRegionUnknown) {
		m.regionUnkwn.Inc()
	}
	for t := range consentmode.NumTypes {
		if d.Downgraded(consentmode.Type(t)) {
			if c := m.downgrades[t][d.Consent.Source[t]]; c != nil {
				c.Inc()
			}
		}
	}
	for f := range d.Removed.All {
		if int(f) < len(m.removed) {
			m.removed[f].Inc()
		}
	}
}

// upstream counts one upstream exchange of a route, failed or not.
func (m *Metrics) upstream(route int, latency time.Duration, status int, errKind string) {
	if route < 0 || route >= len(m.upLatency) {
		return
	}
	m.upLatency[route].Update(latency.Seconds())
	switch {
	case errKind != "":
		m.upErrors[route].inc(upstreamErrKindOf(errKind))
	case status >= 500:
		m.upErrors[route].inc(upErr5xx)
	}
}

// response counts one answer to a browser by family and status class.
func (m *Metrics) response(f consentmode.Family, status int) {
	c := status/100 - 1
	if int(f) < len(m.responses) && c >= 0 && c < numClasses {
		m.responses[f][c].Inc()
	}
}

// rejected counts a request or connection answered locally with an error
// status; upstreamFailed is not counted (record counts upstream errors).
func (m *Metrics) rejected(r rejectReason) {
	if r.counted() {
		m.rejectedBy.inc(r)
	}
}

// conflicting counts a header sent twice with different values
// ("geo", "content_encoding", "content_type", "sec_gpc").
func (m *Metrics) conflicting(header string) {
	if c := m.conflicts[header]; c != nil {
		c.Inc()
	}
}

// acceptError counts a failed accept ("emfile", "enfile", "enobufs", "enomem", "other").
func (m *Metrics) acceptError(kind string) { m.acceptErrs[kind].Inc() }

// CacheResult counts a script cache lookup ("hit", "miss", "stale", "error", "coalesced").
func (m *Metrics) CacheResult(r string) { m.cache[r].Inc() }

// Reload counts a configuration reload ("success", "failure" or "unchanged").
func (m *Metrics) Reload(result string) { m.reloads[result].Inc() }

// SetEnforcing records whether consent is enforced (1) or in dry run (0).
func (m *Metrics) SetEnforcing(on bool) {
	if on {
		m.enforcing.Set(1)
	} else {
		m.enforcing.Set(0)
	}
}

// Names lists every metric family, for the README and tests.
func (m *Metrics) Names() []string {
	seen := map[string]bool{}
	for _, n := range m.set.ListMetricNames() {
		for i, c := range n {
			if c == '{' {
				n = n[:i]
				break
			}
		}
		seen[n] = true
	}
	out := make([]string, 0, len(seen))
	for n := range seen {
		out = append(out, n)
	}
	sort.Strings(out)
	return out
}
