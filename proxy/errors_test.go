package proxy

import (
	"bytes"
	"errors"
	"fmt"
	"net"
	"os"
	"sort"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/valyala/fasthttp"
	"go.uber.org/zap"
)

type timeoutErr struct{}

func (timeoutErr) Error() string   { return "i/o timeout" }
func (timeoutErr) Timeout() bool   { return true }
func (timeoutErr) Temporary() bool { return true }

var _ net.Error = timeoutErr{}

// TestWriteError: every error becomes one status, body, Retry-After and
// counter in one place.
func TestWriteError(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name       string
		give       error
		wantStatus int
		wantBody   string
		retryAfter string
		counted    rejectReason // upstreamFailed: no rejected_total series counts it
	}{
		{"local", errBadPath, 400, "bad_path\n", "", rejectBadPath},
		{"wrapped local", fmt.Errorf("x: %w", errEncoding), 415, "content_encoding\n", "", rejectEncoding},
		{"over budget", errOverBudget, 503, "over_budget\n", "1", rejectOverBudget},
		{"queue full", errQueueFull, 503, "queue_full\n", "1", rejectQueueFull},
		{"body too large", fasthttp.ErrBodyTooLarge, 413, "body_too_large\n", "", rejectBodyTooLarge},
		{"header too large", &fasthttp.ErrSmallBuffer{}, 431, "header_too_large\n", "", rejectHeaderTooLarge},
		{"read timeout", timeoutErr{}, 408, "timeout\n", "", rejectTimeout},
		{"malformed", errors.New("cannot parse"), 400, "bad_request\n", "", rejectBadRequest},
		{"upstream timeout", &upstreamError{fasthttp.ErrTimeout}, 504, "upstream_error\n", "", upstreamFailed},
		{"upstream refused", &upstreamError{errors.New("refused")}, 502, "upstream_error\n", "", upstreamFailed},
		{"script 404", &statusError{404}, 404, "upstream_error\n", "", upstreamFailed},
		{"script 500", &statusError{500}, 502, "upstream_error\n", "", upstreamFailed},
	}
	for _, tt := range tests {
		m := NewMetrics("t")
		h := &Handler{log: zap.NewNop(), metrics: m}
		var ctx fasthttp.RequestCtx
		h.writeError(&ctx, tt.give, -1)
		if got := ctx.Response.StatusCode(); got != tt.wantStatus {
			t.Errorf("%s: status %d, want %d", tt.name, got, tt.wantStatus)
		}
		if got := string(ctx.Response.Body()); got != tt.wantBody {
			t.Errorf("%s: body %q, want %q", tt.name, got, tt.wantBody)
		}
		if got := string(ctx.Response.Header.Peek("Retry-After")); got != tt.retryAfter {
			t.Errorf("%s: Retry-After %q, want %q", tt.name, got, tt.retryAfter)
		}
		for r := range numRejectReasons {
			want := uint64(0)
			if r == tt.counted {
				want = 1
			}
			if got := m.rejectedBy[r].Get(); got != want {
				t.Errorf("%s: rejected_total{reason=%q} = %d, want %d", tt.name, r, got, want)
			}
		}
	}
}

// TestRejectReasonsAreCounted: each reason metrics.rejected can be given
// counts in its own series, labelled with its name; upstreamFailed counts
// in none.
func TestRejectReasonsAreCounted(t *testing.T) {
	t.Parallel()
	m := NewMetrics("t")
	for r := range numRejectReasons {
		m.rejected(r)
		m.rejected(upstreamFailed)
		for other := range numRejectReasons {
			want := uint64(0)
			if other <= r {
				want = 1
			}
			if got := m.rejectedBy[other].Get(); got != want {
				t.Fatalf("after rejected(%s): %s counted %d, want %d", r, other, got, want)
			}
		}
	}
	var buf bytes.Buffer
	m.set.WritePrometheus(&buf)
	var got []string
	for line := range strings.Lines(buf.String()) {
		if strings.HasPrefix(line, "consentgate_rejected_total{") {
			got = append(got, strings.TrimSpace(line))
		}
	}
	var want []string
	for r := range numRejectReasons {
		want = append(want, fmt.Sprintf(`consentgate_rejected_total{reason=%q} 1`, r))
	}
	sort.Strings(want)
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("consentgate_rejected_total series (-want +got):\n%s", diff)
	}
}

// TestRejectReasonsDocumented: the status table of docs/limits.md names
// every reject reason, so a new one cannot go undocumented.
func TestRejectReasonsDocumented(t *testing.T) {
	t.Parallel()
	doc, err := os.ReadFile("../docs/limits.md")
	if err != nil {
		t.Fatal(err)
	}
	for r := range numRejectReasons + 1 {
		if !bytes.Contains(doc, []byte("`"+r.String()+"`")) {
			t.Errorf("docs/limits.md does not name the reject reason %s", r)
		}
	}
}
