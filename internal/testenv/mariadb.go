package testenv

import (
	"os"
	"path/filepath"
	"testing"
)

// Environment variables that scripts/testenv-mariadb.sh (sourced by
// scripts/testenv.sh) prints: go-sql-driver/mysql DSNs of the project's own
// MariaDB pair.
const (
	EnvMySQLPrimary = "CANARY_MYSQL_PRIMARY" // the MariaDB primary (server_id 1, log_bin, GTID)
	EnvMySQLReplica = "CANARY_MYSQL_REPLICA" // its GTID replica (server_id 2, read_only)
)

// MySQLPrimary returns the DSN of the test MariaDB primary, e.g.
// "canary@tcp(127.0.0.1:33306)/canary_test". With CI=true a missing pair
// fails the test; otherwise the test is skipped.
func MySQLPrimary(t testing.TB) string { t.Helper(); return need(t, EnvMySQLPrimary) }

// MySQLReplica returns the DSN of the test MariaDB GTID replica.
func MySQLReplica(t testing.TB) string { t.Helper(); return need(t, EnvMySQLReplica) }

// MariaDBReplicaLockFile is the lock of the MariaDB replica, taken like
// ReplicaLockFile: exclusively by a test that stops its replication threads
// (STOP SLAVE SQL_THREAD) or turns read_only off, shared by a test that needs
// it to replicate. scripts/testenv-mariadb.sh restarts stopped threads, so a
// test holding it exclusively restores the replica before releasing it.
var MariaDBReplicaLockFile = filepath.Join(os.TempDir(), "canary-mariadb-replica.lock")

// LockMariaDBReplicaShared holds the MariaDB replica lock shared until the
// end of the test (see LockReplicaShared).
func LockMariaDBReplicaShared(t testing.TB) {
	t.Helper()
	lockFile(t, MariaDBReplicaLockFile, false)
}

// LockMariaDBReplicaExclusive holds the MariaDB replica lock exclusively
// until the end of the test (see LockReplicaExclusive): register the cleanup
// that restarts the replica's threads after calling it.
func LockMariaDBReplicaExclusive(t testing.TB) {
	t.Helper()
	lockFile(t, MariaDBReplicaLockFile, true)
}
