//go:build faults

package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/consentgate/consentgate/delivery/spool"
)

// sumPrefix adds up the samples of m whose key starts with prefix.
func sumPrefix(m map[string]float64, prefix string) float64 {
	v := 0.0
	for k, x := range m {
		if strings.HasPrefix(k, prefix) {
			v += x
		}
	}
	return v
}

// checkBalance asserts what every scenario ends with: each accepted
// request was delivered, dropped with a counted cause, or is still in the
// spool. dropped sums consentgate_delivery_dropped_total over the scrapes
// of every gateway process of the scenario; last is the scrape of the one
// still running (its spool_records are what is still spooled), nil when
// none runs and the spool is empty. A request the client got no answer for
// may have been accepted too (up to ls.errors more); allowLost requests
// may be missing altogether (kill -9's sync window).
func checkBalance(t *testing.T, ls loadStats, uc upCounts, allowLost int, last map[string]float64, scrapes ...map[string]float64) {
	t.Helper()
	dropped := 0.0
	for _, m := range scrapes {
		dropped += sumPrefix(m, "consentgate_delivery_dropped_total")
	}
	spooled := sumPrefix(last, "consentgate_delivery_spool_records")
	got := float64(uc.delivered) + dropped + spooled
	t.Logf("balance: accepted %d = delivered %d + dropped %g + still spooled %g (%g); %d without answer, %d may be lost",
		ls.accepted, uc.delivered, dropped, spooled, got, ls.errors, allowLost)
	if got < float64(ls.accepted-allowLost) || got > float64(ls.accepted+ls.errors) {
		t.Errorf("accepted %d requests, but delivered %d + dropped %g + still spooled %g = %g: some are unaccounted for",
			ls.accepted, uc.delivered, dropped, spooled, got)
	}
}

