package proxy

import (
	"slices"
	"strings"
)

// help says what each of the gateway's metric families counts. It is the
// # HELP text of /metrics and the metrics table of docs/operators.md.
var help = map[string]string{
	"consentgate_hits_total":                 "Hits decided, by route, family and action (forward, strip, cookieless, block).",
	"consentgate_decision_reasons_total":     "Decisions by family and reason code.",
	"consentgate_consent_downgrades_total":   "Consent types a hit claimed granted and the gateway enforced denied, by type and the source that decided.",
	"consentgate_malformed_signals_total":    "Malformed consent inputs, by input (gcs, gcd, npa, tcf, us_privacy, gpp, cmp_cookie, body).",
	"consentgate_region_unknown_total":       "Hits without a trusted region (they take consent.unknown_region).",
	"consentgate_removed_fields_total":       "Fields removed from hits, by name (the closed field catalogue).",
	"consentgate_upstream_duration_seconds":  "Upstream request latency in seconds by family and route, failed requests included.",
	"consentgate_upstream_errors_total":      "Upstream failures by family, route and kind: timeout, refused, no_free_conns, other (no answer) and 5xx (a server error answer).",
	"consentgate_responses_total":            "Responses to browsers by family (none: no route matched) and status class.",
	"consentgate_rejected_total":             "Requests answered locally with an error status (4xx, 503 over a limit), by reason; nothing was forwarded.",
	"consentgate_vendor_events_total":        "Other vendors' events from GA4 hits and envelope calls, by vendor and action: send (built and handed to delivery, which merges them into calls and counts them as consentgate_delivery_* family vendor_<name>), block (consent let nothing leave), dropped_by_consent (left out under conversions_only).",
	"consentgate_vendor_dropped_total":       "Other vendors' events given up before delivery, by vendor and cause: sink_refused (delivery did not take the event), incomplete (a field the API requires is missing); queue_full (the builder's queue) and closed (offered during shutdown) count hits, whose events were not built.",
	"consentgate_vendor_envelopes_total":     "Calls of the envelope routes (/vendors/<name>/events) by vendor and result: send (queued, consent applied), block (consent allows nothing), or why the call was refused (consent_envelope_missing, consent_envelope_malformed, vendor_payload_invalid).",
	"consentgate_conflicting_headers_total":  "Headers sent twice with different values (geo, content_type, content_encoding, sec_gpc): the fail-closed answer applied.",
	"consentgate_accept_errors_total":        "Failed accepts by kind (emfile, enfile, enobufs, enomem, other); the listener backs off and retries.",
	"consentgate_reading_requests":           "Requests being read now (header or body still arriving).",
	"consentgate_buffered_request_bytes":     "Request bytes held by requests in progress.",
	"consentgate_script_cache_total":         "Script cache lookups by result: hit, miss, coalesced, stale, error.",
	"consentgate_config_reloads_total":       "Config reloads by result (success, unchanged, failure).",
	"consentgate_decision_log_dropped_total": "Decision-log lines dropped because the writer fell behind.",
	"consentgate_in_flight_requests":         "Requests being handled now.",
	"consentgate_enforcing":                  "1 when consent is enforced, 0 in dry run.",
	"consentgate_build_info":                 "Build version (always 1).",
	"consentgate_delivery_accepted_total":    "Queued hits accepted (answered 204), by family.",
	"consentgate_delivery_delivered_total":   "Queued hits delivered upstream, by family.",
	"consentgate_delivery_retried_total":     "Delivery attempts that failed and will be retried, by cause: refused, timeout, 5xx, 429, other.",
	"consentgate_delivery_dropped_total":     "Queued hits given up, by cause: max_age, rejected_4xx, spool_corrupt (one per hit lost to a damaged spool record), shutdown (no spool), malformed.",

	"consentgate_delivery_spool_errors_total": "Spool operations that failed, by op: append (the hit got 503), read, sync, ack (kept and written again), dir, seal, remove, close.",

	// The per-upstream gauges of the delivery lanes (present once delivery
	// has started; the spool ones only with delivery.spool.dir).
	"consentgate_delivery_queue_depth":        "Queued hits waiting in memory for a worker, by upstream (at most delivery.queue_size).",
	"consentgate_delivery_inflight":           "Queued hits being sent to the upstream now, by upstream (at most delivery.workers).",
	"consentgate_delivery_oldest_age_seconds": "Age in seconds of the oldest hit not yet delivered, by upstream; hits older than delivery.max_age are dropped.",
	"consentgate_delivery_circuit_open":       "1 while the upstream's circuit is open (recent attempts failed, delivery paused and retried later), else 0.",
	"consentgate_delivery_spool_bytes":        "Bytes of hits in the on-disk spool not yet delivered, by upstream; at delivery.spool.max_bytes new queued hits get 503.",
	"consentgate_delivery_spool_records":      "Hits in the on-disk spool not yet delivered, by upstream.",
	"consentgate_delivery_spool_writes":       "write(2) calls that appended hits to the spool since start, by upstream; accepted_total over this is the group-commit batch size.",

	// Batched sending: its system calls, by upstream.
	"consentgate_delivery_upstream_writes_total":  "Writes of requests to the upstream (one per batch), by upstream.",
	"consentgate_delivery_upstream_written_total": "Hits those writes carried, by upstream; over upstream_writes_total, the hits per write.",
	"consentgate_delivery_upstream_reads_total":   "Reads of the upstream's answers (system calls, below TLS), by upstream.",

	"consentgate_decision_kafka_records_total":    "Decision-log records the Kafka brokers acknowledged (log.decisions.kafka; present when configured).",
	"consentgate_decision_kafka_dropped_total":    "Decision-log records not streamed to Kafka, by cause: buffer_full (brokers slow or away), delivery_failed (not acknowledged in time, or left at shutdown).",
	"consentgate_decision_kafka_buffered_records": "Decision-log records waiting for the Kafka brokers.",

	"go_goroutines":                 "Goroutines that currently exist.",
	"go_threads":                    "OS threads created by the Go runtime.",
	"go_gc_duration_seconds":        "Duration of the stop-the-world phases of garbage collections in seconds.",
	"go_memstats_alloc_bytes":       "Bytes of heap objects allocated and still in use.",
	"go_memstats_sys_bytes":         "Bytes of memory obtained from the OS by the Go runtime.",
	"go_memlimit_bytes":             "The Go runtime's soft memory limit (GOMEMLIMIT) in bytes.",
	"go_gomaxprocs":                 "GOMAXPROCS: the CPUs Go code runs on at once.",
	"go_cpu_count":                  "CPUs the process may use.",
	"go_info":                       "Go version (always 1).",
	"go_info_ext":                   "Go runtime settings (always 1).",
	"process_cpu_seconds_total":     "CPU time of the process in seconds, user and system.",
	"process_resident_memory_bytes": "Resident memory of the process in bytes.",
	"process_start_time_seconds":    "Start time of the process in seconds since the Unix epoch.",
	"process_open_fds":              "Open file descriptors: client and upstream connections, files.",
	"process_max_fds":               "The limit of open file descriptors.",
	"process_num_threads":           "OS threads of the process.",
	"process_virtual_memory_bytes":  "Virtual memory of the process in bytes.",
}

