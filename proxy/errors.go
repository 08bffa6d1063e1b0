package proxy

import (
	"errors"
	"strconv"
	"syscall"
	"time"

	"github.com/valyala/fasthttp"
	"go.uber.org/zap"

	"github.com/consentgate/consentgate/consentmode"
	"github.com/consentgate/consentgate/delivery"
)

// rejectReason says why a request or connection was answered locally with
// an error status. It is a closed catalogue: its String is the body the
// client gets and the label of consentgate_rejected_total, whose series
// are created from this catalogue, so a new reason cannot go uncounted.
type rejectReason uint8

// Reasons counted by consentgate_rejected_total, then upstreamFailed.
const (
	rejectUnknownPath rejectReason = iota
	rejectMethod
	rejectURITooLong
	rejectInvalidBody
	rejectOriginNotAllowed
	rejectRouteOff
	rejectTagNotAllowed
	rejectBadPath
	rejectEncoding
	rejectContentType
	rejectBodyTooLarge
	rejectHeaderTooLarge
	rejectBadRequest
	rejectTimeout
	rejectOverBudget
	rejectPerIPLimit     // the listener: too many connections from one address
	rejectMaxConnections // the listener: limits.max_connections reached
	rejectNoDescriptors  // the listener: out of file descriptors
	rejectUnauthorized
	rejectQueueFull      // the delivery queue is full
	rejectSpool          // the delivery spool failed
	rejectScriptVariants // a script variant over the tag's bound (scripts.go)
	rejectShuttingDown   // delivery is shutting down: no hit is queued any more
	rejectNoEnvelope     // an envelope route's call without Consent-Envelope
	rejectBadEnvelope    // an envelope route's call with a malformed Consent-Envelope
	rejectVendorPayload  // an envelope route's call whose payload is not the vendor's JSON

	// numRejectReasons counts the reasons above: the series of
	// consentgate_rejected_total.
	numRejectReasons

	// upstreamFailed answers an upstream failure (502, 504, or a script's
	// 4xx). It is counted by consentgate_upstream_errors_total, not as
	// rejected.
	upstreamFailed = numRejectReasons
)

var rejectReasonNames = [numRejectReasons + 1]string{
	rejectUnknownPath:      "unknown_path",
	rejectMethod:           "method_not_allowed",
	rejectURITooLong:       "uri_too_long",
	rejectInvalidBody:      "invalid_body",
	rejectOriginNotAllowed: "origin_not_allowed",
	rejectRouteOff:         "route_disabled",
	rejectTagNotAllowed:    "tag_not_allowed",
	rejectBadPath:          "bad_path",
	rejectEncoding:         "content_encoding",
	rejectContentType:      "content_type",
	rejectBodyTooLarge:     "body_too_large",
	rejectHeaderTooLarge:   "header_too_large",
	rejectBadRequest:       "bad_request",
	rejectTimeout:          "timeout",
	rejectOverBudget:       "over_budget",
	rejectPerIPLimit:       "per_ip_limit",
	rejectMaxConnections:   "max_connections",
	rejectNoDescriptors:    "no_descriptors",
	rejectUnauthorized:     "unauthorized",
	rejectQueueFull:        "queue_full",
	rejectSpool:            "spool_error",
	rejectScriptVariants:   "script_variants",
	rejectShuttingDown:     "shutting_down",
	rejectNoEnvelope:       "consent_envelope_missing",
	rejectBadEnvelope:      "consent_envelope_malformed",
	rejectVendorPayload:    "vendor_payload_invalid",
	upstreamFailed:         "upstream_error",
}

// String returns the reason's label, e.g. "unknown_path".
func (r rejectReason) String() string { return rejectReasonNames[r] }

// counted reports whether r is a consentgate_rejected_total reason (all
// but upstreamFailed).
func (r rejectReason) counted() bool { return r < numRejectReasons }

// Error is a request answered locally with an error status: nothing from
// it is forwarded. Reason is the short text the client gets and, except
// for upstreamFailed, the label of consentgate_rejected_total.
type Error struct {
	Status int
	Reason rejectReason
	// RetryAfter, when positive, is sent as Retry-After (whole seconds,
	// at least 1): the client may try again later (503 over a budget).
	RetryAfter time.Duration
}

func (e *Error) Error() string { return "proxy: " + e.Reason.String() }

