package proxy

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/fsnotify/fsnotify"
	"go.uber.org/zap"

	"github.com/consentgate/consentgate/config"
)

// Reloader loads a fresh configuration on request (SIGHUP, via Trigger)
// and when the config file changes, and swaps it into the Handler whole.
// An invalid configuration is rejected: the last good one keeps serving,
// every problem is logged and consentgate_config_reloads_total{result="failure"}
// counts it.
type Reloader struct {
	h       *Handler
	m       *Metrics
	log     *zap.Logger
	path    string
	load    func() (*config.Config, error)
	trigger chan struct{}
	wg      sync.WaitGroup
	onApply func(*config.Config)
}

// OnApply registers f to run after each successful reload, with the new
// configuration (serve applies log.level there). Call it before Start.
func (r *Reloader) OnApply(f func(*config.Config)) { r.onApply = f }

// debounce groups the several events editors and ConfigMap swaps produce per save.
const debounce = 200 * time.Millisecond

// NewReloader returns a reloader for the file at path ("" for the
// embedded config: only Trigger reloads then, re-reading the environment).
func NewReloader(h *Handler, m *Metrics, log *zap.Logger, path string, load func() (*config.Config, error)) *Reloader {
	return &Reloader{h: h, m: m, log: log, path: path, load: load, trigger: make(chan struct{}, 1)}
}

// Trigger asks for a reload; it never blocks.
func (r *Reloader) Trigger() {
	select {
	case r.trigger <- struct{}{}:
	default:
	}
}

// Start reloads on Trigger and on file changes until ctx is done. The
// file watch is in place when Start returns. Wait returns once the
// goroutine has stopped.
func (r *Reloader) Start(ctx context.Context) {
	var w *fsnotify.Watcher
	if r.path != "" {
		var err error
		w, err = fsnotify.NewWatcher()
		if err != nil {
			r.log.Warn("config file watch unavailable; reload with SIGHUP", zap.Error(err))
		} else if err := w.Add(filepath.Dir(r.path)); err != nil { // the directory: editors and Kubernetes replace the file
			r.log.Warn("config file watch unavailable; reload with SIGHUP", zap.Error(err))
			_ = w.Close()
			w = nil
		}
	}
	r.wg.Add(1)
	go r.run(ctx, w)
}

func (r *Reloader) run(ctx context.Context, w *fsnotify.Watcher) {
	defer r.wg.Done()
	var events <-chan fsnotify.Event
	var errs <-chan error
	if w != nil {
		defer func() { _ = w.Close() }()
		events, errs = w.Events, w.Errors
	}
	target, _ := filepath.Abs(r.path)
	var timer *time.Timer
	var fire <-chan time.Time
	var last fsnotify.Event // the event that armed the timer
	for {
		select {
		case <-ctx.Done():
			if timer != nil {
				timer.Stop()
			}
			return
		case <-r.trigger:
			_ = r.Reload() // logged and counted by Reload
		case ev, ok := <-events:
			if !ok {
				events = nil
				continue
			}
			if abs, _ := filepath.Abs(ev.Name); abs != target && filepath.Base(ev.Name) != "..data" {
				continue
			}
			last = ev
			if timer == nil {
				timer = time.NewTimer(debounce)
			} else {
				timer.Reset(debounce)
			}
			fire = timer.C
		case err, ok := <-errs:
			if !ok {
				errs = nil
				continue
			}
			r.log.Warn("config file watch", zap.Error(err))
		case <-fire:
			fire = nil
			r.log.Info("config file changed: reloading", zap.String("config", r.path), zap.String("file", last.Name), zap.String("event", strings.ToLower(last.Op.String())))
			_ = r.Reload() // logged and counted by Reload
		}
	}
}

// Wait blocks until the goroutine of Start has returned.
func (r *Reloader) Wait() { r.wg.Wait() }

// Reload loads and validates a fresh configuration and swaps it in. It
// returns the load error, already logged and counted. Every reload logs
// which keys changed, and which of them take effect only after a restart.
func (r *Reloader) Reload() error {
	cfg, err := r.load()
	if err == nil && cfg.AdminToken == "" && !config.Loopback(r.h.adminListen) {
		// The file may say 127.0.0.1 now, but the listener stays bound where
		// it started until a restart: its token cannot go.
		err = fmt.Errorf("admin.token: the admin listener is bound to %q until a restart; a config without a token is refused", r.h.adminListen)
	}
	if err != nil {
		r.m.reload(reloadFailure)
		fields := []zap.Field{zap.String("config", r.source())}
		var pe *config.ProblemsError
		if errors.As(err, &pe) {
			problems := make([]string, len(pe.Problems))
			for i, p := range pe.Problems {
				problems[i] = p.Error()
			}
			fields = append(fields, zap.Strings("problems", problems))
		} else {
			fields = append(fields, zap.String("error", err.Error()))
		}
		r.log.Error("config reload rejected; the last good config keeps serving", fields...)
		return err
	}
	old := r.h.Config()
	if cfg.Same(old) {
		r.m.reload(reloadUnchanged)
		r.log.Info("config reload: nothing changed", zap.String("config", r.source()), zap.String("policy_version", cfg.PolicyVersion))
		return nil
	}
	r.h.SetConfig(cfg)
	r.m.SetEnforcing(cfg.Enforce)
	r.m.reload(reloadSuccess)
	if r.onApply != nil {
		r.onApply(cfg)
	}
	applied, restart := cfg.Changes(old)
	fields := []zap.Field{zap.String("policy_version", cfg.PolicyVersion), zap.String("previous", old.PolicyVersion), zap.Bool("enforce", cfg.Enforce),
		zap.Strings("applied", nonNil(applied)), zap.Strings("restart_needed", nonNil(restart))}
	switch {
	case len(applied)+len(restart) == 0:
		r.log.Info("config reloaded: nothing changed", fields...)
	default:
		r.log.Info("config reloaded", fields...)
	}
	if len(restart) > 0 {
		r.log.Warn("restart to apply: "+strings.Join(restart, ", ")+" (the running process keeps the old values)", zap.Strings("restart_needed", restart))
	}
	for _, w := range cfg.Warnings {
		r.log.Warn(w)
	}
	return nil
}

func (r *Reloader) source() string {
	if r.path == "" {
		return "embedded"
	}
	return r.path
}

// nonNil makes an empty list log as [] rather than null.
func nonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}
