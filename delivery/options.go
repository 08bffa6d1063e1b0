package delivery

import (
	"errors"
	"net"
	"strconv"
	"syscall"
	"time"

	"github.com/VictoriaMetrics/metrics"
	"github.com/valyala/fasthttp"
	"go.uber.org/zap"
)

// Options are delivery's settings and collaborators; the caller fills
// them from its configuration. Zero collaborators get harmless defaults
// (no log, no metrics series of its own, the system clock).
type Options struct {
	// MaxAge: a hit not delivered this long after it was accepted is
	// dropped (counted, cause max_age).
	MaxAge time.Duration
	// QueueSize and QueueBytes bound the memory queue of each lane.
	QueueSize  int
	QueueBytes int64
	// Workers is the number of hits of each lane in flight at once.
	Workers int
	// PipelineConns, when positive, is the number of connections per
	// upstream, each carrying up to Workers/PipelineConns hits at once,
	// their requests written in batches (HTTP/1.1 pipelining, or streams
	// of one HTTP/2 connection). 0: Workers connections of one hit each.
	PipelineConns int
	// HTTP2 offers HTTP/2 to TLS upstreams (ALPN); the hits of a batch
	// are then streams of one connection, their frames written together.
	HTTP2 bool
	// SpoolDir is the spool directory; "" keeps hits in memory only.
	SpoolDir          string
	SpoolMaxBytes     int64
	SpoolSegmentBytes int64
	SpoolSync         time.Duration
	// Timeout bounds one upstream attempt.
	Timeout time.Duration

	Log     *zap.Logger
	Metrics *Metrics // from NewMetrics
	Now     func() time.Time
	// LabelOf maps an Accept tag to the index of its label in the labels
	// given to NewMetrics (out of range: the first label).
	LabelOf func(tag int) int
	// Observe is told of every upstream attempt: the hit's tag, its
	// latency, the answer's status and the error of the exchange.
	Observe func(tag int, latency time.Duration, status int, err error)
	// Client returns the client of an upstream found in the spool at
	// start (a lane left by an earlier run).
	Client func(scheme, host string) *fasthttp.HostClient
	// Tune, when set, may set an upstream's Merge, Batch and Refused
	// when its lane is made (also a lane left in the spool by an earlier
	// run, whose upstream says only its scheme and host).
	Tune func(up *Upstream)
}

func (o *Options) defaults() {
	if o.Log == nil {
		o.Log = zap.NewNop()
	}
	if o.Metrics == nil {
		o.Metrics = NewMetrics(metrics.NewSet(), []string{"none"})
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.LabelOf == nil {
		o.LabelOf = func(int) int { return 0 }
	}
	if o.Observe == nil {
		o.Observe = func(int, time.Duration, int, error) {}
	}
	if o.Client == nil {
		o.Client = func(scheme, host string) *fasthttp.HostClient {
			return &fasthttp.HostClient{Addr: hostPort(scheme, host), IsTLS: scheme == "https"}
		}
	}
}

// hostPort adds the scheme's default port to a host without one.
func hostPort(scheme, host string) string {
	if _, _, err := net.SplitHostPort(host); err == nil {
		return host
	}
	if scheme == "https" {
		return host + ":443"
	}
	return host + ":80"
}

// Upstream is where a lane delivers: the Host and scheme of its requests
// and the client that sends them (shared with the caller's synchronous
// requests, so both use the same warm connections).
type Upstream struct {
	Scheme string // "https" or "http"
	Host   string // Host header value
	Client *fasthttp.HostClient
	// Merge, when set, makes the lane coalesce: each sender keeps one
	// request in flight and sends every hit waiting meanwhile (up to
	// Batch) as one request, Merge's merge of their requests (merge.go).
	// Each hit is still spooled, settled and counted on its own. For APIs
	// that take many events per call (the other vendors'); nil for
	// Google's endpoints.
	Merge MergeFunc
	Batch int
	// Refused, when set, reads the body of a success answer and reports
	// whether the upstream refused the request after all (an API that
	// answers 200 with an error code): the hit is then dropped as
	// rejected_4xx. A lane with Refused speaks HTTP/1.1, whose answers it
	// reads whole.
	Refused func(body []byte) bool
}

// GaugeNames lists the metric families every lane adds (labelled by its
// upstream), for documentation and dashboards.
func GaugeNames() []string {
	names := make([]string, len(laneGauges))
	for i, g := range laneGauges {
		names[i] = g.name
	}
	return names
}

// catalogue is a closed set of label values: a small integer type whose
// values run from 0 to a count constant and whose String is the label.
type catalogue interface {
	~uint8
	String() string
}

// counterVec is one counter per value of a catalogue K, indexed by K and
// all created up front.
type counterVec[K catalogue] []*metrics.Counter

// inc counts one k.
func (v counterVec[K]) inc(k K) { v[k].Inc() }

func newCounterVec[K catalogue](s *metrics.Set, prefix string, n K) counterVec[K] {
	v := make(counterVec[K], n)
	for k := range n {
		v[k] = s.NewCounter(prefix + strconv.Quote(k.String()) + "}")
	}
	return v
}

// upstreamErrKind is the kind of a failed exchange, as far as the retry
// causes need it.
type upstreamErrKind uint8

const (
	upErrTimeout upstreamErrKind = iota
	upErrRefused
	upErrNoFreeConns
	upErrOther
)

var upstreamErrKindNames = [...]string{upErrTimeout: "timeout", upErrRefused: "refused", upErrNoFreeConns: "no_free_conns", upErrOther: "other"}

// String returns the kind's label, e.g. "timeout".
func (k upstreamErrKind) String() string { return upstreamErrKindNames[k] }

// classifyUpstream says which kind of failure err is.
func classifyUpstream(err error) upstreamErrKind {
	var ne net.Error
	switch {
	case errors.Is(err, fasthttp.ErrTimeout) || (errors.As(err, &ne) && ne.Timeout()):
		return upErrTimeout
	case errors.Is(err, fasthttp.ErrNoFreeConns):
		return upErrNoFreeConns
	case errors.Is(err, syscall.ECONNREFUSED):
		return upErrRefused
	}
	return upErrOther
}

// DropCauses lists the cause labels of consentgate_delivery_dropped_total.
func DropCauses() []string { return append([]string(nil), dropCauseNames[:]...) }

// RetryCauses lists the cause labels of consentgate_delivery_retried_total.
func RetryCauses() []string { return append([]string(nil), retryCauseNames[:]...) }
