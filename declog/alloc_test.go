//go:build !race

package declog

import (
	"io"
	"testing"
	"time"

	"go.uber.org/zap/zapcore"

	"github.com/consentgate/consentgate/consentmode"
)

// TestAddAllocs: queuing an entry with its inputs allocates nothing once
// the pool is warm (the request path's share of the decision log).
func TestAddAllocs(t *testing.T) {
	l := &Log{ch: make(chan Entry, 1)}
	e := loggedDecision(t)
	add := func() {
		l.Add(e, &identifyingHit)
		got := <-l.ch
		hitInputsPool.Put(got.inputs) // what the writer does after encoding
	}
	add()
	if n := testing.AllocsPerRun(1000, add); n != 0 {
		t.Errorf("Add allocates %v times per hit, want 0", n)
	}
}

// TestWriteAllocs: once its buffers are warm, the writer allocates
// nothing for a record: encoding, the chain and the write to the file.
func TestWriteAllocs(t *testing.T) {
	l := unstarted(zapcore.AddSync(io.Discard), WithChain(Chain{Checkpoint: time.Hour}))
	defer l.buf.Stop()
	e := loggedDecision(t)
	e.Decision.Region, _ = consentmode.ParseRegion([]byte("DE"))
	e.Decision.Consent.Source[0] = consentmode.SourceRegionDefault
	e.Vendors[consentmode.VendorMicrosoft] = consentmode.VendorCall{Action: consentmode.VendorSend, Flags: consentmode.FlagNoIDs | consentmode.FlagNoUserData}
	e.Vendors[consentmode.VendorMeta] = consentmode.VendorCall{Action: consentmode.VendorBlock}
	write := func() {
		e.inputs = readHit(&identifyingHit) // what Add does; encode returns it to the pool
		l.write(&e)
	}
	write()
	if n := testing.AllocsPerRun(1000, write); n != 0 {
		t.Errorf("the writer allocates %v times per record, want 0", n)
	}
}
