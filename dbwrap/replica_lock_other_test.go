//go:build !unix

package dbwrap

import "testing"

// replicaLock serialises tests that disrupt the shared replica across test
// processes on unix (see replica_lock_unix_test.go); elsewhere it is a no-op.
type replicaLock struct{}

func lockReplica(testing.TB) *replicaLock     { return &replicaLock{} }
func (*replicaLock) makeExclusive(testing.TB) {}

func lockReplicaAt(testing.TB, string) *replicaLock { return &replicaLock{} }
