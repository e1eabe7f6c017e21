package dbwrap

import (
	"testing"

	"go.uber.org/goleak"
)

// TestMain fails the package when a goroutine outlives its tests: every
// poller and connection goroutine must end with its DB.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}
