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
	budget *budget
}

// NewServer builds both servers with every limit and timeout set
// explicitly from the handler's configuration. Limits that fasthttp fixes
// at start (buffer sizes, timeouts, concurrency) need a restart to change.
func NewServer(h *Handler, log *zap.Logger) *Server {
	cfg := h.Config()
	s := &Server{h: h, log: log, abort: make(chan struct{}), budget: newBudget(cfg.Limits)}
	h.metrics.budget.Store(s.budget)
	maxConns, _ := MaxConnections(cfg)
	s.public = &fasthttp.Server{
		Handler:            h.ServeHTTP,
		ErrorHandler:       h.serverError,
		Name:               "consentgate",
		ReadTimeout:        cfg.Timeouts.Read,
		WriteTimeout:       cfg.Timeouts.Write,
		IdleTimeout:        cfg.Timeouts.Idle,
		MaxRequestBodySize: cfg.Limits.MaxBodyBytes,
		ReadBufferSize:     cfg.Limits.MaxHeaderBytes,
		Concurrency:        maxConns + concurrencyMargin, // the listener refuses at maxConns

		ConnState:                     s.budget.connState,
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

// concurrencyMargin lets fasthttp's worker limit sit above the
// listener's max_connections: a closed connection leaves the listener's
// count a moment before its worker is free again.
const concurrencyMargin = 1024

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
	go serve(s.public, s.Listener(public))
	go serve(s.admin, newListener(admin, s.h, s.log, nil))
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
	if s.h.vendors != nil {
		// The vendors' builder hands what it holds to delivery first.
		s.h.vendors.Close()
	}
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

// Listener wraps the public listener: accept errors back off, the
// per-IP cap applies, and connections count against the memory budget.
func (s *Server) Listener(ln net.Listener) net.Listener {
	return newListener(ln, s.h, s.log, s.budget)
}

// serverError answers requests fasthttp could not read: too large, too
// slow, malformed or over the memory budget. Nothing is forwarded. The
// answer is counted with the responses of no route.
func (h *Handler) serverError(ctx *fasthttp.RequestCtx, err error) {
	if c, ok := ctx.Conn().(*conn); ok && c.cut.Load() {
		err = errOverBudget
	}
	h.writeError(ctx, err, -1)
	h.metrics.response(consentmode.FamilyUnknown, ctx.Response.StatusCode())
}
