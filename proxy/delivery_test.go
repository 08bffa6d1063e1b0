package proxy

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/valyala/fasthttp"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"

	"github.com/consentgate/consentgate/delivery"
	"github.com/consentgate/consentgate/delivery/spool"
)

// queueGateway is a gateway whose GA4 hits are queued, with its spool in
// dir; spool adds settings to delivery.spool.
func queueGateway(t *testing.T, dir, spool string) *gateway {
	t.Helper()
	return queueGatewayWorkers(t, dir, spool, 2)
}

func queueGatewayWorkers(t *testing.T, dir, spool string, workers int) *gateway {
	t.Helper()
	if spool != "" {
		spool = ", " + spool
	}
	g := newGateway(t, fmt.Sprintf("delivery: {spool: {dir: %q, sync_interval: 5ms%s}, queue_size: 4, workers: %d}\n", dir, spool, workers))
	if err := g.h.StartDelivery(); err != nil {
		t.Fatal(err)
	}
	return g
}

// wait waits until the fake upstream has received n requests and returns
// them, failing the test after 10 s.
func (u *fakeUpstream) wait(t *testing.T, n int) []recorded {
	t.Helper()
	timeout := time.NewTimer(10 * time.Second)
	defer timeout.Stop()
	for {
		u.mu.Lock()
		got, more := append([]recorded(nil), u.got...), u.more
		u.mu.Unlock()
		if len(got) >= n {
			return got
		}
		select {
		case <-more:
		case <-timeout.C:
			t.Fatalf("the upstream got %d requests in 10 s, want %d", len(got), n)
		}
	}
}

const queuedHit = "/g/collect?v=2&tid=G-ABC123&_p=1&gcs=G100&cid=1174285007.1749196701&uid=SECRETUSER&en=page_view&ep.n=%d"

func TestQueuedHitIsAnsweredThenDeliveredRewritten(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	g := queueGateway(t, dir, "")
	block := make(chan struct{})
	g.up.setRespond(func(ctx *fasthttp.RequestCtx) { <-block; ctx.SetStatusCode(204) })
	uri := fmt.Sprintf(queuedHit, 1)
	// As serve sees it from fromProxy: the trusted geo header says DE.
	want, err := g.h.Explain(Hit{URL: "http://metrics.shop.example" + uri, Headers: map[string]string{"Cookie": "_ga=GA1.1.SECRETGA", "CF-IPCountry": "DE"},
		Region: "DE", ClientIP: fromProxy.AddrPort().Addr().String()})
	if err != nil {
		t.Fatal(err)
	}

	r := g.do(fromProxy, "GET", uri, map[string]string{"Cookie": "_ga=GA1.1.SECRETGA", "CF-IPCountry": "DE"}, "")
	if r.Status != fasthttp.StatusNoContent {
		t.Fatalf("status %d, want 204 before the upstream answers", r.Status)
	}
	// The spool holds the rewritten hit, never what the decision removed.
	spooled := readDir(t, dir)
	for _, secret := range []string{"SECRETUSER", "SECRETGA", "1174285007.1749196701"} {
		if bytes.Contains(spooled, []byte(secret)) {
			t.Errorf("spool holds %q", secret)
		}
	}
	close(block)
	got := g.up.wait(t, 1)
	if len(got) != 1 {
		t.Fatalf("upstream got %d requests", len(got))
	}
	if want.Forward == nil || "http://"+got[0].Host+got[0].URI != want.Forward.URL {
		t.Errorf("upstream got %s%s, explain says %+v", got[0].Host, got[0].URI, want.Forward)
	}
	if want.Delivery != "queue" {
		t.Errorf("explain delivery = %q, want queue", want.Delivery)
	}
	lines := g.waitLog(1)
	if len(lines) != 1 || !strings.Contains(lines[0], `"delivery":"queue"`) || !strings.Contains(lines[0], `"status":204`) {
		t.Errorf("decision log: %q", lines)
	}
	waitMetric(t, g, `consentgate_delivery_delivered_total{family="ga4"} 1`)
	waitMetric(t, g, `consentgate_delivery_spool_records{upstream="http://region1.google-analytics.com"} 0`)
}

func TestQueueRetries(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name      string
		fail      func(ctx *fasthttp.RequestCtx)
		wantSends int
		metric    string
	}{
		{"503 then ok", func(ctx *fasthttp.RequestCtx) { ctx.SetStatusCode(503) }, 2, `consentgate_delivery_retried_total{cause="5xx"} 1`},
		{"429 then ok", func(ctx *fasthttp.RequestCtx) {
			ctx.Response.Header.Set("Retry-After", "0")
			ctx.SetStatusCode(429)
		}, 2, `consentgate_delivery_retried_total{cause="429"} 1`},
		{"400 dropped", func(ctx *fasthttp.RequestCtx) { ctx.SetStatusCode(400) }, 1, `consentgate_delivery_dropped_total{cause="rejected_4xx"} 1`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			g := queueGateway(t, t.TempDir(), "")
			var n atomic.Int32
			g.up.setRespond(func(ctx *fasthttp.RequestCtx) {
				if n.Add(1) == 1 {
					tt.fail(ctx)
					return
				}
				ctx.SetStatusCode(204)
			})
			if r := g.do(fromProxy, "GET", fmt.Sprintf(queuedHit, 1), nil, ""); r.Status != 204 {
				t.Fatalf("status %d", r.Status)
			}
			waitMetric(t, g, tt.metric)
			if tt.wantSends == 2 {
				waitMetric(t, g, `consentgate_delivery_delivered_total{family="ga4"} 1`)
			}
			// Delivered or dropped: the hit is done, no send of it can follow.
			if got := len(g.up.requests()); got != tt.wantSends {
				t.Errorf("upstream got %d sends, want %d", got, tt.wantSends)
			}
		})
	}
}

// TestSpoolReplayAfterRestart: hits accepted while the upstream fails are
// delivered by the next process that opens the spool, oldest first.
func TestSpoolReplayAfterRestart(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	g := queueGateway(t, dir, "")
	g.up.setRespond(func(ctx *fasthttp.RequestCtx) { ctx.SetStatusCode(503) })
	const n = 20 // more than the memory queue holds: most wait on disk only
	for i := range n {
		if r := g.do(fromProxy, "GET", fmt.Sprintf(queuedHit, i), nil, ""); r.Status != 204 {
			t.Fatalf("hit %d: status %d", i, r.Status)
		}
	}
	g.close()

	g2 := queueGatewayWorkers(t, dir, "", 1) // one worker: delivery order is replay order
	got := g2.up.wait(t, n)
	seen := map[string]bool{}
	last := -1
	for _, r := range got {
		var i int
		if _, err := fmt.Sscanf(r.URI[strings.Index(r.URI, "ep.n=")+5:], "%d", &i); err != nil {
			t.Fatalf("uri %q", r.URI)
		}
		if i < last {
			t.Errorf("hit %d delivered after %d: replay is oldest first", i, last)
		}
		last = i
		seen[r.URI] = true
	}
	if len(seen) != n {
		t.Fatalf("delivered %d distinct hits after restart, want %d", len(seen), n)
	}
}

// TestQueueFullAnswers503: with the memory queue and the spool full, a hit
// is refused with 503 and Retry-After, and counted.
func TestQueueFullAnswers503(t *testing.T) {
	t.Parallel()
	g := queueGateway(t, t.TempDir(), "max_bytes: 2000, segment_bytes: 1000")
	g.up.setRespond(func(ctx *fasthttp.RequestCtx) { ctx.SetStatusCode(503) })
	var refused *response
	for i := range 50 {
		r := g.do(fromProxy, "GET", fmt.Sprintf(queuedHit, i), map[string]string{"Origin": "https://shop.example"}, "")
		if r.Status == fasthttp.StatusServiceUnavailable {
			refused = r
			break
		}
	}
	if refused == nil {
		t.Fatal("no 503 with a full spool")
	}
	if refused.get("Retry-After") == "" || !strings.Contains(refused.Body, "queue_full") {
		t.Errorf("503 without Retry-After or reason: %+v", refused)
	}
	waitMetric(t, g, `consentgate_rejected_total{reason="queue_full"} 1`)
}

func TestSpoolDirLocked(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	queueGateway(t, dir, "")
	g := newGateway(t, fmt.Sprintf("delivery: {spool: {dir: %q}}\n", dir))
	if err := g.h.StartDelivery(); err == nil || !strings.Contains(err.Error(), "in use by another process") {
		t.Fatalf("second gateway on the same spool: %v", err)
	}
}

