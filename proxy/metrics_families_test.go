//go:build !nokafka

package proxy

import (
	"bytes"
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/VictoriaMetrics/metrics"
	"github.com/twmb/franz-go/pkg/kfake"
)

// The test below turns the Kafka stream on, so it is left out of a
// nokafka build with the other Kafka tests.

// TestMetricsHelpEveryFamily: a gateway with every optional part on (the
// delivery lanes with their spool, the Kafka stream) shows each
// consentgate_* family with the text written for it, never the
// placeholder; and Families, which docs/operators.md's table lists, holds
// exactly the families such a gateway shows.
func TestMetricsHelpEveryFamily(t *testing.T) {
	// Not parallel: ExposeMetadata is global, and a parallel test's
	// deferred reset would hide the metadata from this one.
	metrics.ExposeMetadata(true)
	defer metrics.ExposeMetadata(false)
	cluster, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(1, kafkaTopic))
	if err != nil {
		t.Fatal(err)
	}
	defer cluster.Close()
	cfg := strings.Replace(kafkaConfig(cluster.ListenAddrs(), ""), "delivery: {ga4: sync,", fmt.Sprintf("delivery: {ga4: queue, spool: {dir: %q},", t.TempDir()), 1)
	cfg += "vendors: {meta: {enabled: true, id: \"1\", token: token-1234, endpoint: \"http://127.0.0.1:9\"}}\n"
	g, closeGateway := newKafkaGateway(t, cfg)
	defer closeGateway()
	if err := g.h.StartDelivery(); err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	g.m.WritePrometheus(&buf)
	shown := map[string]bool{}
	for line := range strings.SplitSeq(buf.String(), "\n") {
		rest, ok := strings.CutPrefix(line, "# HELP consentgate_")
		if !ok {
			continue
		}
		name, text, _ := strings.Cut(rest, " ")
		name = "consentgate_" + name
		shown[name] = true
		if text != help[name] || text == "" || strings.HasPrefix(text, "consentgate metric ") {
			t.Errorf("# HELP %s %s: want the text of help, not the placeholder", name, text)
		}
	}
	var missing, extra []string
	for _, n := range Families() {
		if !shown[n] {
			extra = append(extra, n)
		}
	}
	for n := range shown {
		if !slices.Contains(Families(), n) {
			missing = append(missing, n)
		}
	}
	if len(missing)+len(extra) > 0 {
		t.Errorf("Families and /metrics differ: shown without a text %v; listed but never shown %v", missing, extra)
	}
}