// Errors answered locally.
var (
	errNotFound         = &Error{Status: fasthttp.StatusNotFound, Reason: rejectUnknownPath}
	errMethod           = &Error{Status: fasthttp.StatusMethodNotAllowed, Reason: rejectMethod}
	errURITooLong       = &Error{Status: fasthttp.StatusRequestURITooLong, Reason: rejectURITooLong}
	errInvalidBody      = &Error{Status: fasthttp.StatusBadRequest, Reason: rejectInvalidBody}
	errOriginNotAllowed = &Error{Status: fasthttp.StatusForbidden, Reason: rejectOriginNotAllowed}
	errRouteOff         = &Error{Status: fasthttp.StatusNotFound, Reason: rejectRouteOff}
	errTagNotAllowed    = &Error{Status: fasthttp.StatusForbidden, Reason: rejectTagNotAllowed}
	errBadPath          = &Error{Status: fasthttp.StatusBadRequest, Reason: rejectBadPath}
	errEncoding         = &Error{Status: fasthttp.StatusUnsupportedMediaType, Reason: rejectEncoding}
	errContentType      = &Error{Status: fasthttp.StatusUnsupportedMediaType, Reason: rejectContentType}
	errBodyTooLarge     = &Error{Status: fasthttp.StatusRequestEntityTooLarge, Reason: rejectBodyTooLarge}
	errHeaderTooLarge   = &Error{Status: fasthttp.StatusRequestHeaderFieldsTooLarge, Reason: rejectHeaderTooLarge}
	errReadTimeout      = &Error{Status: fasthttp.StatusRequestTimeout, Reason: rejectTimeout}
	errBadRequest       = &Error{Status: fasthttp.StatusBadRequest, Reason: rejectBadRequest}
	errOverBudget       = &Error{Status: fasthttp.StatusServiceUnavailable, Reason: rejectOverBudget, RetryAfter: time.Second}
	errUnauthorized     = &Error{Status: fasthttp.StatusUnauthorized, Reason: rejectUnauthorized}
	errScriptVariants   = &Error{Status: fasthttp.StatusTooManyRequests, Reason: rejectScriptVariants}
	errUpstream         = &Error{Status: fasthttp.StatusBadGateway, Reason: upstreamFailed}
	errUpstreamTimeout  = &Error{Status: fasthttp.StatusGatewayTimeout, Reason: upstreamFailed}
	// A hit delivery did not take: the client may try again.
	errQueueFull    = &Error{Status: fasthttp.StatusServiceUnavailable, Reason: rejectQueueFull, RetryAfter: time.Second}
	errSpool        = &Error{Status: fasthttp.StatusServiceUnavailable, Reason: rejectSpool, RetryAfter: time.Second}
	errShuttingDown = &Error{Status: fasthttp.StatusServiceUnavailable, Reason: rejectShuttingDown, RetryAfter: time.Second}
)

// statusError is an upstream answer passed on as an error (a script fetch
// that did not return 200).
type statusError struct{ status int }

func (e *statusError) Error() string { return "proxy: upstream status " + strconv.Itoa(e.status) }

// asError maps any error to the Error answered for it: an *Error as it
// is, fasthttp's read errors (body or header too large, timeouts,
// malformed requests), upstream failures (502, 504; a 4xx script answer
// keeps its status) and hits delivery did not take (503).
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
			return &Error{Status: se.status, Reason: upstreamFailed}
		}
		return errUpstream
	case errors.As(err, &ue):
		if isTimeout(ue.err) {
			return errUpstreamTimeout
		}
		return errUpstream
	case errors.Is(err, delivery.ErrQueueFull):
		return errQueueFull
	case errors.Is(err, delivery.ErrClosed):
		return errShuttingDown
	case errors.Is(err, delivery.ErrSpool):
		return errSpool
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
	reason := e.Reason.String()
	ctx.Response.Reset()
	ctx.SetStatusCode(e.Status)
	ctx.SetContentType("text/plain; charset=utf-8")
	ctx.SetBodyString(reason + "\n")
	if e.RetryAfter > 0 {
		var buf [20]byte
		ctx.Response.Header.SetBytesV("Retry-After", strconv.AppendInt(buf[:0], int64(max(e.RetryAfter/time.Second, 1)), 10))
	}
	if e == errMethod && route >= 0 {
		ctx.Response.Header.Set("Allow", consentmode.Routes[route].AllowHeader())
	}
	if !e.Reason.counted() {
		return
	}
	h.metrics.rejected(e.Reason)
	if ce := h.log.Check(zap.DebugLevel, "rejected"); ce != nil {
		ce.Write(zap.String("reason", reason), zap.Int("status", e.Status), zap.ByteString("method", ctx.Method()))
	}
}

// upstreamErrKind labels an upstream failure: the kind label of
// consentgate_upstream_errors_total, the decision log's error field and
// the upstream-error log line.
type upstreamErrKind uint8

const (
	upErrTimeout upstreamErrKind = iota
	upErrRefused
	upErrNoFreeConns
	upErrOther // no answer, for any other reason
	upErr5xx   // a server error answer (metrics only: not an error of the exchange)
	numUpstreamErrKinds
)

var upstreamErrKindNames = [numUpstreamErrKinds]string{
	upErrTimeout:     "timeout",
	upErrRefused:     "refused",
	upErrNoFreeConns: "no_free_conns",
	upErrOther:       "other",
	upErr5xx:         "5xx",
}

// String returns the kind's label, e.g. "timeout".
func (k upstreamErrKind) String() string { return upstreamErrKindNames[k] }

// classifyUpstream says which kind of failure err is.
func classifyUpstream(err error) upstreamErrKind {
	switch {
	case isTimeout(err):
		return upErrTimeout
	case errors.Is(err, fasthttp.ErrNoFreeConns):
		return upErrNoFreeConns
	case errors.Is(err, syscall.ECONNREFUSED):
		return upErrRefused
	}
	return upErrOther
}
