//go:build unix

package testenv

import (
	"errors"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"
)

// ReplicaLockFile is the lock that tests sharing the PostgreSQL replica take
// (flock(2)): the dbwrap tests that pause replay or stop the replica hold it
// exclusively, every other test that needs a replica that replays and
// answers holds it shared. `go test ./...` runs packages in parallel, so
// without it a test in one package could see the replica stopped by another.
var ReplicaLockFile = filepath.Join(os.TempDir(), "canary-pg-replica.lock")

// LockReplicaShared holds the shared replica lock until the end of the test,
// waiting up to five minutes for a test that disrupts the replica to finish.
// Do not call it from a test that also takes the lock another way: two holds
// in one process can deadlock an upgrade to exclusive.
func LockReplicaShared(t testing.TB) {
	t.Helper()
	lockReplica(t, ReplicaLockFile, syscall.LOCK_SH, "held exclusively by another test process")
}

// LockReplicaExclusive holds the replica lock exclusively until the end of
// the test, waiting up to five minutes for the tests that share the replica
// to finish: take it before pausing replay or stopping the replica, and
// register the cleanup that restores the replica after calling it, so that
// the restore runs before the lock is released. The same caveat as for
// LockReplicaShared applies: one hold per test.
func LockReplicaExclusive(t testing.TB) {
	t.Helper()
	lockReplica(t, ReplicaLockFile, syscall.LOCK_EX, "held by another test process")
}

// lockFile holds the flock(2) lock of path, exclusive or shared, until the
// end of the test.
func lockFile(t testing.TB, path string, exclusive bool) {
	t.Helper()
	if exclusive {
		lockReplica(t, path, syscall.LOCK_EX, "held by another test process")
		return
	}
	lockReplica(t, path, syscall.LOCK_SH, "held exclusively by another test process")
}

func lockReplica(t testing.TB, path string, how int, heldBy string) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_CREATE|os.O_RDWR, 0o666)
	if err != nil {
		t.Fatalf("replica lock: %v", err)
	}
	t.Cleanup(func() {
		_ = syscall.Flock(int(f.Fd()), syscall.LOCK_UN)
		f.Close()
	})
	deadline := time.Now().Add(5 * time.Minute)
	for {
		err := syscall.Flock(int(f.Fd()), how|syscall.LOCK_NB)
		if err == nil {
			return
		}
		if !errors.Is(err, syscall.EWOULDBLOCK) && !errors.Is(err, syscall.EINTR) {
			t.Fatalf("replica lock %s: %v", path, err)
		}
		if time.Now().After(deadline) {
			t.Fatalf("replica lock %s: still %s after 5m", path, heldBy)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