// TestSyncFamiliesUnchanged: Ads stays synchronous by default; the browser
// gets the upstream's answer.
func TestSyncFamiliesUnchanged(t *testing.T) {
	t.Parallel()
	g := queueGateway(t, t.TempDir(), "")
	g.up.setRespond(func(ctx *fasthttp.RequestCtx) { ctx.SetStatusCode(200); ctx.SetBodyString("GIF") })
	r := g.do(fromProxy, "GET", "/pagead/conversion/123456/?gcs=G111&label=x", nil, "")
	if r.Status != 200 || r.Body != "GIF" {
		t.Errorf("ads hit: %d %q, want the upstream's answer", r.Status, r.Body)
	}
}

func readDir(t *testing.T, dir string) []byte {
	t.Helper()
	var all []byte
	_ = filepath.Walk(dir, func(p string, fi os.FileInfo, err error) error {
		if err == nil && !fi.IsDir() {
			b, _ := os.ReadFile(p)
			all = append(all, b...)
		}
		return nil
	})
	return all
}

func waitMetric(t *testing.T, g *gateway, line string) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		var b bytes.Buffer
		g.m.WritePrometheus(&b)
		if strings.Contains(b.String(), line+"\n") {
			return
		}
		if time.Now().After(deadline) {
			var got []string
			for _, l := range strings.Split(b.String(), "\n") {
				if strings.HasPrefix(l, "consentgate_delivery_") || strings.HasPrefix(l, "consentgate_rejected_total") {
					if !strings.HasSuffix(l, " 0") {
						got = append(got, l)
					}
				}
			}
			t.Fatalf("metrics lack %q; delivery metrics:\n%s", line, strings.Join(got, "\n"))
		}
		// The delivery goroutines bump metrics and signal no one: this polls
		// the condition, and fails the test at the deadline above.
		time.Sleep(5 * time.Millisecond)
	}
}

// TestQueuePipelined: with delivery.pipeline_conns the workers' requests
// share a few pipelined connections; every hit still arrives once.
func TestQueuePipelined(t *testing.T) {
	t.Parallel()
	g := newGateway(t, fmt.Sprintf("delivery: {spool: {dir: %q}, workers: 8, pipeline_conns: 2}\n", t.TempDir()))
	if err := g.h.StartDelivery(); err != nil {
		t.Fatal(err)
	}
	const n = 50
	for i := range n {
		if r := g.do(fromProxy, "GET", fmt.Sprintf(queuedHit, i), nil, ""); r.Status != 204 {
			t.Fatalf("status %d", r.Status)
		}
	}
	got := g.up.wait(t, n)
	seen := map[string]bool{}
	for _, r := range got {
		seen[r.URI] = true
	}
	if len(got) != n || len(seen) != n {
		t.Fatalf("upstream got %d requests, %d distinct, want %d", len(got), len(seen), n)
	}
}

// TestReloadKeepsQueue: a config reload (SIGHUP) keeps the queued hits and
// the lanes; a reload that turns GA4 to sync takes effect for new hits
// while the queued ones are still delivered.
func TestReloadKeepsQueue(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	g := queueGateway(t, dir, "")
	var fail atomic.Bool
	fail.Store(true)
	g.up.setRespond(func(ctx *fasthttp.RequestCtx) {
		if fail.Load() {
			ctx.SetStatusCode(503)
			return
		}
		ctx.SetStatusCode(204)
	})
	for i := range 10 {
		if r := g.do(fromProxy, "GET", fmt.Sprintf(queuedHit, i), nil, ""); r.Status != 204 {
			t.Fatalf("status %d", r.Status)
		}
	}
	g.h.SetConfig(loadConfig(t, fmt.Sprintf("delivery: {ga4: sync, spool: {dir: %q}, queue_size: 4, workers: 2}\n", dir)))
	fail.Store(false)
	if r := g.do(fromProxy, "GET", fmt.Sprintf(queuedHit, 99), nil, ""); r.Status != 204 {
		t.Fatalf("sync hit after reload: %d", r.Status)
	}
	waitMetric(t, g, `consentgate_delivery_delivered_total{family="ga4"} 10`)
	seen := map[string]bool{}
	for _, r := range g.up.requests() {
		if !strings.Contains(r.URI, "ep.n=") {
			continue
		}
		seen[r.URI[strings.Index(r.URI, "ep.n="):]] = true
	}
	if len(seen) != 11 {
		t.Errorf("upstream saw %d distinct hits, want 10 queued + 1 sync", len(seen))
	}
}