// spoolSettled scrapes a gateway once its spools hold nothing (or after
// 10 s): a hit the upstream has received may not be acknowledged yet.
func spoolSettled(t *testing.T, g *gateway) map[string]float64 {
	t.Helper()
	start := time.Now()
	for {
		m, err := g.metrics()
		if err != nil {
			t.Errorf("%s: metrics: %v", g.name, err)
			return nil
		}
		if sumPrefix(m, "consentgate_delivery_spool_records") == 0 || time.Since(start) > 10*time.Second {
			t.Logf("%s (%d error log lines) metrics:%s", g.name, g.errorLines(), metricsLine(m))
			return m
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// laneDirs returns the lane directories of a spool.
func laneDirs(t *testing.T, dir string) []string {
	t.Helper()
	ds, err := filepath.Glob(filepath.Join(dir, "*", "UPSTREAM"))
	if err != nil || len(ds) == 0 {
		t.Fatalf("no lane directory in %s: %v", dir, err)
	}
	for i := range ds {
		ds[i] = filepath.Dir(ds[i])
	}
	return ds
}

// damageSegment writes two bytes into the payload of the record at (or
// after) offset off of the seg-th segment (in name order) of a lane
// directory, and returns how many records the segment holds from that
// one on: the requests the damage costs.
func damageSegment(t *testing.T, dir string, seg int, off int) int {
	t.Helper()
	segs, _ := filepath.Glob(filepath.Join(dir, "*.seg"))
	if len(segs) <= seg {
		t.Fatalf("%d segments in %s, the scenario needs %d", len(segs), dir, seg+1)
	}
	b, err := os.ReadFile(segs[seg])
	if err != nil {
		t.Fatal(err)
	}
	var starts []int
	for at := 0; at < len(b); {
		_, n, err := spool.DecodeFrame(b[at:])
		if err != nil {
			t.Fatalf("%s at %d: %v", segs[seg], at, err)
		}
		starts = append(starts, at)
		at += n
	}
	k := 0
	for k+1 < len(starts) && starts[k+1] <= off {
		k++
	}
	f, err := os.OpenFile(segs[seg], os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.WriteAt([]byte{0xff, 0xff}, int64(starts[k]+24+4)); err != nil { // frame header 8, seq and time 16
		t.Fatal(err)
	}
	lost := len(starts) - k
	t.Logf("damaged record %d of %d in %s (%d segments): %d records lost", k, len(starts), filepath.Base(segs[seg]), len(segs), lost)
	return lost
}

// waitMissing waits until at most want accepted requests are undelivered
// (or the deadline passes) and returns the counts.
func (u *fakeUpstream) waitMissing(accepted [][]int, want int, deadline time.Duration) upCounts {
	start := time.Now()
	for {
		c := u.counts(accepted)
		if c.missing <= want || time.Since(start) > deadline {
			return c
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// waitMetric waits until the gateway reports want for a series.
func waitMetric(t *testing.T, g *gateway, series string, want float64, deadline time.Duration) map[string]float64 {
	t.Helper()
	start := time.Now()
	for {
		m, err := g.metrics()
		if err != nil {
			t.Fatalf("%s: metrics: %v", g.name, err)
		}
		if m[series] == want || time.Since(start) > deadline {
			return m
		}
		time.Sleep(100 * time.Millisecond)
	}
}

const corruptSeries = `consentgate_delivery_dropped_total{cause="spool_corrupt"}`

// 6. A record damaged on disk, while the gateway runs or before a restart,
// costs only the rest of its segment: every later segment is delivered,
// and each request lost is counted (spool_corrupt). The reproduction of
// the outside review: queue_size 10, 64 KiB segments, the upstream
// answering 503 while 1000 requests are accepted.
func TestFaultSpoolDamaged(t *testing.T) {
	t.Run("running", func(t *testing.T) { faultSpoolDamaged(t, false) })
	t.Run("restart", func(t *testing.T) { faultSpoolDamaged(t, true) })
}

func faultSpoolDamaged(t *testing.T, restart bool) {
	up := newFakeUpstream(t)
	cfg := defaultGWConfig(t, up)
	cfg.queueSize = 10
	cfg.spoolSegment = 64 << 10
	name := "damaged-running"
	if restart {
		name = "damaged-restart"
	}
	up.set(up503)
	gw := startFaultGateway(t, name+"-1", cfg, waitServing)
	l := startLoad(t, loadSpec{target: cfg.listen, rate: faultRate, count: 5 * faultRate, timeout: faultTimeout, postEvery: 10, secretEvery: 7})
	l.wait()
	ls := l.stats()
	var scrapes []map[string]float64
	if restart {
		scrapes = append(scrapes, scrape(t, gw))
		if _, err := gw.terminate(30 * time.Second); err != nil {
			t.Errorf("exit after SIGTERM: %v", err)
		}
	}
	// The replay waits in the first segment: damage the second one.
	lost := damageSegment(t, laneDirs(t, cfg.spoolDir)[0], 1, 30000)
	if restart {
		gw = startFaultGateway(t, name+"-2", cfg, waitServing)
	}
	up.set(upOK)
	uc := up.waitMissing(ls.acceptedReqs, lost, deliverWithin)
	waitMetric(t, gw, corruptSeries, float64(lost), 10*time.Second)
	m := waitMetric(t, gw, `consentgate_delivery_spool_records{upstream="`+up.URL()+`"}`, 0, 10*time.Second)
	scrapes = append(scrapes, m)
	report(t, name, ls, uc, droppedByCause(m))
	details(t, ls, uc, 0)
	if ls.accepted != ls.sent {
		t.Errorf("%d of %d requests not accepted (answers %s)", ls.sent-ls.accepted, ls.sent, ls.statusString())
	}
	if uc.missing != lost || m[corruptSeries] != float64(lost) {
		t.Errorf("the damage cost %d requests; undelivered %d, counted dropped (spool_corrupt) %g", lost, uc.missing, m[corruptSeries])
	}
	if uc.secrets != 0 {
		t.Errorf("the upstream received %d requests carrying identifiers the decision removed", uc.secrets)
	}
	checkBalance(t, ls, uc, 0, m, scrapes...)
	if _, err := gw.terminate(30 * time.Second); err != nil {
		t.Errorf("last exit: %v", err)
	}
	if segs, _ := filepath.Glob(filepath.Join(cfg.spoolDir, "*", "*.seg")); len(segs) != 0 {
		files, _, _, _ := spoolFiles(t, cfg.spoolDir)
		t.Errorf("segments left after everything was delivered or counted lost: %v", files)
	}
}
