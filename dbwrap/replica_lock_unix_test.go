//go:build unix

package dbwrap

import (
	"errors"
	"os"
	"syscall"
	"testing"
	"time"

	"github.com/reqcanary/canary/internal/testenv"
)

// The test clusters are shared: `go test ./...` runs packages in parallel,
// and several checkouts of the repository may run their tests at the same
// time against the same primary and replica. A test that pauses replay on
// the replica or stops it holds an exclusive lock on replicaLockFile; a test
// that only uses the servers holds a shared one, so it never runs while the
// replica is made to lag or fail on its behalf. Any test, in any package,
// that needs a replica that replays and answers should hold the shared lock
// (flock(2) LOCK_SH on this file) for its duration.
var replicaLockFile = testenv.ReplicaLockFile

// replicaLockWait bounds the wait for the lock: a test that cannot get it
// fails with a message instead of hanging until the test binary's timeout.
const replicaLockWait = 5 * time.Minute

// replicaLock is one test's hold on replicaLockFile, released at the end of
// the test.
type replicaLock struct {
	f         *os.File
	file      string
	exclusive bool
}

// lockReplica takes the shared lock until the end of the test.
func lockReplica(t testing.TB) *replicaLock {
	t.Helper()
	return lockReplicaAt(t, replicaLockFile)
}

// lockReplicaAt is lockReplica on another lock file (the MariaDB replica's:
// testenv.MariaDBReplicaLockFile).
func lockReplicaAt(t testing.TB, file string) *replicaLock {
	t.Helper()
	f, err := os.OpenFile(file, os.O_CREATE|os.O_RDWR, 0o666)
	if err != nil {
		t.Fatalf("replica lock: %v", err)
	}
	l := &replicaLock{f: f, file: file}
	t.Cleanup(func() {
		_ = syscall.Flock(int(f.Fd()), syscall.LOCK_UN)
		f.Close()
	})
	l.take(t, syscall.LOCK_SH)
	return l
}

// makeExclusive turns the hold into an exclusive one (no-op when it already is):
// call it before pausing replay or stopping the replica. The hold is
// released, after the test's later cleanups (which restore the replica), at
// the end of the test.
func (l *replicaLock) makeExclusive(t testing.TB) {
	t.Helper()
	if l.exclusive {
		return
	}
	l.take(t, syscall.LOCK_EX)
	l.exclusive = true
}

func (l *replicaLock) take(t testing.TB, how int) {
	t.Helper()
	deadline := time.Now().Add(replicaLockWait)
	for {
		err := syscall.Flock(int(l.f.Fd()), how|syscall.LOCK_NB)
		if err == nil {
			return
		}
		if !errors.Is(err, syscall.EWOULDBLOCK) && !errors.Is(err, syscall.EINTR) {
			t.Fatalf("replica lock %s: %v", l.file, err)
		}
		if time.Now().After(deadline) {
			t.Fatalf("replica lock %s: still held by another test process after %v (one that pauses or stops the shared replica)", l.file, replicaLockWait)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
