//go:build faults

package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// faultBin is the gateway binary, built once by TestMain.
var faultBin string

// gwConfig is what a scenario varies in the gateway's configuration.
type gwConfig struct {
	listen       string // 127.0.0.1:PORT, fixed so a restart keeps the address
	upstream     string
	spoolDir     string // "" disables the spool
	spoolMax     int64
	spoolSegment int64
	syncInterval time.Duration
	queueSize    int
	workers      int
	maxAge       time.Duration
	vendors      string // optional: a vendors: section, appended as written
}

func defaultGWConfig(t *testing.T, up *fakeUpstream) gwConfig {
	return gwConfig{
		listen:       freeAddr(t),
		upstream:     up.URL(),
		spoolDir:     filepath.Join(t.TempDir(), "spool"),
		spoolMax:     1 << 30,
		spoolSegment: 16 << 20,
		syncInterval: 50 * time.Millisecond,
		queueSize:    10000,
		workers:      8,
		maxAge:       time.Hour,
	}
}

func (c gwConfig) yaml() string {
	return fmt.Sprintf(`listen: %q
admin_listen: "127.0.0.1:0"
upstream: %q
cookieless: {secret: fault-suite-secret-0123456789}
timeouts: {drain: 300ms, shutdown: 10s}
log: {level: info, format: json, decisions: {output: "off"}}
delivery:
  ga4: %s
  max_age: %s
  queue_size: %d
  workers: %d
  drain: 1s
  spool:
    dir: %q
    max_bytes: %d
    segment_bytes: %d
    sync_interval: %s
`, c.listen, c.upstream, ga4Mode(), c.maxAge, c.queueSize, c.workers, c.spoolDir, c.spoolMax, c.spoolSegment, c.syncInterval) + c.vendors
}

// ga4Mode is the GA4 delivery mode under test: queue, unless
// FAULTS_GA4_MODE says otherwise (sync shows what the suite catches
// without the queue).
func ga4Mode() string {
	if m := os.Getenv("FAULTS_GA4_MODE"); m != "" {
		return m
	}
	return "queue"
}

// freeAddr returns a loopback address with a port that was free just now.
func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	_ = ln.Close()
	return addr
}

// gateway is one run of the real binary.
type gateway struct {
	t             *testing.T
	name          string
	cmd           *exec.Cmd
	public, admin string
	logPath       string

	exited  chan struct{}
	waitErr error

	mu   sync.Mutex
	tail []string       // the last log lines
	errs int            // log lines at level error or above
	msgs map[string]int // log lines by message
}

// startWait is what startFaultGateway waits for.
type startWait int

const (
	waitServing   startWait = iota // "listening" logged and /healthz answered: the server runs
	waitListening                  // only the "listening" log line
	waitExit                       // the process exits (it must refuse to start)
)

// startFaultGateway writes cfg, runs the binary on it and waits as told. With
// waitExit check g.waitErr and g.logTail().
func startFaultGateway(t *testing.T, name string, cfg gwConfig, wait startWait) *gateway {
	t.Helper()
	dir := t.TempDir()
	cfgPath := filepath.Join(dir, name+".yaml")
	if err := os.WriteFile(cfgPath, []byte(cfg.yaml()), 0o600); err != nil {
		t.Fatal(err)
	}
	g := &gateway{t: t, name: name, logPath: filepath.Join(dir, name+".log"), exited: make(chan struct{}), msgs: map[string]int{}}
	logFile, err := os.Create(g.logPath)
	if err != nil {
		t.Fatal(err)
	}
	g.cmd = exec.Command(faultBin, "serve", "--config", cfgPath)
	g.cmd.Env = append(os.Environ(), "CONSENTGATE_CONFIG=")
	g.cmd.Stdout = io.Discard
	stderr, err := g.cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := g.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	ready := make(chan [2]string, 1)
	scanned := make(chan struct{})
	go func() {
		defer close(scanned)
		defer func() { _ = logFile.Close() }()
		sc := bufio.NewScanner(stderr)
		sc.Buffer(make([]byte, 64<<10), 1<<20)
		for sc.Scan() {
			line := sc.Text()
			_, _ = logFile.WriteString(line + "\n")
			var m map[string]any
			_ = json.Unmarshal(sc.Bytes(), &m)
			g.mu.Lock()
			g.tail = append(g.tail, line)
			if len(g.tail) > 40 {
				g.tail = g.tail[len(g.tail)-40:]
			}
			if lvl, _ := m["level"].(string); lvl == "error" || lvl == "fatal" || lvl == "panic" {
				g.errs++
			}
			if msg, ok := m["msg"].(string); ok {
				g.msgs[msg]++
			}
			g.mu.Unlock()
			if m["msg"] == "listening" {
				pub, _ := m["public"].(string)
				adm, _ := m["admin"].(string)
				select {
				case ready <- [2]string{pub, adm}:
				default:
				}
			}
		}
	}()
	go func() {
		<-scanned // Wait closes the pipe: read it all first
		g.waitErr = g.cmd.Wait()
		close(g.exited)
	}()
	t.Cleanup(func() {
		select {
		case <-g.exited:
		default:
			_ = g.cmd.Process.Kill()
			<-g.exited
		}
	})
	if wait == waitExit {
		select {
		case <-g.exited:
		case <-time.After(15 * time.Second):
			t.Fatalf("%s: still running, expected it to refuse to start", name)
		}
		return g
	}
	select {
	case a := <-ready:
		g.public, g.admin = a[0], a[1]
	case <-g.exited:
		t.Fatalf("%s: exited before listening (%v):\n%s", name, g.waitErr, g.logTail())
	case <-time.After(30 * time.Second):
		t.Fatalf("%s: not listening after 30s:\n%s", name, g.logTail())
	}
	if wait == waitServing {
		// The listeners exist before the server runs: a connection waits
		// in the backlog until it does, so an answer means it runs.
		c := &http.Client{Timeout: 10 * time.Second}
		resp, err := c.Get("http://" + g.public + "/healthz")
		if err != nil {
			t.Fatalf("%s: /healthz: %v\n%s", name, err, g.logTail())
		}
		_ = resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("%s: /healthz answered %d", name, resp.StatusCode)
		}
	}
	return g
}

func (g *gateway) pid() int { return g.cmd.Process.Pid }

func (g *gateway) logTail() string {
	g.mu.Lock()
	defer g.mu.Unlock()
	return strings.Join(g.tail, "\n")
}

// waitLogPrefix waits for a log message starting with prefix ("config
// reload" covers a reload that changed something and one that did not;
// a rejected reload does not count).
func (g *gateway) waitLogPrefix(prefix string, d time.Duration) bool {
	deadline := time.Now().Add(d)
	for {
		g.mu.Lock()
		found := false
		for msg := range g.msgs {
			if strings.HasPrefix(msg, prefix) && !strings.Contains(msg, "rejected") {
				found = true
			}
		}
		g.mu.Unlock()
		if found {
			return true
		}
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func (g *gateway) errorLines() int {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.errs
}

// terminate sends SIGTERM and waits for the exit; it returns the exit
// error and how long the exit took.
func (g *gateway) terminate(limit time.Duration) (time.Duration, error) {
	g.t.Helper()
	start := time.Now()
	if err := g.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		g.t.Fatal(err)
	}
	select {
	case <-g.exited:
		return time.Since(start), g.waitErr
	case <-time.After(limit):
		g.t.Errorf("%s: no exit %v after SIGTERM:\n%s", g.name, limit, g.logTail())
		_ = g.cmd.Process.Kill()
		<-g.exited
		return time.Since(start), g.waitErr
	}
}

// kill9 sends SIGKILL and waits for the process to be gone.
func (g *gateway) kill9() {
	_ = g.cmd.Process.Signal(syscall.SIGKILL)
	<-g.exited
}

// metrics reads the admin /metrics and returns the consentgate_delivery_*
// and consentgate_rejected_total samples, keyed by name with labels as
// printed.
func (g *gateway) metrics() (map[string]float64, error) {
	c := &http.Client{Timeout: 5 * time.Second}
	resp, err := c.Get("http://" + g.admin + "/metrics")
	if err != nil {
		return nil, err
	}
	defer func() { _ = resp.Body.Close() }()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("GET /metrics: %s", resp.Status)
	}
	out := map[string]float64{}
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if !strings.HasPrefix(line, "consentgate_delivery_") && !strings.HasPrefix(line, "consentgate_rejected_total") {
			continue
		}
		i := strings.LastIndexByte(line, ' ')
		if i < 0 {
			continue
		}
		v, err := strconv.ParseFloat(line[i+1:], 64)
		if err != nil {
			continue
		}
		out[line[:i]] = v
	}
	return out, sc.Err()
}

