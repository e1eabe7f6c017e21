//go:build !unix

package testenv

import "testing"

// LockReplicaShared serialises tests sharing the replica on unix (see
// replicalock_unix.go); elsewhere it does nothing.
func LockReplicaShared(testing.TB) {}

// LockReplicaExclusive serialises tests that disrupt the replica on unix
// (see replicalock_unix.go); elsewhere it does nothing.
func LockReplicaExclusive(testing.TB) {}

func lockFile(testing.TB, string, bool) {}
