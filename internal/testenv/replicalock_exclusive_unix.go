//go:build unix

package testenv

import (
	"errors"
	"os"
	"syscall"
	"testing"
	"time"
)

// LockReplicaExclusive holds the replica lock exclusively until the end of
// the test, waiting up to five minutes for the tests that share the replica
// to finish: take it before pausing replay or stopping the replica, and
// register the cleanup that restores the replica after calling it, so that
// the restore runs before the lock is released. The same caveat as for
// LockReplicaShared applies: one hold per test.
func LockReplicaExclusive(t testing.TB) {
	t.Helper()
	f, err := os.OpenFile(ReplicaLockFile, os.O_CREATE|os.O_RDWR, 0o666)
	if err != nil {
		t.Fatalf("replica lock: %v", err)
	}
	t.Cleanup(func() {
		_ = syscall.Flock(int(f.Fd()), syscall.LOCK_UN)
		f.Close()
	})
	deadline := time.Now().Add(5 * time.Minute)
	for {
		err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB)
		if err == nil {
			return
		}
		if !errors.Is(err, syscall.EWOULDBLOCK) && !errors.Is(err, syscall.EINTR) {
			t.Fatalf("replica lock %s: %v", ReplicaLockFile, err)
		}
		if time.Now().After(deadline) {
			t.Fatalf("replica lock %s: still held by another test process after 5m", ReplicaLockFile)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
