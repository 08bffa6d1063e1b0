//go:build !nokafka

package declog

import (
	"strings"
	"testing"

	"github.com/VictoriaMetrics/metrics"
	"github.com/twmb/franz-go/pkg/kfake"
	"go.uber.org/zap"

	"github.com/consentgate/consentgate/config"
)

const kafkaTopic = "consentgate.decisions"

// BenchmarkKafkaSinkWrite measures what the decision log's writer
// goroutine pays per record for the Kafka stream (copy, TryProduce), with
// the producer batching, compressing and sending to franz-go's
// in-process cluster in the background (which discards the records).
func BenchmarkKafkaSinkWrite(b *testing.B) {
	cluster, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(6, kafkaTopic), kfake.BlackholeProduce())
	if err != nil {
		b.Fatal(err)
	}
	defer cluster.Close()
	b.Setenv("CONSENTGATE_LOG_DECISIONS_KAFKA_BROKERS", strings.Join(cluster.ListenAddrs(), ","))
	cfg, err := config.Load("")
	if err != nil {
		b.Fatal(err)
	}
	set := metrics.NewSet()
	ks, err := NewKafkaSink(cfg.Log.Kafka, set, zap.NewNop())
	if err != nil {
		b.Fatal(err)
	}
	line := []byte(`{"ts":"2026-11-30T06:45:30.170356216Z","hit":1,"route":"ga4_collect","family":"ga4","region":"DE","action":"cookieless","enforced":true,"consent":{"ad_storage":"denied","analytics_storage":"denied","ad_user_data":"denied","ad_personalization":"denied"},"sources":{"ad_storage":"gcs","analytics_storage":"gcs","ad_user_data":"region_default:DE","ad_personalization":"region_default:DE"},"claimed":{"ad_storage":"denied","analytics_storage":"denied"},"reasons":["analytics_storage_denied","ad_storage_denied","ad_user_data_denied","ad_personalization_denied","region_default"],"removed":["cid","uid","cookie:_ga","header:Cookie"],"status":204,"upstream_ms":3,"error":"","policy_version":"cfd43d67e58c"}` + "\n")
	b.ReportAllocs()
	b.SetBytes(int64(len(line)))
	for b.Loop() {
		_, _ = ks.Write(line)
	}
	b.StopTimer()
	if err := ks.Close(); err != nil {
		b.Fatal(err)
	}
	full := set.GetOrCreateCounter(`consentgate_decision_kafka_dropped_total{cause="buffer_full"}`).Get()
	failed := set.GetOrCreateCounter(`consentgate_decision_kafka_dropped_total{cause="delivery_failed"}`).Get()
	b.ReportMetric(float64(full+failed)/float64(b.N), "dropped/op")
}
