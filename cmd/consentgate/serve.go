package main

import (
	"context"
	"crypto/rand"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/VictoriaMetrics/metrics"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	"github.com/consentgate/consentgate/config"
	"github.com/consentgate/consentgate/proxy"
)

// configFlag registers --config, defaulting to $CONSENTGATE_CONFIG.
func configFlag(fs *flag.FlagSet) *string {
	return fs.String("config", os.Getenv("CONSENTGATE_CONFIG"), "read the YAML configuration from `FILE`")
}

func newLogger(level, format string) (*zap.Logger, error) {
	lvl, err := zapcore.ParseLevel(level)
	if err != nil {
		return nil, err
	}
	if format == "auto" {
		format = "json"
		if fi, err := os.Stderr.Stat(); err == nil && fi.Mode()&os.ModeCharDevice != 0 {
			format = "console"
		}
	}
	var cfg zap.Config
	if format == "console" {
		cfg = zap.NewDevelopmentConfig()
		cfg.DisableStacktrace = true
	} else {
		cfg = zap.NewProductionConfig()
	}
	cfg.Level = zap.NewAtomicLevelAt(lvl)
	cfg.OutputPaths = []string{"stderr"}
	return cfg.Build()
}

func cmdServe(args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("serve")
	path := configFlag(fs)
	if err := parseFlags(fs, args, stdout, stderr); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return usageError(fs, stderr, "unexpected argument "+fs.Arg(0))
	}
	// One random key for the process when cookieless.secret is unset, so
	// that reloads keep ephemeral ids stable.
	fallback := make([]byte, 32)
	_, _ = rand.Read(fallback)
	load := func() (*config.Config, error) { return config.Load(*path, config.WithFallbackSecret(fallback)) }
	cfg, err := load()
	if err != nil {
		return err
	}
	log, err := newLogger(cfg.Log.Level, cfg.Log.Format)
	if err != nil {
		return err
	}
	defer func() { _ = log.Sync() }()
	logStart(log, cfg)

	metrics.ExposeMetadata(true)
	m := proxy.NewMetrics(version)
	m.SetEnforcing(cfg.Enforce)
	dlog, err := proxy.NewDecisionLog(cfg.Log.DecisionOutput, m)
	if err != nil {
		return err
	}
	defer func() { _ = dlog.Close() }()
	h, err := proxy.NewHandler(cfg, log, m, dlog, proxy.Options{})
	if err != nil {
		return err
	}
	defer h.Close()
	srv := proxy.NewServer(h, log)

	pub, err := net.Listen("tcp", cfg.Listen)
	if err != nil {
		return fmt.Errorf("listen %s: %w", cfg.Listen, err)
	}
	adm, err := net.Listen("tcp", cfg.AdminListen)
	if err != nil {
		_ = pub.Close()
		return fmt.Errorf("admin listen %s: %w", cfg.AdminListen, err)
	}
	log.Info("listening", zap.String("public", pub.Addr().String()), zap.String("admin", adm.Addr().String()))

	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()
	reloader := proxy.NewReloader(h, m, log, *path, load)
	rctx, rcancel := context.WithCancel(ctx)
	reloader.Start(rctx)
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	go func() {
		for {
			select {
			case <-rctx.Done():
				return
			case <-hup:
				log.Info("SIGHUP: reloading config")
				reloader.Trigger()
			}
		}
	}()
	err = srv.Run(ctx, pub, adm)
	rcancel()
	reloader.Wait()
	log.Info("stopped")
	return err
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
		zap.String("policy_version", cfg.PolicyVersion),
	)
	for _, w := range cfg.Warnings {
		log.Warn(w)
	}
}
