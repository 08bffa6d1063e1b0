//go:build !nokafka

package declog

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"os"
	"sync/atomic"
	"time"

	"github.com/VictoriaMetrics/metrics"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/sasl"
	"github.com/twmb/franz-go/pkg/sasl/plain"
	"github.com/twmb/franz-go/pkg/sasl/scram"
	"go.uber.org/zap"

	"github.com/consentgate/consentgate/config"
)

// KafkaSink streams decision-log records to a Kafka topic: each record's
// value is one decision-log line (the same JSON object the file log
// writes, without the newline), its key is empty (batches fill
// partitions evenly) and its header "source" names the gateway instance.
//
// The producer is idempotent (acks from all in-sync replicas, no
// duplicates on retry), batches per partition for up to the configured
// linger, and compresses batches. It never blocks its caller: a record
// that does not fit into the bounded buffer, or is not acknowledged
// within the delivery timeout, is dropped and counted in
// consentgate_decision_kafka_dropped_total{cause}. The decision log's
// writer goroutine is the only caller, so a slow or absent cluster holds
// up neither hits nor the file log.
type KafkaSink struct {
	cl           *kgo.Client
	closeTimeout time.Duration
	headers      []kgo.RecordHeader
	log          *zap.Logger

	delivered   *metrics.Counter
	droppedFull *metrics.Counter
	droppedFail *metrics.Counter
	// lastErrLog rate-limits the log line of failed deliveries (unix nanoseconds).
	lastErrLog atomic.Int64
}

// NewKafkaSink connects lazily to the brokers of k: it returns without
// waiting for them, and the first records wait in the buffer until a
// broker answers. Its metrics go to set (nil: a private set). Close
// flushes and stops it.
func NewKafkaSink(k *config.Kafka, set *metrics.Set, log *zap.Logger) (*KafkaSink, error) {
	if set == nil {
		set = metrics.NewSet()
	}
	opts := []kgo.Opt{
		kgo.SeedBrokers(k.Brokers...),
		kgo.DefaultProduceTopic(k.Topic),
		kgo.ProducerLinger(k.Linger),
		kgo.ProducerBatchMaxBytes(int32(k.BatchMaxBytes)), // validated ≤ 1 GiB
		kgo.MaxBufferedRecords(k.MaxBufferedRecords),
		kgo.RecordDeliveryTimeout(k.DeliveryTimeout),
		// Idempotence (franz-go's default) needs acks from all in-sync replicas.
		kgo.RequiredAcks(kgo.AllISRAcks()),
		kgo.WithLogger(kafkaLogger{log}),
	}
	if k.ClientID != "" {
		opts = append(opts, kgo.ClientID(k.ClientID))
	}
	switch k.Compression {
	case "zstd":
		opts = append(opts, kgo.ProducerBatchCompression(kgo.ZstdCompression()))
	case "lz4":
		opts = append(opts, kgo.ProducerBatchCompression(kgo.Lz4Compression()))
	case "snappy":
		opts = append(opts, kgo.ProducerBatchCompression(kgo.SnappyCompression()))
	case "gzip":
		opts = append(opts, kgo.ProducerBatchCompression(kgo.GzipCompression()))
	case "none":
		opts = append(opts, kgo.ProducerBatchCompression(kgo.NoCompression()))
	default:
		return nil, fmt.Errorf("kafka: unknown compression %q", k.Compression)
	}
	if k.TLS {
		tc := &tls.Config{MinVersion: tls.VersionTLS12, ServerName: k.ServerName}
		if k.CAFile != "" {
			pem, err := os.ReadFile(k.CAFile)
			if err != nil {
				return nil, fmt.Errorf("kafka: %w", err)
			}
			tc.RootCAs = x509.NewCertPool()
			if !tc.RootCAs.AppendCertsFromPEM(pem) {
				return nil, fmt.Errorf("kafka: %s holds no PEM certificate", k.CAFile)
			}
		}
		opts = append(opts, kgo.DialTLSConfig(tc))
	}
	if mech := saslMechanism(k); mech != nil {
		opts = append(opts, kgo.SASL(mech))
	}
	cl, err := kgo.NewClient(opts...)
	if err != nil {
		return nil, fmt.Errorf("kafka: %w", err)
	}
	host, _ := os.Hostname()
	s := &KafkaSink{
		cl:           cl,
		closeTimeout: k.CloseTimeout,
		headers:      []kgo.RecordHeader{{Key: "source", Value: []byte(host)}},
		log:          log,
		delivered:    set.GetOrCreateCounter(`consentgate_decision_kafka_records_total`),
		droppedFull:  set.GetOrCreateCounter(`consentgate_decision_kafka_dropped_total{cause="buffer_full"}`),
		droppedFail:  set.GetOrCreateCounter(`consentgate_decision_kafka_dropped_total{cause="delivery_failed"}`),
	}
	set.GetOrCreateGauge(`consentgate_decision_kafka_buffered_records`, func() float64 { return float64(cl.BufferedProduceRecords()) })
	return s, nil
}

