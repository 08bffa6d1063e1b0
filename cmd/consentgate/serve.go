package main

import (
	"context"
	"crypto/rand"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"net"
	"os"
	"os/signal"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/VictoriaMetrics/metrics"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	"github.com/consentgate/consentgate/config"
	"github.com/consentgate/consentgate/declog"
	"github.com/consentgate/consentgate/proxy"
)

// configFlag registers --config, defaulting to $CONSENTGATE_CONFIG.
func configFlag(fs *flag.FlagSet) *string {
	return fs.String("config", os.Getenv("CONSENTGATE_CONFIG"), "read the YAML configuration from `FILE`")
}

// newLogger builds the operational log: JSON (or console text on a
// terminal) with RFC 3339 timestamps, durations as strings with their unit
// ("5s"), and no stack traces: every error logged here is an expected one
// (a rejected reload, an upstream failure), and its message says what to
// do. The level can change at run time (a reload of log.level).
//
// Like zap's production configuration, the core is sampled: of the
// entries with the same level and message, the first 100 of each second
// are written, then every 100th. A per-hit warning (a dead upstream, a
// full spool) thus costs little and cannot flood stderr on the request
// path, while every distinct message still shows.
func newLogger(level, format string, w zapcore.WriteSyncer, tty bool, opts ...zap.Option) (*zap.Logger, zap.AtomicLevel, error) {
	lvl, err := zap.ParseAtomicLevel(level)
	if err != nil {
		return nil, lvl, err
	}
	if format == "auto" {
		format = "json"
		if tty {
			format = "console"
		}
	}
	ec := zap.NewProductionEncoderConfig()
	ec.TimeKey = "ts"
	ec.EncodeTime = zapcore.RFC3339NanoTimeEncoder
	ec.EncodeDuration = zapcore.StringDurationEncoder
	ec.StacktraceKey = ""
	var enc zapcore.Encoder
	if format == "console" {
		ec.EncodeLevel = zapcore.CapitalLevelEncoder
		enc = zapcore.NewConsoleEncoder(ec)
	} else {
		enc = zapcore.NewJSONEncoder(ec)
	}
	core := zapcore.NewSamplerWithOptions(zapcore.NewCore(enc, w, lvl), time.Second, logSampleFirst, logSampleThereafter)
	return zap.New(core, opts...), lvl, nil
}

// The sampling of newLogger, as in zap.NewProductionConfig.
const (
	logSampleFirst      = 100
	logSampleThereafter = 100
)

// isTerminal reports whether w is a terminal.
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	fi, err := f.Stat()
	return err == nil && fi.Mode()&os.ModeCharDevice != 0
}

// cmdServe runs the gateway: it loads the config, opens the logs, starts
// the handler and both listeners, then serves until a signal stops it,
// reloading on SIGHUP. An error that stops it, at start (a bad config, a
// port in use) or later, is the last line of the log, in the log's format
// (one JSON object with log.format json), and the exit status is 1.
func cmdServe(args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("serve")
	path := configFlag(fs)
	if err := parseFlags(fs, args, stdout, stderr); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return usageError(fs, stderr, "unexpected argument "+fs.Arg(0))
	}
	log, err := serve(*path, stderr)
	if err == nil {
		return nil
	}
	if log == nil {
		log, _, _ = newLogger("info", fatalLogFormat(err), zapcore.Lock(zapcore.AddSync(stderr)), isTerminal(stderr)) // "info" and the format are valid
	}
	logFatal(log, err)
	return errFailed
}

// fatalLogFormat is the log format for an error that stopped serve before
// its logger existed: the config's log.format when the broken config
// still said one, else CONSENTGATE_LOG_FORMAT, else auto.
func fatalLogFormat(err error) string {
	var pe *config.ProblemsError
	if errors.As(err, &pe) && pe.LogFormat != "" {
		return pe.LogFormat
	}
	if f := os.Getenv(config.EnvName("log.format")); f == "json" || f == "console" {
		return f
	}
	return "auto"
}

// logFatal writes the error that stops serve as one entry: a config's
// problems as a list, anything else as its message.
func logFatal(log *zap.Logger, err error) {
	defer func() { _ = log.Sync() }()
	var pe *config.ProblemsError
	if errors.As(err, &pe) {
		list := make([]string, len(pe.Problems))
		for i, p := range pe.Problems {
			list[i] = p.Error()
		}
		log.Error("cannot serve: the configuration has problems (consentgate check lists them too)",
			zap.String("config", pe.Source), zap.Strings("problems", list))
		return
	}
	log.Error("cannot serve", zap.Error(err))
}

