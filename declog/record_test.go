package declog

import (
	"bytes"
	"encoding/json"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/consentgate/consentgate/config"
	"github.com/consentgate/consentgate/consentmode"
)

// syncBuffer is a goroutine-safe buffer for the decision log.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}
func (s *syncBuffer) Sync() error { return nil }
func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// loggedDecision returns a decision-log entry for a denied GA4 hit.
func loggedDecision(t testing.TB) Entry {
	cfg, err := config.Load("")
	if err != nil {
		t.Fatal(err)
	}
	var w consentmode.Work
	ri, _ := consentmode.MatchRoute([]byte("/g/collect"))
	in := consentmode.Input{Route: ri, Family: consentmode.FamilyGA4, Day: 20000,
		Query:  []byte("v=2&tid=G-ABC123&gcs=G100&gcd=13p3p3p2p5l1&cid=1.2&sid=3&uid=u&en=page_view"),
		Cookie: []byte("_ga=GA1.1.1.2; x=y")}
	return Entry{At: time.Date(2026, 11, 30, 8, 0, 0, 900_000_000, time.UTC), Hit: 7, Decision: consentmode.Decide(&in, cfg.Policy, &w), Config: cfg,
		Status: 204, Latency: 12500 * time.Microsecond, ErrKind: "timeout", Delivery: "queue"}
}

// TestDecisionLogLineIsRecord: a decision-log line reads back, field for
// field, into the Record NewRecord made of the decision. A field written to
// the log but missing from Record fails the decode.
func TestDecisionLogLineIsRecord(t *testing.T) {
	t.Parallel()
	var buf syncBuffer
	l := New(&buf, nil, nil)
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
	want := NewRecord(&e.Decision, e.Config, true)
	want.PolicyRegion = "" // explain only
	want.Time, want.Hit, want.Status, want.Delivery, want.Error, want.UpstreamMS = e.At, e.Hit, 204, "queue", "timeout", 12.5
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("log line differs from the record (-want +got):\n%s\n%s", diff, buf.String())
	}
	if len(got.Removed) == 0 || got.Consent[consentmode.AnalyticsStorage] != "denied" {
		t.Errorf("record of a denied hit: %+v", got)
	}
}
