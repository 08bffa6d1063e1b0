package proxy

import (
	"errors"
	"strconv"
	"syscall"
	"time"

	"github.com/valyala/fasthttp"
	"go.uber.org/zap"

	"github.com/consentgate/consentgate/consentmode"
)

// Error is a request answered locally with an error status: nothing from
// it is forwarded. Reason is the short text the client gets and the label
// of consentgate_rejected_total; it comes from a closed list (rejectReasons),
// never from request data.
type Error struct {
	Status int
	Reason string
	// RetryAfter, when positive, is sent as Retry-After (whole seconds,
	// at least 1): the client may try again later (503 over a budget).
	RetryAfter time.Duration
}

func (e *Error) Error() string { return "proxy: " + e.Reason }

// Errors answered locally.
var (
	errNotFound         = &Error{Status: fasthttp.StatusNotFound, Reason: "unknown_path"}
	errMethod           = &Error{Status: fasthttp.StatusMethodNotAllowed, Reason: "method_not_allowed"}
	errURITooLong       = &Error{Status: fasthttp.StatusRequestURITooLong, Reason: "uri_too_long"}
	errInvalidBody      = &Error{Status: fasthttp.StatusBadRequest, Reason: "invalid_body"}
	errOriginNotAllowed = &Error{Status: fasthttp.StatusForbidden, Reason: "origin_not_allowed"}
	errRouteOff         = &Error{Status: fasthttp.StatusNotFound, Reason: "route_disabled"}
	errTagNotAllowed    = &Error{Status: fasthttp.StatusForbidden, Reason: "tag_not_allowed"}
	errBadPath          = &Error{Status: fasthttp.StatusBadRequest, Reason: "bad_path"}
	errEncoding         = &Error{Status: fasthttp.StatusUnsupportedMediaType, Reason: "content_encoding"}
	errContentType      = &Error{Status: fasthttp.StatusUnsupportedMediaType, Reason: "content_type"}
	errBodyTooLarge     = &Error{Status: fasthttp.StatusRequestEntityTooLarge, Reason: "body_too_large"}
	errHeaderTooLarge   = &Error{Status: fasthttp.StatusRequestHeaderFieldsTooLarge, Reason: "header_too_large"}
	errReadTimeout      = &Error{Status: fasthttp.StatusRequestTimeout, Reason: "timeout"}
	errBadRequest       = &Error{Status: fasthttp.StatusBadRequest, Reason: "bad_request"}
	errOverBudget       = &Error{Status: fasthttp.StatusServiceUnavailable, Reason: "over_budget", RetryAfter: time.Second}
	errUnauthorized     = &Error{Status: fasthttp.StatusUnauthorized, Reason: "unauthorized"}
	errUpstream         = &Error{Status: fasthttp.StatusBadGateway, Reason: "upstream_error"}
	errUpstreamTimeout  = &Error{Status: fasthttp.StatusGatewayTimeout, Reason: "upstream_error"}
)

// rejectReasons label consentgate_rejected_total: every Reason above
// except the upstream ones, which count as upstream errors, plus the
// refusals of the listener and the delivery queue.
var rejectReasons = []string{"unknown_path", "method_not_allowed", "uri_too_long", "invalid_body", "origin_not_allowed",
	"route_disabled", "tag_not_allowed", "bad_path", "content_encoding", "content_type", "body_too_large", "header_too_large",
	"bad_request", "timeout", "over_budget", "per_ip_limit", "max_connections", "no_descriptors", "unauthorized", "queue_full", "spool_error"}

// statusError is an upstream answer passed on as an error (a script fetch
// that did not return 200).
type statusError struct{ status int }

func (e *statusError) Error() string { return "proxy: upstream status " + strconv.Itoa(e.status) }

// asError maps any error to the Error answered for it: an *Error as it
// is, fasthttp's read errors (body or header too large, timeouts,
// malformed requests), upstream failures (502, 504; a 4xx script answer
// keeps its status).
func asError(err error) *Error {
	var e *Error
	var small *fasthttp.ErrSmallBuffer
	var se *statusError
	var ue *upstreamError
	switch {
	case errors.As(err, &e):
		return e
	case errors.Is(err, fasthttp.ErrBodyTooLarge):
		return errBodyTooLarge
	case errors.As(err, &small):
		return errHeaderTooLarge
	case errors.As(err, &se):
		if se.status >= 400 && se.status < 500 {
			return &Error{Status: se.status, Reason: "upstream_error"}
		}
		return errUpstream
	case errors.As(err, &ue):
		if isTimeout(ue.err) {
			return errUpstreamTimeout
		}
		return errUpstream
	}
	return nil
}

// upstreamError is a failed upstream exchange (connection, timeout).
type upstreamError struct{ err error }

func (e *upstreamError) Error() string { return "proxy: upstream: " + e.err.Error() }
func (e *upstreamError) Unwrap() error { return e.err }

// writeError answers err: the one place where an error becomes a status,
// a body, a counter and a log line. route is the matched route (-1 when
// none): a 405 names its methods. Upstream errors are counted by record.
func (h *Handler) writeError(ctx *fasthttp.RequestCtx, err error, route int) {
	e := asError(err)
	if e == nil {
		e = errBadRequest
		if isTimeout(err) {
			e = errReadTimeout
		}
	}
	ctx.Response.Reset()
	ctx.SetStatusCode(e.Status)
	ctx.SetContentType("text/plain; charset=utf-8")
	ctx.SetBodyString(e.Reason + "\n")
	if e.RetryAfter > 0 {
		var buf [20]byte
		ctx.Response.Header.SetBytesV("Retry-After", strconv.AppendInt(buf[:0], int64(max(e.RetryAfter/time.Second, 1)), 10))
	}
	if e == errMethod && route >= 0 {
		ctx.Response.Header.Set("Allow", consentmode.Routes[route].AllowHeader())
	}
	if e.Reason == "upstream_error" {
		return
	}
	h.metrics.rejected(e.Reason)
	if ce := h.log.Check(zap.DebugLevel, "rejected"); ce != nil {
		ce.Write(zap.String("reason", e.Reason), zap.Int("status", e.Status), zap.ByteString("method", ctx.Method()))
	}
}

// upstreamErrorKind labels an upstream failure for metrics and the log.
func upstreamErrorKind(err error) string {
	switch {
	case isTimeout(err):
		return "timeout"
	case errors.Is(err, fasthttp.ErrNoFreeConns):
		return "no_free_conns"
	case errors.Is(err, syscall.ECONNREFUSED):
		return "refused"
	}
	return "other"
}