// serve is cmdServe once its flags are parsed. It returns the logger it
// made (nil when it stopped before) with the error that stopped it.
func serve(path string, stderr io.Writer) (*zap.Logger, error) {
	// Signals first: a SIGTERM or SIGHUP during start-up (spool replay
	// included) must not take the default action and kill the process; it
	// waits in the channel. SIGTERM or Ctrl-C starts a graceful stop, a
	// second one cuts it short.
	ctx, stopServing := context.WithCancel(context.Background())
	defer stopServing()
	sigs := make(chan os.Signal, 4)
	signal.Notify(sigs, syscall.SIGHUP, syscall.SIGTERM, os.Interrupt)
	defer signal.Stop(sigs)

	load := configLoader(path)
	cfg, err := load()
	if err != nil {
		return nil, err
	}
	log, level, err := newLogger(cfg.Log.Level, cfg.Log.Format, zapcore.Lock(zapcore.AddSync(stderr)), isTerminal(stderr))
	if err != nil {
		return nil, err
	}
	defer func() { _ = log.Sync() }()
	logStart(log, cfg)
	logLimits(log, cfg)

	metrics.ExposeMetadata(true)
	m := proxy.NewMetrics(version)
	m.SetEnforcing(cfg.Enforce)
	dlog, err := openDecisionLog(cfg, m, log)
	if err != nil {
		return log, err
	}
	defer func() { _ = dlog.Close() }()
	h, err := proxy.NewHandler(cfg, log, m, dlog, proxy.Options{})
	if err != nil {
		return log, err
	}
	defer h.Close()
	if err := h.StartDelivery(); err != nil {
		if errors.Is(err, fs.ErrPermission) {
			err = fmt.Errorf("%w: the spool directory %s is not writable by this user; give it one that is (delivery.spool.dir, CONSENTGATE_DELIVERY_SPOOL_DIR)", err, cfg.Delivery.SpoolDir)
		}
		return log, err
	}
	srv := proxy.NewServer(h, log)
	pub, adm, err := listen(cfg, log)
	if err != nil {
		return log, err
	}

	reloader := proxy.NewReloader(h, m, log, path, load)
	reloader.OnApply(func(c *config.Config) { _ = level.UnmarshalText([]byte(c.Log.Level)) }) // validated by Load
	rctx, rcancel := context.WithCancel(context.Background())
	reloader.Start(rctx)
	waitSignals := handleSignals(rctx, sigs, log, reloader, stopServing, srv)
	err = srv.Run(ctx, pub, adm)
	rcancel()
	reloader.Wait()
	waitSignals()
	if err != nil {
		return log, err
	}
	log.Info("stopped")
	return log, nil
}

// configLoader returns the function that loads the config at path, at
// start and on every reload. When cookieless.secret is unset it uses one
// random key for the whole process, so that reloads keep ephemeral ids
// stable.
func configLoader(path string) func() (*config.Config, error) {
	fallback := make([]byte, 32)
	_, _ = rand.Read(fallback)
	return func() (*config.Config, error) { return config.Load(path, config.WithFallbackSecret(fallback)) }
}

// logLimits raises the open-file limit and logs the connection limits,
// warning when max_connections cannot be reached.
func logLimits(log *zap.Logger, cfg *config.Config) {
	if _, err := proxy.RaiseFileLimit(); err != nil {
		log.Warn("could not raise the open-file limit to its hard limit", zap.Error(err))
	}
	maxConns, nofile := proxy.MaxConnections(cfg)
	log.Info("limits", zap.Uint64("open_files", nofile), zap.Int("max_connections", maxConns),
		zap.Int("max_conns_per_ip", cfg.Limits.MaxConnsPerIP), zap.Int("max_reading_requests", cfg.Limits.MaxReadingRequests),
		zap.Int("max_buffered_bytes", cfg.Limits.MaxBufferedBytes))
	if nofile > 0 && uint64(maxConns) > nofile {
		log.Warn("limits.max_connections is above the open-file limit: accepts will fail with EMFILE (they back off and retry); lower it or raise the limit",
			zap.Int("max_connections", maxConns), zap.Uint64("open_files", nofile))
	}
}

