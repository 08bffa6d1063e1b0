package vendors

import (
	"fmt"

	"github.com/VictoriaMetrics/metrics"

	"github.com/consentgate/consentgate/consentmode"
)

// Event actions and drop causes, the label values of the metrics.
const (
	actionSend = iota
	actionBlock
	actionDropped
	numActions
)

var actionNames = [numActions]string{"send", "block", "dropped_by_consent"}

const (
	causeQueueFull = iota
	causeSinkRefused
	causeClosed
	causeIncomplete // a built event lacks a field the API requires (no page URL, no User-Agent)
	numCauses
)

var causeNames = [numCauses]string{"queue_full", "sink_refused", "closed", "incomplete"}

// gatewayMetrics are the counters of the vendor calls, every label
// combination registered at New.
type gatewayMetrics struct {
	events  [consentmode.NumVendors][numActions]*metrics.Counter
	dropped [consentmode.NumVendors][numCauses]*metrics.Counter
}

func newGatewayMetrics(s *metrics.Set) *gatewayMetrics {
	m := &gatewayMetrics{}
	for v := range consentmode.Vendor(consentmode.NumVendors) {
		for a, n := range actionNames {
			m.events[v][a] = s.GetOrCreateCounter(fmt.Sprintf(`consentgate_vendor_events_total{vendor=%q,action=%q}`, v, n))
		}
		for c, n := range causeNames {
			m.dropped[v][c] = s.GetOrCreateCounter(fmt.Sprintf(`consentgate_vendor_dropped_total{vendor=%q,cause=%q}`, v, n))
		}
	}
	return m
}
