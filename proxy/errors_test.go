package proxy

import (
	"errors"
	"fmt"
	"net"
	"testing"

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
	tests := []struct {
		name       string
		give       error
		wantStatus int
		wantBody   string
		retryAfter string
		counted    string
	}{
		{"local", errBadPath, 400, "bad_path\n", "", "bad_path"},
		{"wrapped local", fmt.Errorf("x: %w", errEncoding), 415, "content_encoding\n", "", "content_encoding"},
		{"over budget", errOverBudget, 503, "over_budget\n", "1", "over_budget"},
		{"body too large", fasthttp.ErrBodyTooLarge, 413, "body_too_large\n", "", "body_too_large"},
		{"header too large", &fasthttp.ErrSmallBuffer{}, 431, "header_too_large\n", "", "header_too_large"},
		{"read timeout", timeoutErr{}, 408, "timeout\n", "", "timeout"},
		{"malformed", errors.New("cannot parse"), 400, "bad_request\n", "", "bad_request"},
		{"upstream timeout", &upstreamError{fasthttp.ErrTimeout}, 504, "upstream_error\n", "", ""},
		{"upstream refused", &upstreamError{errors.New("refused")}, 502, "upstream_error\n", "", ""},
		{"script 404", &statusError{404}, 404, "upstream_error\n", "", ""},
		{"script 500", &statusError{500}, 502, "upstream_error\n", "", ""},
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
		for _, r := range rejectReasons {
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

// TestErrorReasonsAreCounted: every local Error has a counter.
func TestErrorReasonsAreCounted(t *testing.T) {
	m := NewMetrics("t")
	for _, e := range []*Error{errNotFound, errMethod, errURITooLong, errInvalidBody, errOriginNotAllowed, errRouteOff, errTagNotAllowed,
		errBadPath, errEncoding, errContentType, errBodyTooLarge, errHeaderTooLarge, errReadTimeout, errBadRequest, errOverBudget, errUnauthorized} {
		if m.rejectedBy[e.Reason] == nil {
			t.Errorf("%s has no consentgate_rejected_total series", e.Reason)
		}
	}
}