// TestQueueFlappingUpstream: concurrent browsers while the upstream fails
// now and then and the memory queue keeps overflowing to the spool and
// back. Every accepted hit arrives exactly once (503s are not processed
// upstream, so a retry is no duplicate).
func TestQueueFlappingUpstream(t *testing.T) {
	t.Parallel()
	g := queueGatewayWorkers(t, t.TempDir(), "segment_bytes: 4096", 4)
	var n atomic.Int64
	var outage atomic.Int64 // when the 100th attempt came: 300 ms of failures follow
	g.up.setRespond(func(ctx *fasthttp.RequestCtx) {
		k := n.Add(1)
		if k == 100 {
			outage.Store(time.Now().UnixNano())
		}
		down := outage.Load() != 0 && time.Since(time.Unix(0, outage.Load())) < 300*time.Millisecond
		if k%3 == 0 || down { // a third fail, and every attempt during the outage (the circuit opens)
			ctx.SetStatusCode(503)
			return
		}
		ctx.SetStatusCode(204)
	})
	const browsers, each = 8, 30
	errs := make(chan error, browsers)
	for b := range browsers {
		go func() {
			for i := range each {
				r, err := g.tryRaw(fromProxy, "GET "+fmt.Sprintf(queuedHit, b*1000+i)+" HTTP/1.1\r\nHost: metrics.shop.example\r\nConnection: close\r\n\r\n")
				if err == nil && r.Status != 204 {
					err = fmt.Errorf("hit %d: status %d", b*1000+i, r.Status)
				}
				if err != nil {
					errs <- err
					return
				}
			}
			errs <- nil
		}()
	}
	for range browsers {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	waitMetric(t, g, fmt.Sprintf(`consentgate_delivery_delivered_total{family="ga4"} %d`, browsers*each))
	distinct := map[string]bool{}
	for _, r := range g.up.requests() { // failed attempts are recorded too
		distinct[r.URI] = true
	}
	if len(distinct) != browsers*each {
		t.Errorf("upstream saw %d distinct hits, want %d", len(distinct), browsers*each)
	}
	waitMetric(t, g, `consentgate_delivery_spool_records{upstream="http://region1.google-analytics.com"} 0`)
}

// laneDir is the spool directory of the GA4 lane of a test gateway.
func laneDir(dir string) string {
	return filepath.Join(dir, "http___region1.google-analytics.com") // the lane's directory name
}

// damageSpool overwrites two bytes inside record k of the segment of dir
// whose index is seg (in name order) and returns how many records the
// segment holds from k on: those the damage costs.
func damageSpool(t *testing.T, dir string, seg, k int) int {
	t.Helper()
	segs, _ := filepath.Glob(filepath.Join(dir, "*.seg"))
	if len(segs) <= seg {
		t.Fatalf("%d segments, the test needs %d", len(segs), seg+1)
	}
	b, err := os.ReadFile(segs[seg])
	if err != nil {
		t.Fatal(err)
	}
	var offs []int
	for off := 0; off < len(b); {
		_, n, err := spool.DecodeFrame(b[off:])
		if err != nil {
			t.Fatalf("%s at %d: %v", segs[seg], off, err)
		}
		offs = append(offs, off)
		off += n
	}
	f, err := os.OpenFile(segs[seg], os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.WriteAt([]byte{0xff, 0xff}, int64(offs[k]+30)); err != nil {
		t.Fatal(err)
	}
	return len(offs) - k
}

// distinctHits returns the ep.n values the upstream received.
func distinctHits(u *fakeUpstream) map[string]bool {
	seen := map[string]bool{}
	for _, r := range u.requests() {
		if i := strings.Index(r.URI, "ep.n="); i >= 0 {
			seen[r.URI[i:]] = true
		}
	}
	return seen
}

// TestDamagedRecordWhileRunning: a record damaged in a segment the replay
// has not reached costs only the rest of that segment; every hit there is
// counted dropped (spool_corrupt) and every later segment is delivered.
func TestDamagedRecordWhileRunning(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	g := queueGatewayWorkers(t, dir, "segment_bytes: 4096", 1)
	block := make(chan struct{})
	g.up.setRespond(func(ctx *fasthttp.RequestCtx) { <-block; ctx.SetStatusCode(204) })
	const n = 80
	for i := range n {
		if r := g.do(fromProxy, "GET", fmt.Sprintf(queuedHit, i), nil, ""); r.Status != 204 {
			t.Fatalf("hit %d: status %d", i, r.Status)
		}
	}
	// One worker holds a hit, the queue 4 more, replay one: the replay
	// is still in the first segment.
	lost := damageSpool(t, laneDir(dir), 2, 3)
	close(block)
	waitMetric(t, g, fmt.Sprintf(`consentgate_delivery_dropped_total{cause="spool_corrupt"} %d`, lost))
	waitMetric(t, g, fmt.Sprintf(`consentgate_delivery_delivered_total{family="ga4"} %d`, n-lost))
	waitMetric(t, g, `consentgate_delivery_spool_records{upstream="http://region1.google-analytics.com"} 0`)
	if got := len(distinctHits(g.up)); got != n-lost {
		t.Errorf("upstream got %d distinct hits, want %d (%d lost to the damage)", got, n-lost, lost)
	}
}

// TestDamagedRecordBeforeRestart: a record damaged while the gateway was
// stopped costs the rest of its segment, counted once per hit.
func TestDamagedRecordBeforeRestart(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	g := queueGateway(t, dir, "segment_bytes: 4096")
	g.up.setRespond(func(ctx *fasthttp.RequestCtx) { ctx.SetStatusCode(503) })
	const n = 80
	for i := range n {
		if r := g.do(fromProxy, "GET", fmt.Sprintf(queuedHit, i), nil, ""); r.Status != 204 {
			t.Fatalf("hit %d: status %d", i, r.Status)
		}
	}
	g.close()
	lost := damageSpool(t, laneDir(dir), 1, 2)

	g2 := queueGatewayWorkers(t, dir, "segment_bytes: 4096", 1)
	waitMetric(t, g2, fmt.Sprintf(`consentgate_delivery_dropped_total{cause="spool_corrupt"} %d`, lost))
	waitMetric(t, g2, fmt.Sprintf(`consentgate_delivery_delivered_total{family="ga4"} %d`, n-lost))
	if got := len(distinctHits(g2.up)); got != n-lost {
		t.Errorf("upstream got %d distinct hits after the restart, want %d", got, n-lost)
	}
}

// metricValue returns the value of one series (0 when absent).
func metricValue(g *gateway, series string) float64 {
	var b bytes.Buffer
	g.m.WritePrometheus(&b)
	for _, l := range strings.Split(b.String(), "\n") {
		if v, ok := strings.CutPrefix(l, series+" "); ok {
			f, _ := strconv.ParseFloat(v, 64)
			return f
		}
	}
	return 0
}

// observedQueueGateway is queueGatewayWorkers with its delivery log
// recorded; yaml is the whole delivery section.
func observedQueueGateway(t *testing.T, yaml string) (*gateway, *observer.ObservedLogs) {
	t.Helper()
	g := newGateway(t, yaml)
	core, logs := observer.New(zap.DebugLevel)
	g.h.log = zap.New(core)
	if err := g.h.StartDelivery(); err != nil {
		t.Fatal(err)
	}
	return g, logs
}

// TestSpoolAckErrorCountedAndKept: acknowledgements that cannot be
// written are counted (spool_errors_total{op="ack"}), logged, and written
// once the disk takes them: the delivered hit is not sent again after a
// restart.
func TestSpoolAckErrorCountedAndKept(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	g, logs := observedQueueGateway(t, fmt.Sprintf("delivery: {spool: {dir: %q, sync_interval: 5ms}, queue_size: 4, workers: 1}\n", dir))
	block := make(chan struct{})
	g.up.setRespond(func(ctx *fasthttp.RequestCtx) { <-block; ctx.SetStatusCode(204) })
	if r := g.do(fromProxy, "GET", fmt.Sprintf(queuedHit, 1), nil, ""); r.Status != 204 {
		t.Fatalf("status %d", r.Status)
	}
	// A directory where the ack file should go: creating it fails.
	ack := filepath.Join(laneDir(dir), "00000000000000000001.ack")
	if err := os.Mkdir(ack, 0o700); err != nil {
		t.Fatal(err)
	}
	close(block)
	waitMetric(t, g, `consentgate_delivery_delivered_total{family="ga4"} 1`)
	waitFor(t, func() bool { return metricValue(g, `consentgate_delivery_spool_errors_total{op="ack"}`) > 0 })
	entries := logs.FilterMessage("spool: ack").All()
	if len(entries) == 0 || entries[0].ContextMap()["upstream"] != "http://region1.google-analytics.com" || entries[0].Level != zap.ErrorLevel {
		t.Fatalf("log of the ack error: %+v", entries)
	}
	if err := os.Remove(ack); err != nil {
		t.Fatal(err)
	}
	waitFor(t, func() bool {
		fi, err := os.Stat(ack)
		return err == nil && fi.Size() == 8
	})
	g.close()
	g2 := queueGatewayWorkers(t, dir, "", 1)
	g2.h.delivery.Shutdown(time.Minute) // drains what replay finds
	if got := g2.up.requests(); len(got) != 0 {
		t.Errorf("the delivered hit was sent again after the restart: %d requests", len(got))
	}
}

// TestUpstreamMarkerAtomic: the UPSTREAM file names the lane's upstream
// and no temporary file is left beside it.
func TestUpstreamMarkerAtomic(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	queueGateway(t, dir, "")
	b, err := os.ReadFile(filepath.Join(laneDir(dir), "UPSTREAM"))
	if err != nil || string(b) != "http://region1.google-analytics.com\n" {
		t.Fatalf("UPSTREAM = %q, %v", b, err)
	}
	if tmp, _ := filepath.Glob(filepath.Join(laneDir(dir), "UPSTREAM.tmp*")); len(tmp) != 0 {
		t.Fatalf("temporary files left: %v", tmp)
	}
}

// TestShutdownRefusesAccepts: once Shutdown begins, a queued route
// answers 503 shutting_down (counted), and the hit in flight is still
// delivered within the drain.
func TestShutdownRefusesAccepts(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	g := queueGateway(t, dir, "")
	block := make(chan struct{})
	g.up.setRespond(func(ctx *fasthttp.RequestCtx) { <-block; ctx.SetStatusCode(204) })
	if r := g.do(fromProxy, "GET", fmt.Sprintf(queuedHit, 1), nil, ""); r.Status != 204 {
		t.Fatalf("status %d", r.Status)
	}
	d := g.h.delivery
	stopped := make(chan struct{})
	go func() { d.Shutdown(time.Minute); close(stopped) }()
	waitFor(t, d.Closed)
	r := g.do(fromProxy, "GET", fmt.Sprintf(queuedHit, 2), nil, "")
	if r.Status != fasthttp.StatusServiceUnavailable || !strings.Contains(r.Body, "shutting_down") || r.get("Retry-After") == "" {
		t.Errorf("hit during shutdown: %d %q, want 503 shutting_down with Retry-After", r.Status, r.Body)
	}
	close(block)
	<-stopped
	waitMetric(t, g, `consentgate_rejected_total{reason="shutting_down"} 1`)
	waitMetric(t, g, `consentgate_delivery_delivered_total{family="ga4"} 1`)
	up := g.h.clients.get("http", "other.example", g.h.Config())
	if _, err := d.Lane(delivery.Upstream{Scheme: up.scheme, Host: up.host, Client: up.client}); !errors.Is(err, delivery.ErrClosed) {
		t.Errorf("lane after Shutdown: %v, want ErrClosed", err)
	}
	if _, err := os.Stat(filepath.Join(dir, "http___other.example")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("a spool was opened for a lane after Shutdown: %v", err)
	}
}

// TestShutdownCountsEveryAccepted: without a spool, hits accepted while
// Shutdown runs are each delivered or dropped with cause shutdown; none is
// left in a queue nobody reads.
func TestShutdownCountsEveryAccepted(t *testing.T) {
	t.Parallel()
	g := newGateway(t, "delivery: {spool: {dir: \"\"}, queue_size: 1000, workers: 1}\n")
	if err := g.h.StartDelivery(); err != nil {
		t.Fatal(err)
	}
	var l *delivery.Lane
	for _, ln := range g.h.snap.Load().lanes {
		if ln != nil {
			l = ln
			break
		}
	}
	req := fasthttp.AcquireRequest()
	defer fasthttp.ReleaseRequest(req)
	req.SetRequestURI("http://region1.google-analytics.com/g/collect?v=2&tid=G-1")
	const senders = 4
	var wg sync.WaitGroup
	start, stop := make(chan struct{}), make(chan struct{})
	for range senders {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var out fasthttp.Request
			req.CopyTo(&out)
			<-start
			for {
				select {
				case <-stop: // (refused anyway by then)
					return
				default:
				}
				if err := l.Accept(0, &out, []byte("/g/collect"), []byte("v=2&tid=G-1"), fixedNow()); errors.Is(err, delivery.ErrClosed) {
					return
				}
			}
		}()
	}
	close(start)
	waitFor(t, func() bool { return metricValue(g, `consentgate_delivery_accepted_total{family="ga4"}`) > 100 })
	g.h.delivery.Shutdown(0)
	for range 1000 { // accepts after Shutdown: none may be counted and left
		var out fasthttp.Request
		req.CopyTo(&out)
		_ = l.Accept(0, &out, []byte("/g/collect"), []byte("v=2&tid=G-1"), fixedNow())
	}
	close(stop)
	wg.Wait()
	accepted := metricValue(g, `consentgate_delivery_accepted_total{family="ga4"}`)
	done := metricValue(g, `consentgate_delivery_delivered_total{family="ga4"}`)
	for _, c := range delivery.DropCauses() {
		done += metricValue(g, `consentgate_delivery_dropped_total{cause="`+c+`"}`)
	}
	if accepted == 0 || accepted != done {
		var b bytes.Buffer
		g.m.WritePrometheus(&b)
		t.Fatalf("accepted %g, delivered + dropped %g\n%s", accepted, done, b.String())
	}
}

// TestDeliveryFailuresLogged: a circuit opening (with the class of the
// failure) and closing, a 4xx drop and what stays spooled at shutdown are
// each logged.
func TestDeliveryFailuresLogged(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	g, logs := observedQueueGateway(t, fmt.Sprintf("delivery: {spool: {dir: %q, sync_interval: 5ms}, queue_size: 4, workers: 1}\n", dir))
	var n atomic.Int32
	g.up.setRespond(func(ctx *fasthttp.RequestCtx) {
		switch k := n.Add(1); {
		case k <= 5: // the circuit opens after 5 failures in a row
			ctx.SetStatusCode(503)
		case k == 5+2:
			ctx.SetStatusCode(400)
		default:
			ctx.SetStatusCode(204)
		}
	})
	for i := range 2 {
		if r := g.do(fromProxy, "GET", fmt.Sprintf(queuedHit, i), nil, ""); r.Status != 204 {
			t.Fatalf("status %d", r.Status)
		}
	}
	waitMetric(t, g, `consentgate_delivery_delivered_total{family="ga4"} 1`)
	waitMetric(t, g, `consentgate_delivery_dropped_total{cause="rejected_4xx"} 1`)
	open := logs.FilterMessage("delivery: circuit open; the upstream is failing").All()
	if len(open) != 1 || open[0].ContextMap()["class"] != "status" || open[0].ContextMap()["status"] != int64(503) ||
		open[0].ContextMap()["upstream"] != "http://region1.google-analytics.com" {
		t.Errorf("circuit open lines: %+v", open)
	}
	if closed := logs.FilterMessage("delivery: circuit closed; the upstream answers again").Len(); closed != 1 {
		t.Errorf("%d circuit closed lines, want 1", closed)
	}
	drop := logs.FilterMessage("delivery: upstream refused a queued hit; dropped").All()
	if len(drop) != 1 || drop[0].ContextMap()["status"] != int64(400) {
		t.Errorf("4xx drop lines: %+v", drop)
	}

	// Shutdown with hits left in the spool says how many and where.
	g.up.setRespond(func(ctx *fasthttp.RequestCtx) { ctx.SetStatusCode(503) })
	for i := range 3 {
		if r := g.do(fromProxy, "GET", fmt.Sprintf(queuedHit, 10+i), nil, ""); r.Status != 204 {
			t.Fatalf("status %d", r.Status)
		}
	}
	g.h.delivery.Shutdown(0)
	left := logs.FilterMessage("spool: hits stay spooled for the next start").All()
	if len(left) != 1 || left[0].ContextMap()["hits"] != int64(3) || left[0].ContextMap()["dir"] != laneDir(dir) {
		t.Errorf("shutdown lines: %+v", left)
	}
}
