// Package declog holds the decision record and the decision log: Record,
// the one rendering of a consentmode.Decision that the log, explain,
// /debug/explain and audit share; Log, which writes one record per hit
// from its own goroutine; and its sinks (a file, stdout or stderr, and a
// Kafka topic). ParseRecord reads a logged line back for audit.
//
// It must never import proxy, delivery or fasthttp: audit reads and checks
// decision logs without the hit path, and the hit path only hands a Log
// plain Entry values. It must never log a request's identifiers, URLs or
// query strings. The Kafka sink (franz-go) is left out of a build with
// the nokafka build tag; NewKafkaSink then fails with ErrNoKafka.
package declog
