package spool

import (
	"testing"

	"go.uber.org/goleak"
)

// TestMain fails the package's tests if a spool's fsync loop outlives
// its Close.
func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }
