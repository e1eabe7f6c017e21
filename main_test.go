package canary

import (
	"os"
	"testing"

	"go.uber.org/goleak"
)

// TestMain runs the tests with the zero-config environment the examples and
// default-engine tests describe, and fails them if any goroutine (a plan
// watcher, a test server) outlives them.
func TestMain(m *testing.M) {
	os.Unsetenv(EnvPlan)
	os.Unsetenv(EnvUserHashKey)
	os.Unsetenv(EnvDecisionKey)
	os.Unsetenv(EnvDecisionKeyPrevious)
	os.Unsetenv(EnvEdge)
	goleak.VerifyTestMain(m)
}
