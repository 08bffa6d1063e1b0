package main

import (
	"bufio"
	"encoding/json"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/valyala/fasthttp"
)

// TestServeEndToEnd runs the real binary the way the README says, in
// tag-gateway style in front of a recording upstream: hits go through, the
// decision log and /metrics show them, SIGHUP reloads the config, SIGTERM
// drains and exits cleanly.
func TestServeEndToEnd(t *testing.T) {
	t.Parallel()
	if testing.Short() {
		t.Skip("builds and runs the binary")
	}
	dir := t.TempDir()
	bin := filepath.Join(dir, "consentgate")
	if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}

	// The upstream: records what it receives.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	got := make(chan string, 10)
	up := &fasthttp.Server{Handler: func(ctx *fasthttp.RequestCtx) {
		got <- string(ctx.Host()) + " " + string(ctx.RequestURI()) + " cookie=" + string(ctx.Request.Header.Peek("Cookie"))
		ctx.SetStatusCode(fasthttp.StatusNoContent)
	}}
	go func() { _ = up.Serve(ln) }()
	defer func() { _ = up.Shutdown() }()

	cfgPath := filepath.Join(dir, "config.yaml")
	logPath := filepath.Join(dir, "decisions.log")
	base := "listen: 127.0.0.1:0\nadmin_listen: 127.0.0.1:0\nupstream: http://" + ln.Addr().String() + "\npath_prefix: /metrics\n" +
		"cookieless: {secret: serve-test-secret-0123}\ntimeouts: {drain: 60s}\nlog: {format: json, decisions: {output: " + logPath + "}}\n" +
		"delivery: {spool: {dir: " + filepath.Join(dir, "spool") + "}}\n"
	if err := os.WriteFile(cfgPath, []byte(base), 0o600); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, "serve", "--config", cfgPath)
	cmd.Env = append(os.Environ(), "CONSENTGATE_CONFIG=")
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { _ = cmd.Process.Kill() }()

	lines := make(chan map[string]any, 100)
	go func() {
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			var m map[string]any
			if json.Unmarshal(sc.Bytes(), &m) == nil {
				lines <- m
			}
		}
		close(lines)
	}()
	waitLine := func(msg string) map[string]any {
		t.Helper()
		timeout := time.After(10 * time.Second)
		for {
			select {
			case m, ok := <-lines:
				if !ok {
					t.Fatalf("process ended before %q", msg)
				}
				if m["msg"] == msg {
					return m
				}
			case <-timeout:
				t.Fatalf("no %q log line", msg)
			}
		}
	}
	listening := waitLine("listening")
	if ts, _ := listening["ts"].(string); !strings.HasPrefix(ts, "20") || !strings.Contains(ts, "T") {
		t.Errorf("log ts %v is not an RFC 3339 time", listening["ts"])
	}
	public, admin := listening["public"].(string), listening["admin"].(string)

	client := &fasthttp.Client{}
	get := func(url string, headers ...string) int {
		t.Helper()
		req, resp := fasthttp.AcquireRequest(), fasthttp.AcquireResponse()
		defer fasthttp.ReleaseRequest(req)
		defer fasthttp.ReleaseResponse(resp)
		req.SetRequestURI(url)
		for i := 0; i+1 < len(headers); i += 2 {
			req.Header.Set(headers[i], headers[i+1])
		}
		if err := client.DoTimeout(req, resp, 5*time.Second); err != nil {
			t.Fatalf("GET %s: %v", url, err)
		}
		return resp.StatusCode()
	}
	hit := "http://" + public + "/metrics/g/collect?v=2&tid=G-ABC123&_p=1&gcs=G100&cid=1174285007.1749196701&uid=SECRETUSER&en=page_view"
	if s := get(hit, "Cookie", "_ga=GA1.1.SECRETGA", "CF-IPCountry", "DE"); s != 204 {
		t.Fatalf("hit: %d", s)
	}
	// GA4 is queued: the browser's 204 comes first, the delivery after.
	select {
	case fwd := <-got:
		if strings.Contains(fwd, "SECRETUSER") || strings.Contains(fwd, "1174285007.1749196701") || strings.Contains(fwd, "SECRETGA") ||
			!strings.HasPrefix(fwd, "127.0.0.1") && !strings.Contains(fwd, "/metrics/g/collect?") {
			t.Errorf("upstream got %q", fwd)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the queued hit was not delivered")
	}

	// Metrics on the admin listener.
	req, resp := fasthttp.AcquireRequest(), fasthttp.AcquireResponse()
	req.SetRequestURI("http://" + admin + "/metrics")
	if err := client.DoTimeout(req, resp, 5*time.Second); err != nil {
		t.Fatal(err)
	}
	if body := string(resp.Body()); !strings.Contains(body, `consentgate_hits_total{route="ga4_collect",family="ga4",action="cookieless"} 1`) {
		t.Errorf("metrics lack the hit")
	}

	// SIGHUP reloads a changed config.
	if err := os.WriteFile(cfgPath, []byte(base+"consent: {mode: basic}\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := cmd.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	waitLine("config reloaded")
	if s := get(hit, "CF-IPCountry", "DE"); s != 204 {
		t.Errorf("hit after reload: %d", s)
	}
	select {
	case fwd := <-got:
		t.Errorf("basic mode after SIGHUP still forwarded: %q", fwd)
	default: // the decision log below shows it blocked: nothing was queued
	}

	// SIGTERM: readiness off, drain; a second signal (Ctrl-C) cuts the
	// 60 s drain short, and the exit status is still 0.
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if d := waitLine("draining"); d["drain"] != "1m0s" {
		t.Errorf("draining line %v: want the drain as a duration with its unit", d)
	}
	if err := cmd.Process.Signal(os.Interrupt); err != nil {
		t.Fatal(err)
	}
	waitLine("drain cut short")
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("exit: %v", err)
		}
	case <-time.After(15 * time.Second):
		t.Fatal("no exit after SIGTERM")
	}
	logData, err := os.ReadFile(logPath)
	if err != nil {
		t.Fatal(err)
	}
	log := string(logData)
	type decision struct {
		Hit           int      `json:"hit"`
		Route         string   `json:"route"`
		Region        string   `json:"region"`
		Action        string   `json:"action"`
		Enforced      bool     `json:"enforced"`
		Status        int      `json:"status"`
		Delivery      string   `json:"delivery"`
		Error         string   `json:"error"`
		Removed       []string `json:"removed"`
		PolicyVersion string   `json:"policy_version"`
	}
	var decisions []decision
	for line := range strings.Lines(log) {
		if strings.Contains(line, `"kind":`) {
			continue // the hash chain's header and checkpoints (declog.Chain)
		}
		var d decision
		if err := json.Unmarshal([]byte(line), &d); err != nil {
			t.Fatalf("decision log line %q: %v", line, err)
		}
		decisions = append(decisions, d)
	}
	if len(decisions) != 2 {
		t.Fatalf("decision log has %d lines, want 2:\n%s", len(decisions), log)
	}
	if d := decisions[0]; d.Hit != 1 || d.Route != "ga4_collect" || d.Region != "DE" || d.Action != "cookieless" || !d.Enforced ||
		d.Status != 204 || d.Delivery != "queue" || d.Error != "" || !slices.Contains(d.Removed, "uid") {
		t.Errorf("first hit (advanced mode) logged %+v", d)
	}
	if d := decisions[1]; d.Hit != 2 || d.Route != "ga4_collect" || d.Region != "DE" || d.Action != "block" || !d.Enforced ||
		d.Status != 204 || d.Delivery != "none" || d.Error != "" {
		t.Errorf("second hit (basic mode, after SIGHUP) logged %+v", d)
	}
	if decisions[0].PolicyVersion == decisions[1].PolicyVersion {
		t.Errorf("both hits logged policy version %q: the reload did not change it", decisions[0].PolicyVersion)
	}
	// The tag id (G-ABC123) is logged: a record holds the consent inputs
	// and the tag they were decided for, never an identifier.
	for _, secret := range []string{"SECRETUSER", "SECRETGA", "1174285007", "/g/collect?"} {
		if strings.Contains(log, secret) {
			t.Errorf("decision log holds %q", secret)
		}
	}
}
