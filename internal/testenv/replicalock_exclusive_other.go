//go:build !unix

package testenv

import "testing"

// LockReplicaExclusive serialises tests that disrupt the replica on unix
// (see replicalock_exclusive_unix.go); elsewhere it does nothing.
func LockReplicaExclusive(testing.TB) {}
