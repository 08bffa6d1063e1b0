package proxy

import (
	"context"
	"errors"
	"net"
	"sync"
	"time"

	"github.com/valyala/fasthttp"
	"go.uber.org/zap"

	"github.com/consentgate/consentgate/consentmode"
)

// Server runs the public and admin listeners of one Handler.
type Server struct {
	h      *Handler
	log    *zap.Logger
	public *fasthttp.Server
	admin  *fasthttp.Server
	abort  chan struct{}
	once   sync.Once
}

// NewServer builds both servers with every limit and timeout set
// explicitly from the handler's configuration. Limits that fasthttp fixes
// at start (buffer sizes, timeouts, concurrency) need a restart to change.
func NewServer(h *Handler, log *zap.Logger) *Server {
	cfg := h.Config()
	s := &Server{h: h, log: log, abort: make(chan struct{})}
	s.public = &fasthttp.Server{
		Handler:                       h.ServeHTTP,
		ErrorHandler:                  h.serverError,
		Name:                          "consentgate",
		ReadTimeout:                   cfg.Timeouts.Read,
		WriteTimeout:                  cfg.Timeouts.Write,
		IdleTimeout:                   cfg.Timeouts.Idle,
		MaxRequestBodySize:            cfg.Limits.MaxBodyBytes,
		ReadBufferSize:                cfg.Limits.MaxHeaderBytes,
		Concurrency:                   cfg.Limits.MaxConnections,
		CloseOnShutdown:               true,
		ReduceMemoryUsage:             cfg.Limits.ReduceMemory,
		DisablePreParseMultipartForm:  true,
		NoDefaultContentType:          true,
		DisableHeaderNamesNormalizing: false,
		Logger:                        zapPrintf{log},
	}
	s.admin = &fasthttp.Server{
		Handler:            h.ServeAdmin,
		Name:               "consentgate-admin",
		ReadTimeout:        cfg.Timeouts.Read,
		WriteTimeout:       30 * time.Second, // profiles take a while
		IdleTimeout:        cfg.Timeouts.Idle,
		MaxRequestBodySize: cfg.Limits.MaxBodyBytes,
		ReadBufferSize:     cfg.Limits.MaxHeaderBytes,
		CloseOnShutdown:    true,
		Logger:             zapPrintf{log},
	}
	return s
}

// zapPrintf adapts zap to fasthttp's Logger.
type zapPrintf struct{ l *zap.Logger }

func (z zapPrintf) Printf(format string, args ...any) { z.l.Sugar().Debugf(format, args...) }

// Abort cuts a graceful shutdown short: the drain ends and in-flight
// requests are not waited for (a second Ctrl-C). Safe to call many times.
func (s *Server) Abort() { s.once.Do(func() { close(s.abort) }) }

// Run serves on the two listeners until ctx is done, then shuts down
// gracefully: readiness turns false, the listeners keep serving for the
// drain period (so load balancers stop sending), then in-flight requests
// get up to the shutdown timeout to finish. Abort ends both waits.
func (s *Server) Run(ctx context.Context, public, admin net.Listener) error {
	errc := make(chan error, 2)
	var wg sync.WaitGroup
	serve := func(srv *fasthttp.Server, ln net.Listener) {
		defer wg.Done()
		if err := srv.Serve(ln); err != nil {
			errc <- err
		}
	}
	wg.Add(2)
	go serve(s.public, public)
	go serve(s.admin, admin)
	s.h.MarkReady(true)

	var runErr error
	select {
	case <-ctx.Done():
	case runErr = <-errc:
	}
	s.h.MarkReady(false)
	cfg := s.h.Config() // the drain and shutdown timeouts of the last reload
	if runErr == nil && cfg.Timeouts.Drain > 0 {
		s.log.Info("draining", zap.Duration("drain", cfg.Timeouts.Drain), zap.String("readiness", "off"))
		select {
		case <-time.After(cfg.Timeouts.Drain):
		case <-s.abort:
			s.log.Info("drain cut short")
		}
	}
	sctx, cancel := context.WithTimeout(context.Background(), cfg.Timeouts.Shutdown)
	defer cancel()
	go func() {
		select {
		case <-s.abort:
			cancel()
		case <-sctx.Done():
		}
	}()
	err := errors.Join(s.public.ShutdownWithContext(sctx), s.admin.ShutdownWithContext(sctx))
	select {
	case <-s.abort:
		err = nil // asked for: in-flight requests were cut off
	default:
	}
	wg.Wait()
	if d := s.h.delivery; d != nil {
		// No hit is accepted any more: deliver what is queued for up to
		// delivery.drain; the rest stays in the spool.
		drain := cfg.Delivery.Drain
		select {
		case <-s.abort:
			drain = 0 // stopping at once: the queue stays in the spool
		default:
		}
		s.log.Info("delivering the queue", zap.Duration("drain_timeout", drain))
		d.Shutdown(drain)
	}
	s.h.clients.closeIdle()
	return errors.Join(runErr, err)
}

// serverError answers requests fasthttp could not read: too large, too
// slow or malformed. Nothing is forwarded.
func (h *Handler) serverError(ctx *fasthttp.RequestCtx, err error) {
	defer func() { h.metrics.response(consentmode.FamilyUnknown, ctx.Response.StatusCode()) }()
	var small *fasthttp.ErrSmallBuffer
	switch {
	case errors.Is(err, fasthttp.ErrBodyTooLarge):
		h.reject(ctx, &hitError{fasthttp.StatusRequestEntityTooLarge, "body_too_large"}, -1)
	case errors.As(err, &small):
		h.reject(ctx, &hitError{fasthttp.StatusRequestHeaderFieldsTooLarge, "header_too_large"}, -1)
	case isTimeout(err):
		h.reject(ctx, &hitError{fasthttp.StatusRequestTimeout, "timeout"}, -1)
	default:
		h.reject(ctx, &hitError{fasthttp.StatusBadRequest, "bad_request"}, -1)
	}
}
