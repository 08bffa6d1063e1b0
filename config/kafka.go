package config

import (
	"fmt"
	"net"
	"os"
	"slices"
	"strings"
	"time"
)

// Kafka configures the optional decision-log stream to a Kafka topic:
// the same records as the decision log, one JSON object per record.
// Changing it takes a restart.
type Kafka struct {
	// Brokers are the seed brokers (host:port).
	Brokers []string
	// Topic receives the records.
	Topic    string
	ClientID string
	// Compression is one of zstd, lz4, snappy, gzip or none.
	Compression string
	// Linger is how long a partition's batch waits to fill.
	Linger time.Duration
	// BatchMaxBytes bounds one record batch.
	BatchMaxBytes int
	// MaxBufferedRecords bounds the records waiting for the brokers;
	// records beyond it are dropped and counted.
	MaxBufferedRecords int
	// DeliveryTimeout is how long a record may wait for an
	// acknowledgement, retries included, before it is dropped and counted.
	DeliveryTimeout time.Duration
	// CloseTimeout bounds the flush at shutdown.
	CloseTimeout time.Duration

	TLS bool
	// CAFile is a PEM bundle of the brokers' CAs ("": system roots).
	CAFile     string
	ServerName string
	// SASLMechanism is "", plain, scram-sha-256 or scram-sha-512.
	SASLMechanism, SASLUsername, SASLPassword string
}

type kafkaFile struct {
	Brokers            []string      `mapstructure:"brokers"`
	Topic              string        `mapstructure:"topic"`
	ClientID           string        `mapstructure:"client_id"`
	Compression        string        `mapstructure:"compression"`
	Linger             time.Duration `mapstructure:"linger"`
	BatchMaxBytes      int           `mapstructure:"batch_max_bytes"`
	MaxBufferedRecords int           `mapstructure:"max_buffered_records"`
	DeliveryTimeout    time.Duration `mapstructure:"delivery_timeout"`
	CloseTimeout       time.Duration `mapstructure:"close_timeout"`
	TLS                struct {
		Enabled    bool   `mapstructure:"enabled"`
		CAFile     string `mapstructure:"ca_file"`
		ServerName string `mapstructure:"server_name"`
	} `mapstructure:"tls"`
	SASL struct {
		Mechanism string `mapstructure:"mechanism"`
		Username  string `mapstructure:"username"`
		Password  string `mapstructure:"password"`
	} `mapstructure:"sasl"`
}

// KafkaCompressions are the accepted values of log.decisions.kafka.compression.
var KafkaCompressions = []string{"zstd", "lz4", "snappy", "gzip", "none"}

// buildKafka validates log.decisions.kafka. It returns nil without
// brokers: the stream is off.
func buildKafka(k *kafkaFile) (*Kafka, []error) {
	var brokers []string
	for _, b := range k.Brokers {
		if b = strings.TrimSpace(b); b != "" {
			brokers = append(brokers, b)
		}
	}
	if len(brokers) == 0 {
		return nil, nil
	}
	var ps []error
	bad := func(format string, args ...any) {
		ps = append(ps, fmt.Errorf("log.decisions.kafka."+format, args...))
	}
	for _, b := range brokers {
		if host, port, err := net.SplitHostPort(b); err != nil || host == "" || port == "" {
			bad("brokers: %q is not host:port", b)
		}
	}
	if k.Topic == "" || len(k.Topic) > 249 || strings.Trim(k.Topic, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-") != "" || k.Topic == "." || k.Topic == ".." {
		bad("topic: %q is not a Kafka topic name (letters, digits, '.', '_', '-', at most 249)", k.Topic)
	}
	if !slices.Contains(KafkaCompressions, k.Compression) {
		bad("compression: %q is not one of %s", k.Compression, strings.Join(KafkaCompressions, ", "))
	}
	if k.Linger < 0 || k.Linger > time.Minute {
		bad("linger: %s is not between 0 and 1m", k.Linger)
	}
	if k.BatchMaxBytes < 1024 || k.BatchMaxBytes > 1<<30 {
		bad("batch_max_bytes: %d is not between 1024 and 1073741824", k.BatchMaxBytes)
	}
	if k.MaxBufferedRecords <= 0 {
		bad("max_buffered_records: must be positive, not %d", k.MaxBufferedRecords)
	}
	if k.DeliveryTimeout <= 0 {
		bad("delivery_timeout: must be positive, not %s", k.DeliveryTimeout)
	}
	if k.CloseTimeout <= 0 {
		bad("close_timeout: must be positive, not %s", k.CloseTimeout)
	}
	if k.TLS.CAFile != "" {
		if !k.TLS.Enabled {
			bad("tls.ca_file: set, but tls.enabled is false")
		} else if _, err := os.Stat(k.TLS.CAFile); err != nil {
			bad("tls.ca_file: %v", err)
		}
	}
	switch k.SASL.Mechanism {
	case "":
		if k.SASL.Username != "" || k.SASL.Password != "" {
			bad("sasl: username or password set without a mechanism (plain, scram-sha-256, scram-sha-512)")
		}
	case "plain", "scram-sha-256", "scram-sha-512":
		if k.SASL.Username == "" || k.SASL.Password == "" {
			bad("sasl: %s needs username and password", k.SASL.Mechanism)
		}
	default:
		bad("sasl.mechanism: %q is not plain, scram-sha-256 or scram-sha-512", k.SASL.Mechanism)
	}
	return &Kafka{
		Brokers: brokers, Topic: k.Topic, ClientID: k.ClientID, Compression: k.Compression,
		Linger: k.Linger, BatchMaxBytes: k.BatchMaxBytes, MaxBufferedRecords: k.MaxBufferedRecords,
		DeliveryTimeout: k.DeliveryTimeout, CloseTimeout: k.CloseTimeout,
		TLS: k.TLS.Enabled, CAFile: k.TLS.CAFile, ServerName: k.TLS.ServerName,
		SASLMechanism: k.SASL.Mechanism, SASLUsername: k.SASL.Username, SASLPassword: k.SASL.Password,
	}, ps
}

// kafkaWarnings lists Kafka settings the operator should know about.
func kafkaWarnings(k *Kafka) []string {
	if k == nil {
		return nil
	}
	var w []string
	if k.SASLMechanism != "" && !k.TLS {
		w = append(w, "log.decisions.kafka: SASL without TLS: the records travel in the clear, and with plain the password too")
	}
	return w
}