func saslMechanism(k *config.Kafka) sasl.Mechanism {
	switch k.SASLMechanism {
	case "plain":
		return plain.Auth{User: k.SASLUsername, Pass: k.SASLPassword}.AsMechanism()
	case "scram-sha-256":
		return scram.Auth{User: k.SASLUsername, Pass: k.SASLPassword}.AsSha256Mechanism()
	case "scram-sha-512":
		return scram.Auth{User: k.SASLUsername, Pass: k.SASLPassword}.AsSha512Mechanism()
	}
	return nil
}

// Write queues one encoded decision-log line (zap's core writes each
// entry with one call) and returns at once. p is copied: the caller may
// reuse it. It never fails: drops are counted instead, so that a Kafka
// problem never disturbs the file log written next to it.
func (s *KafkaSink) Write(p []byte) (int, error) {
	n := len(p)
	if n > 0 && p[n-1] == '\n' {
		p = p[:n-1]
	}
	if len(p) == 0 {
		return n, nil
	}
	rec := &kgo.Record{Value: append([]byte(nil), p...), Headers: s.headers}
	s.cl.TryProduce(context.Background(), rec, s.done)
	return n, nil
}

// Sync is a no-op: the producer flushes batches on its own schedule, and
// the decision log must not wait for the brokers.
func (s *KafkaSink) Sync() error { return nil }

// done counts one record's outcome. franz-go calls it from its own goroutines.
func (s *KafkaSink) done(_ *kgo.Record, err error) {
	switch {
	case err == nil:
		s.delivered.Inc()
	case errors.Is(err, kgo.ErrMaxBuffered):
		s.droppedFull.Inc()
	default:
		s.droppedFail.Inc()
		// One line per 10 s at most: a broken cluster fails every record.
		now := time.Now().UnixNano()
		if last := s.lastErrLog.Load(); now-last > int64(10*time.Second) && s.lastErrLog.CompareAndSwap(last, now) {
			s.log.Error("decision log: kafka delivery failed; records are dropped and counted", zap.Error(err))
		}
	}
}

// Close waits up to the close timeout for buffered records to be
// acknowledged, then closes the client; what is still buffered then is
// dropped and counted.
func (s *KafkaSink) Close() error {
	if s == nil {
		return nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), s.closeTimeout)
	defer cancel()
	err := s.cl.Flush(ctx)
	s.cl.Close()
	if err != nil {
		return fmt.Errorf("kafka: flush at close: %w", err)
	}
	return nil
}

// kafkaLogger passes franz-go's warnings and errors to zap.
type kafkaLogger struct{ l *zap.Logger }

func (k kafkaLogger) Level() kgo.LogLevel { return kgo.LogLevelWarn }

func (k kafkaLogger) Log(level kgo.LogLevel, msg string, keyvals ...any) {
	fields := make([]zap.Field, 0, len(keyvals)/2)
	for i := 0; i+1 < len(keyvals); i += 2 {
		key, _ := keyvals[i].(string)
		fields = append(fields, zap.Any(key, keyvals[i+1]))
	}
	switch level {
	case kgo.LogLevelError:
		k.l.Error("kafka: "+msg, fields...)
	case kgo.LogLevelWarn:
		k.l.Warn("kafka: "+msg, fields...)
	default:
		k.l.Debug("kafka: "+msg, fields...)
	}
}