// refusalReasons are the consentgate_rejected_total reasons of a queue
// hit refused with 503.
var refusalReasons = []string{"queue_full", "spool_error", "shutting_down"}

// droppedByCause renders the consentgate_delivery_dropped_total samples as
// "cause=n,...", and the hits refused with 503 as "503:reason=n" ("none"
// when all are zero or absent).
func droppedByCause(m map[string]float64) string {
	const prefix = `consentgate_delivery_dropped_total{cause="`
	var parts []string
	for k, v := range m {
		if rest, ok := strings.CutPrefix(k, prefix); ok && v != 0 {
			cause, _, _ := strings.Cut(rest, `"`)
			parts = append(parts, fmt.Sprintf("%s=%g", cause, v))
		}
	}
	for _, r := range refusalReasons {
		if v := m[`consentgate_rejected_total{reason="`+r+`"}`]; v != 0 {
			parts = append(parts, fmt.Sprintf("503:%s=%g", r, v))
		}
	}
	if len(parts) == 0 {
		return "none"
	}
	slices.Sort(parts)
	return strings.Join(parts, ",")
}

// metricsLine renders the delivery metrics for the log, one sample per item.
func metricsLine(m map[string]float64) string {
	keys := make([]string, 0, len(m))
	for k, v := range m {
		if strings.HasPrefix(k, "consentgate_delivery_") || v != 0 {
			keys = append(keys, k)
		}
	}
	slices.Sort(keys)
	var b strings.Builder
	for _, k := range keys {
		fmt.Fprintf(&b, " %s=%g", strings.TrimPrefix(k, "consentgate_delivery_"), m[k])
	}
	return b.String()
}

// rssKiB reads VmRSS of pid from /proc.
func rssKiB(pid int) (int64, error) {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, err
	}
	for line := range strings.SplitSeq(string(data), "\n") {
		if rest, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			f := strings.Fields(rest)
			if len(f) >= 1 {
				return strconv.ParseInt(f[0], 10, 64)
			}
		}
	}
	return 0, fmt.Errorf("no VmRSS in /proc/%d/status", pid)
}

// rssSample is one VmRSS reading, at offset from the load's start.
type rssSample struct {
	at  time.Duration
	kib int64
}

// sampleRSS reads pid's RSS every period until stop is closed.
func sampleRSS(pid int, origin time.Time, period time.Duration, stop <-chan struct{}) <-chan []rssSample {
	out := make(chan []rssSample, 1)
	go func() {
		var s []rssSample
		tk := time.NewTicker(period)
		defer tk.Stop()
		for {
			if kib, err := rssKiB(pid); err == nil {
				s = append(s, rssSample{time.Since(origin), kib})
			}
			select {
			case <-stop:
				out <- s
				return
			case <-tk.C:
			}
		}
	}()
	return out
}

// spoolFiles lists the regular files under dir with their sizes and modes,
// and reports whether any holds secretMarker.
func spoolFiles(t *testing.T, dir string) (files []string, bytes int64, badMode []string, secret []string) {
	t.Helper()
	err := filepath.WalkDir(dir, func(path string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		fi, err := d.Info()
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(dir, path)
		files = append(files, fmt.Sprintf("%s(%d)", rel, fi.Size()))
		bytes += fi.Size()
		if fi.Mode().Perm()&0o077 != 0 {
			badMode = append(badMode, fmt.Sprintf("%s %v", rel, fi.Mode().Perm()))
		}
		data, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		if strings.Contains(string(data), secretMarker) {
			secret = append(secret, rel)
		}
		return nil
	})
	if err != nil && !os.IsNotExist(err) {
		t.Errorf("walk spool: %v", err)
	}
	return files, bytes, badMode, secret
}