// openDecisionLog opens the decision log at log.decisions.output, hash
// chained and, with log.decisions.signing_key, signed, with its Kafka
// stream when one is configured. The caller closes it (the Kafka
// client with it).
func openDecisionLog(cfg *config.Config, m *proxy.Metrics, log *zap.Logger) (*declog.Log, error) {
	var opts []declog.Option
	var kafka *declog.KafkaSink
	if cfg.Log.Kafka != nil {
		var err error
		kafka, err = declog.NewKafkaSink(cfg.Log.Kafka, m.Set(), log)
		if err != nil {
			return nil, err
		}
		opts = append(opts, declog.WithKafka(kafka))
		log.Info("decision log: streaming to kafka", zap.Strings("brokers", cfg.Log.Kafka.Brokers), zap.String("topic", cfg.Log.Kafka.Topic))
	}
	chain := declog.Chain{PolicyVersion: cfg.PolicyVersion, Version: version, Checkpoint: cfg.Log.Checkpoint}
	chain.Instance, _ = os.Hostname()
	if cfg.Log.SigningKey != "" {
		key, err := declog.ReadPrivateKey(cfg.Log.SigningKey)
		if err != nil {
			_ = kafka.Close()
			return nil, fmt.Errorf("log.decisions.signing_key: %w", err)
		}
		chain.Key = key
	}
	opts = append(opts, declog.WithChain(chain))
	dlog, err := declog.Open(cfg.Log.DecisionOutput, m.Set(), opts...)
	if err != nil {
		_ = kafka.Close() // nil-safe; the decision log owns it otherwise
		return nil, err
	}
	return dlog, nil
}

// listen opens the public and the admin listener.
func listen(cfg *config.Config, log *zap.Logger) (pub, adm net.Listener, err error) {
	pub, err = net.Listen("tcp", cfg.Listen)
	if err != nil {
		return nil, nil, fmt.Errorf("listen %s: %w", cfg.Listen, err)
	}
	adm, err = net.Listen("tcp", cfg.AdminListen)
	if err != nil {
		_ = pub.Close()
		return nil, nil, fmt.Errorf("admin listen %s: %w", cfg.AdminListen, err)
	}
	log.Info("listening", zap.String("public", pub.Addr().String()), zap.String("admin", adm.Addr().String()))
	return pub, adm, nil
}

// handleSignals acts on sigs until ctx ends: SIGHUP reloads the config,
// the first SIGTERM or Ctrl-C starts a graceful stop (stop), the next one
// aborts srv at once. It returns a function that waits for it to end.
func handleSignals(ctx context.Context, sigs <-chan os.Signal, log *zap.Logger, reloader *proxy.Reloader, stop func(), srv *proxy.Server) (wait func()) {
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		stopping := false
		for {
			select {
			case <-ctx.Done():
				return
			case sig := <-sigs:
				switch {
				case sig == syscall.SIGHUP:
					log.Info("SIGHUP: reloading config")
					reloader.Trigger()
				case !stopping:
					stopping = true
					log.Info("stopping; send the signal again to stop at once", zap.String("signal", sig.String()))
					stop()
				default:
					log.Info("stopping at once", zap.String("signal", sig.String()))
					srv.Abort()
				}
			}
		}
	}()
	return wg.Wait
}

// spoolText says where queued hits are kept.
func spoolText(cfg *config.Config) string {
	if cfg.Delivery.SpoolDir == "" {
		return "off: queued hits are kept in memory only"
	}
	return cfg.Delivery.SpoolDir
}

// logStart says what the gateway trusts and warns about choices that make
// most traffic cookieless.
func logStart(log *zap.Logger, cfg *config.Config) {
	style := "subdomain (each route to Google's host)"
	if cfg.Upstream != nil {
		style = "tag gateway (" + cfg.Upstream.String() + cfg.PathPrefix + ")"
	}
	proxies := make([]string, 0, len(cfg.TrustedProxies))
	for _, p := range cfg.TrustedProxies {
		proxies = append(proxies, p.String())
	}
	log.Info("consentgate starting",
		zap.String("version", version),
		zap.String("config", cfg.Source),
		zap.String("style", style),
		zap.String("mode", cfg.Policy.Mode.String()),
		zap.Bool("enforce", cfg.Enforce),
		zap.String("trusted_proxies", strings.Join(proxies, ",")),
		zap.String("geo_headers", strings.Join(cfg.GeoHeaders, ",")),
		zap.String("cors", cfg.CORSRule()),
		zap.String("policy_version", cfg.PolicyVersion),
		zap.String("spool", spoolText(cfg)),
	)
	if line := vendorsLine(&cfg.Vendors); line != "" {
		log.Info("other vendors on", zap.String("vendors", line))
	}
	for _, w := range cfg.Warnings {
		log.Warn(w)
	}
}
