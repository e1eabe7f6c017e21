package fxmodule_test

import (
	"testing"

	"go.uber.org/goleak"
)

// No goroutine (plan watcher, replica poller, transport) outlives the tests.
func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }
