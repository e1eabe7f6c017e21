package canary

import (
	"testing"

	"go.uber.org/goleak"
)

// TestMain fails the package's tests if any goroutine (a plan watcher, a
// test server) outlives them.
func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }
