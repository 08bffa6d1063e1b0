package declog

import (
	"testing"

	"go.uber.org/goleak"
)

// TestMain fails the package's tests if a goroutine outlives them: the
// log's writer, its flusher and the Kafka sink's clients all have to stop
// on Close.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}
