//go:build faults

package main

import (
	"testing"
	"time"
)

// Connections that break in the middle of a batch: for 10 s of a 20 s
// run the upstream closes every fourth request's connection without an
// answer, taking with it whatever the gateway had pipelined behind that
// request. Every hit answered 204 is delivered (the unanswered ones are
// sent again, the answered ones are not), and the balance holds: accepted
// = delivered + dropped + still spooled, 0 lost.
func TestFaultBreakMidBatch(t *testing.T) {
	up := newFakeUpstream(t)
	gw := startFaultGateway(t, "break", defaultGWConfig(t, up), waitServing)
	l := startLoad(t, loadSpec{target: gw.public, rate: faultRate, count: 20 * faultRate, timeout: faultTimeout, postEvery: 10, secretEvery: 7})
	l.at(5 * time.Second)
	up.set(upBreak)
	l.at(15 * time.Second)
	up.set(upOK)
	l.wait()
	ls := l.stats()
	uc, took := up.waitDelivered(ls.acceptedReqs, deliverWithin)
	m := settled(t, gw, ls)
	report(t, "break-mid-batch", ls, uc, droppedByCause(m))
	details(t, ls, uc, took)
	checkBalance(t, ls, uc, 0, spoolSettled(t, gw), m)
	checkCommon(t, ls, uc)
	if ls.accepted != ls.sent {
		t.Errorf("%d of %d requests not accepted (answers %s)", ls.sent-ls.accepted, ls.sent, ls.statusString())
	}
	if uc.byMode[upBreak] < breakEvery {
		t.Errorf("%d requests reached the upstream while it broke connections: the scenario tested nothing", uc.byMode[upBreak])
	}
	t.Logf("duplicates (delivered more than once): %d of %d delivered", uc.duplicated, uc.delivered)
}
