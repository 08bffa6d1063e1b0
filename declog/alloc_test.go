//go:build !race

package declog

import "testing"

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
