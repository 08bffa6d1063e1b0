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
	"github.com/consentgate/consentgate/delivery"
	"github.com/consentgate/consentgate/vendors"
)

// Metrics are the gateway's Prometheus metrics. Every labelled series is
// created up front from closed catalogues: those of consentmode (routes,
// actions, reasons, fields, types, sources) and the proxy's own label
// types below (rejectReason, upstreamErrKind, conflictHeader,
// acceptErrKind, cacheResult, reloadResult), so no label ever comes from
// request data and the hot path only increments pre-resolved counters.
type Metrics struct {
	set *metrics.Set

	hits          [][]*metrics.Counter // [route][action]
	reasons       [][]*metrics.Counter // [family][reason]
	downgrades    [consentmode.NumTypes][]*metrics.Counter
	malformed     []*metrics.Counter // [reason]: nil but for the malformed inputs
	regionUnknown *metrics.Counter
	removed       []*metrics.Counter             // [field]
	upLatency     []*metrics.PrometheusHistogram // [route]
	upErrors      []counterVec[upstreamErrKind]  // [route]
	responses     [][numClasses]*metrics.Counter // [family][status class]
	rejectedBy    counterVec[rejectReason]
	envelopes     [consentmode.NumVendors][len(envelopeResults)]*metrics.Counter
	conflicts     counterVec[conflictHeader]
	acceptErrs    counterVec[acceptErrKind]
	budget        atomic.Pointer[budget] // the public server's, for the gauges
	cache         counterVec[cacheResult]
	reloads       counterVec[reloadResult]
	inFlight      *metrics.Gauge
	enforcing     *metrics.Gauge
	delivery      *delivery.Metrics
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

// conflictHeader labels consentgate_conflicting_headers_total: an input
// sent twice with different values, answered fail-closed.
type conflictHeader uint8

const (
	conflictGeo conflictHeader = iota
	conflictContentEncoding
	conflictContentType
	conflictSecGPC
	numConflictHeaders
)

var conflictHeaderNames = [numConflictHeaders]string{"geo", "content_encoding", "content_type", "sec_gpc"}

func (c conflictHeader) String() string { return conflictHeaderNames[c] }

// acceptErrKind labels consentgate_accept_errors_total: a failed accept
// the listener backs off from and retries.
type acceptErrKind uint8

const (
	acceptEMFILE acceptErrKind = iota
	acceptENFILE
	acceptENOBUFS
	acceptENOMEM
	acceptOther
	numAcceptErrKinds
)

var acceptErrKindNames = [numAcceptErrKinds]string{"emfile", "enfile", "enobufs", "enomem", "other"}

func (k acceptErrKind) String() string { return acceptErrKindNames[k] }

// reloadResult labels consentgate_config_reloads_total.
type reloadResult uint8

const (
	reloadSuccess   reloadResult = iota // a changed config applied
	reloadFailure                       // rejected: the last good config keeps serving
	reloadUnchanged                     // the same config again: nothing swapped
	numReloadResults
)

var reloadResultNames = [numReloadResults]string{"success", "failure", "unchanged"}

func (r reloadResult) String() string { return reloadResultNames[r] }

// malformedInputs label consentgate_malformed_signals_total: the decision
// reason that says an input was malformed, and the input's label.
var malformedInputs = [...]struct {
	r    consentmode.Reason
	name string
}{
	{consentmode.ReasonMalformedGCS, "gcs"}, {consentmode.ReasonMalformedGCD, "gcd"}, {consentmode.ReasonMalformedNPA, "npa"},
	{consentmode.ReasonMalformedTCF, "tcf"}, {consentmode.ReasonMalformedUSPrivacy, "us_privacy"}, {consentmode.ReasonMalformedGPP, "gpp"},
	{consentmode.ReasonMalformedCMPCookie, "cmp_cookie"}, {consentmode.ReasonInvalidBody, "body"},
}

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

// Set is the set holding every series, for the decision log's and the
// Kafka sink's own (declog.Open, declog.NewKafkaSink).
func (m *Metrics) Set() *metrics.Set { return m.set }

// NewMetrics creates every series in a fresh set.
func NewMetrics(version string) *Metrics {
	s := metrics.NewSet()
	m := &Metrics{set: s}
	// Decisions.
	m.hits = newHitCounters(s)
	m.reasons = newReasonCounters(s)
	m.downgrades = newDowngradeCounters(s)
	m.malformed = newMalformedCounters(s)
	m.regionUnknown = s.NewCounter(`consentgate_region_unknown_total`)
	m.removed = newRemovedCounters(s)
	// Upstream exchanges and answers to browsers.
	m.upLatency, m.upErrors = newUpstreamMetrics(s)
	m.responses = newResponseCounters(s)
	m.rejectedBy = newCounterVec(s, `consentgate_rejected_total{reason=`, numRejectReasons)
	m.conflicts = newCounterVec(s, `consentgate_conflicting_headers_total{header=`, numConflictHeaders)
	// The listener and the request budget.
	m.acceptErrs = newCounterVec(s, `consentgate_accept_errors_total{kind=`, numAcceptErrKinds)
	m.newBudgetGauges(s)
	m.inFlight = s.NewGauge(`consentgate_in_flight_requests`, nil)
	// Operations: script cache, reloads, decision log, build.
	m.cache = newCounterVec(s, `consentgate_script_cache_total{result=`, numCacheResults)
	m.reloads = newCounterVec(s, `consentgate_config_reloads_total{result=`, numReloadResults)
	s.NewCounter(`consentgate_decision_log_dropped_total`) // counted by declog.Log
	m.enforcing = s.NewGauge(`consentgate_enforcing`, nil)
	s.NewGauge(fmt.Sprintf(`consentgate_build_info{version=%q}`, version), nil).Set(1)
	m.delivery = delivery.NewMetrics(s, deliveryLabels())
	for v := range consentmode.Vendor(consentmode.NumVendors) {
		for i, r := range envelopeResults {
			m.envelopes[v][i] = s.NewCounter(fmt.Sprintf(`consentgate_vendor_envelopes_total{vendor=%q,result=%q}`, v.String(), r))
		}
	}
	return m
}

// envelopeResults label consentgate_vendor_envelopes_total: what became
// of an envelope route's call.
var envelopeResults = [...]string{"send", "block", rejectNoEnvelope.String(), rejectBadEnvelope.String(), rejectVendorPayload.String()}

// envelope counts one envelope route's call to vendor v by result.
func (m *Metrics) envelope(v consentmode.Vendor, result string) {
	for i, r := range envelopeResults {
		if r == result && int(v) < len(m.envelopes) {
			m.envelopes[v][i].Inc()
		}
	}
}

// deliveryLabels are the family labels of delivery's counters, in the
// order of consentmode.Families; deliveryLabel maps a route to its index.
func deliveryLabels() []string {
	var labels []string
	for _, f := range consentmode.Families() {
		labels = append(labels, f.String())
	}
	for _, v := range consentmode.VendorNames() {
		labels = append(labels, "vendor_"+v)
	}
	return labels
}

// deliveryLabel is the index in deliveryLabels of route's family (that of
// GA4, the first, for a route that has none).
func deliveryLabel(route int) int {
	if v := route - vendors.TagBase; v >= 0 && v < consentmode.NumVendors {
		return len(consentmode.Families()) + v
	}
	if route >= 0 && route < len(consentmode.Routes) {
		for i, f := range consentmode.Families() {
			if f == consentmode.Routes[route].Family {
				return i
			}
		}
	}
	return 0
}

// newHitCounters creates consentgate_hits_total, [route][action].
func newHitCounters(s *metrics.Set) [][]*metrics.Counter {
	actions := consentmode.Actions()
	hits := make([][]*metrics.Counter, len(consentmode.Routes))
	for i, r := range consentmode.Routes {
		hits[i] = make([]*metrics.Counter, len(actions)+1) // ActionUnknown's is nil
		for _, a := range actions {
			hits[i][a] = s.NewCounter(fmt.Sprintf(`consentgate_hits_total{route=%q,family=%q,action=%q}`, r.Name, r.Family, a))
		}
	}
	return hits
}

// newReasonCounters creates consentgate_decision_reasons_total,
// [family][reason] (nil for FamilyUnknown).
func newReasonCounters(s *metrics.Set) [][]*metrics.Counter {
	reasons := make([][]*metrics.Counter, len(consentmode.Families())+1)
	all := consentmode.AllReasons()
	for _, f := range consentmode.Families() {
		reasons[f] = make([]*metrics.Counter, len(all))
		for _, r := range all {
			reasons[f][r] = s.NewCounter(fmt.Sprintf(`consentgate_decision_reasons_total{family=%q,reason=%q}`, f, r))
		}
	}
	return reasons
}

// newDowngradeCounters creates consentgate_consent_downgrades_total,
// [type][source]: every source that can decide, that is all but
// SourceNone (first) and SourceNotApplicable (last), whose entries are nil.
func newDowngradeCounters(s *metrics.Set) [consentmode.NumTypes][]*metrics.Counter {
	var downgrades [consentmode.NumTypes][]*metrics.Counter
	for t := range consentmode.NumTypes {
		downgrades[t] = make([]*metrics.Counter, consentmode.SourceNotApplicable+1)
		for src := consentmode.SourceNone + 1; src < consentmode.SourceNotApplicable; src++ {
			downgrades[t][src] = s.NewCounter(fmt.Sprintf(`consentgate_consent_downgrades_total{type=%q,source=%q}`, consentmode.Type(t), src))
		}
	}
	return downgrades
}

// newMalformedCounters creates consentgate_malformed_signals_total,
// indexed by the reason of malformedInputs.
func newMalformedCounters(s *metrics.Set) []*metrics.Counter {
	malformed := make([]*metrics.Counter, len(consentmode.AllReasons()))
	for _, in := range malformedInputs {
		malformed[in.r] = s.NewCounter(fmt.Sprintf(`consentgate_malformed_signals_total{input=%q}`, in.name))
	}
	return malformed
}

// newRemovedCounters creates consentgate_removed_fields_total, [field].
func newRemovedCounters(s *metrics.Set) []*metrics.Counter {
	var removed []*metrics.Counter
	for _, name := range consentmode.FieldNames() {
		removed = append(removed, s.NewCounter(fmt.Sprintf(`consentgate_removed_fields_total{field=%q}`, name)))
	}
	return removed
}

// newUpstreamMetrics creates consentgate_upstream_duration_seconds and
// consentgate_upstream_errors_total, per route.
func newUpstreamMetrics(s *metrics.Set) ([]*metrics.PrometheusHistogram, []counterVec[upstreamErrKind]) {
	latency := make([]*metrics.PrometheusHistogram, len(consentmode.Routes))
	errs := make([]counterVec[upstreamErrKind], len(consentmode.Routes))
	for i, r := range consentmode.Routes {
		latency[i] = s.NewPrometheusHistogramExt(fmt.Sprintf(`consentgate_upstream_duration_seconds{family=%q,route=%q}`, r.Family, r.Name),
			[]float64{.005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10})
		errs[i] = newCounterVec(s, fmt.Sprintf(`consentgate_upstream_errors_total{family=%q,route=%q,kind=`, r.Family, r.Name), numUpstreamErrKinds)
	}
	return latency, errs
}

// newResponseCounters creates consentgate_responses_total, [family][class].
func newResponseCounters(s *metrics.Set) [][numClasses]*metrics.Counter {
	responses := make([][numClasses]*metrics.Counter, len(consentmode.Families())+1)
	for _, f := range append([]consentmode.Family{consentmode.FamilyUnknown}, consentmode.Families()...) {
		for c := range numClasses {
			responses[f][c] = s.NewCounter(fmt.Sprintf(`consentgate_responses_total{family=%q,class="%dxx"}`, familyLabel(f), c+1))
		}
	}
	return responses
}

// newBudgetGauges creates the gauges of the public server's request
// budget (zero until the server sets m.budget).
func (m *Metrics) newBudgetGauges(s *metrics.Set) {
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
}

// WritePrometheus writes every metric in the Prometheus text format, with
// the Go runtime and process metrics and the open and allowed file
// descriptors. With metadata exposed
// (metrics.ExposeMetadata, as serve does), every # HELP line carries the
// text of Help.
func (m *Metrics) WritePrometheus(w io.Writer) {
	var buf bytes.Buffer
	m.set.WritePrometheus(&buf)
	metrics.WriteProcessMetrics(&buf)
	metrics.WriteFDMetrics(&buf) // process_open_fds and process_max_fds: connections, the spool and files share them
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
			if int(r) < len(m.malformed) && m.malformed[r] != nil {
				m.malformed[r].Inc()
			}
		}
	}
	if d.Reasons.Has(consentmode.ReasonRegionUnknown) {
		m.regionUnknown.Inc()
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

// upstream counts one upstream exchange of a route, failed (err) or not.
func (m *Metrics) upstream(route int, latency time.Duration, status int, err error) {
	if route < 0 || route >= len(m.upLatency) {
		return
	}
	m.upLatency[route].Update(latency.Seconds())
	switch {
	case err != nil:
		m.upErrors[route].inc(classifyUpstream(err))
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

// conflicting counts a header sent twice with different values.
func (m *Metrics) conflicting(h conflictHeader) { m.conflicts.inc(h) }

// acceptError counts a failed accept.
func (m *Metrics) acceptError(k acceptErrKind) { m.acceptErrs.inc(k) }

// scriptCache counts a script cache lookup.
func (m *Metrics) scriptCache(r cacheResult) { m.cache.inc(r) }

// reload counts a configuration reload.
func (m *Metrics) reload(r reloadResult) { m.reloads.inc(r) }

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
