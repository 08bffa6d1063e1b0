//go:build nokafka

package declog

import (
	"errors"

	"github.com/VictoriaMetrics/metrics"
	"go.uber.org/zap"

	"github.com/consentgate/consentgate/config"
)

// ErrNoKafka is NewKafkaSink's error in a build without the Kafka sink
// (the nokafka build tag).
var ErrNoKafka = errors.New("declog: this build has no kafka sink (built with -tags nokafka); remove log.decisions.kafka")

// KafkaSink is absent from this build: NewKafkaSink always fails, so no
// value of it is ever made.
type KafkaSink struct{}

// NewKafkaSink returns ErrNoKafka.
func NewKafkaSink(*config.Kafka, *metrics.Set, *zap.Logger) (*KafkaSink, error) {
	return nil, ErrNoKafka
}

// Write discards p.
func (s *KafkaSink) Write(p []byte) (int, error) { return len(p), nil }

// Sync does nothing.
func (s *KafkaSink) Sync() error { return nil }

// Close does nothing.
func (s *KafkaSink) Close() error { return nil }
