package proxy

import (
	"bytes"
	"encoding/json"
	"io"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"go.uber.org/zap/zapcore"

	"github.com/consentgate/consentgate/config"
	"github.com/consentgate/consentgate/consentmode"
)

// loggedDecision returns a decision-log entry for a denied GA4 hit.
func loggedDecision(t testing.TB) logEntry {
	cfg, err := config.Load("")
	if err != nil {
		t.Fatal(err)
	}
	var w consentmode.Work
	ri, _ := consentmode.MatchRoute([]byte("/g/collect"))
	in := consentmode.Input{Route: ri, Family: consentmode.FamilyGA4, Day: 20000,
		Query:  []byte("v=2&tid=G-ABC123&gcs=G100&gcd=13p3p3p2p5l1&cid=1.2&sid=3&uid=u&en=page_view"),
		Cookie: []byte("_ga=GA1.1.1.2; x=y")}
	return logEntry{at: time.Date(2026, 11, 30, 8, 0, 0, 900_000_000, time.UTC), hit: 7, d: consentmode.Decide(&in, cfg.Policy, &w), cfg: cfg,
		status: 204, latency: 12500 * time.Microsecond, errKind: "timeout", delivery: "queue"}
}

// TestDecisionLogLineIsRecord: a decision-log line reads back, field for
// field, into the Record newRecord made of the decision. A field written to
// the log but missing from Record fails the decode.
func TestDecisionLogLineIsRecord(t *testing.T) {
	var buf syncBuffer
	l := newDecisionLog(&buf, func() error { return nil }, nil)
	e := loggedDecision(t)
	l.write(&e)
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	dec := json.NewDecoder(bytes.NewReader([]byte(buf.String())))
	dec.DisallowUnknownFields()
	var got Record
	if err := dec.Decode(&got); err != nil {
		t.Fatalf("decode %s: %v", buf.String(), err)
	}
	want := newRecord(&e.d, e.cfg, true)
	want.PolicyRegion = "" // explain only
	want.Time, want.Hit, want.Status, want.Delivery, want.Error, want.UpstreamMS = e.at, e.hit, 204, "queue", "timeout", 12.5
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("log line differs from the record (-want +got):\n%s\n%s", diff, buf.String())
	}
	if len(got.Removed) == 0 || got.Consent[consentmode.AnalyticsStorage] != "denied" {
		t.Errorf("record of a denied hit: %+v", got)
	}
}

// BenchmarkDecisionLogWrite measures encoding one decision-log line: the
// log goroutine's work, off the request path.
func BenchmarkDecisionLogWrite(b *testing.B) {
	l := newDecisionLog(zapcore.AddSync(io.Discard), func() error { return nil }, nil)
	defer l.Close()
	e := loggedDecision(b)
	b.ReportAllocs()
	for b.Loop() {
		l.write(&e)
	}
}
