package redistoken

import (
	"testing"

	"go.uber.org/goleak"
)

// TestMain fails the package when a goroutine outlives its tests: the
// write-back and detached calls must end with their Store, the pollers with
// their DB.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}