// Families lists the gateway's own metric families (consentgate_*), each
// with a text in help: the families NewMetrics registers, the delivery
// lanes' and the Kafka sink's. docs/operators.md's table is made from it.
func Families() []string {
	var out []string
	for n := range help {
		if strings.HasPrefix(n, "consentgate_") {
			out = append(out, n)
		}
	}
	slices.Sort(out)
	return out
}

// Help returns the # HELP text of a metric family. Runtime and process
// metrics without their own text get one made from their name; a
// consentgate_* family without a text gets a placeholder that
// TestMetricsHelp refuses.
func Help(name string) string {
	if h := help[name]; h != "" {
		return h
	}
	for _, p := range []struct{ prefix, what string }{
		{"go_memstats_", "Go memory statistics (runtime.MemStats): "},
		{"go_gc_", "Go garbage collector: "},
		{"go_sched_", "Go scheduler: "},
		{"go_", "Go runtime: "},
		{"process_pressure_", "Pressure stall information of the process's cgroup: "},
		{"process_cgroup_", "The process's cgroup: "},
		{"process_io_", "I/O of the process: "},
		{"process_", "The process: "},
	} {
		if rest, ok := strings.CutPrefix(name, p.prefix); ok {
			return p.what + strings.ReplaceAll(rest, "_", " ") + "."
		}
	}
	return "consentgate metric " + name + "."
}
