// Package testenv gives tests the real services that `make test` starts or
// checks (scripts/testenv.sh): a PostgreSQL primary with a streaming replica,
// Redis and etcd. With CI=true a missing service fails the test; otherwise the test
// is skipped with a message saying how to get the service.
package testenv

import (
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
)

// Environment variables that scripts/testenv.sh prints.
const (
	EnvPGPrimary      = "CANARY_PG_PRIMARY"         // DSN of the primary
	EnvPGReplica      = "CANARY_PG_REPLICA"         // DSN of the streaming replica
	EnvReplicaCluster = "CANARY_PG_REPLICA_CLUSTER" // "15 canary_replica"
	EnvRedisAddr      = "CANARY_REDIS_ADDR"         // host:port of Redis
	EnvEtcdEndpoints  = "CANARY_ETCD_ENDPOINTS"     // comma-separated host:port of etcd
)

// InCI reports whether the tests run in CI (CI=true), where a missing service
// is a failure.
func InCI() bool { return strings.EqualFold(os.Getenv("CI"), "true") }

func need(t testing.TB, env string) string {
	t.Helper()
	v := os.Getenv(env)
	if v != "" {
		return v
	}
	msg := env + " is not set: run the tests with `make test`, or `eval \"$(bash scripts/testenv.sh)\"` first"
	if InCI() {
		t.Fatal(msg)
	}
	t.Skip(msg)
	return ""
}

// PGPrimary returns the DSN of the test primary.
func PGPrimary(t testing.TB) string { t.Helper(); return need(t, EnvPGPrimary) }

// PGReplica returns the DSN of the test streaming replica.
func PGReplica(t testing.TB) string { t.Helper(); return need(t, EnvPGReplica) }

// RedisAddr returns the address of the test Redis.
func RedisAddr(t testing.TB) string { t.Helper(); return need(t, EnvRedisAddr) }

// EtcdEndpoints returns the client endpoints (host:port) of the test etcd
// that scripts/testenv.sh starts.
func EtcdEndpoints(t testing.TB) []string {
	t.Helper()
	var eps []string
	for _, e := range strings.Split(need(t, EnvEtcdEndpoints), ",") {
		if e = strings.TrimSpace(e); e != "" {
			eps = append(eps, e)
		}
	}
	if len(eps) == 0 {
		t.Fatalf("%s holds no endpoint", EnvEtcdEndpoints)
	}
	return eps
}

// RepoRoot returns the repository's root directory.
func RepoRoot() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Clean(filepath.Join(filepath.Dir(file), "..", ".."))
}

// ReplicaCtl runs scripts/pg-replica-ctl.sh with action ("stop", "start" or
// "status") and fails the test when it fails. "start" returns once the
// replica streams again.
func ReplicaCtl(t testing.TB, action string) {
	t.Helper()
	need(t, EnvReplicaCluster)
	cmd := exec.Command("bash", filepath.Join(RepoRoot(), "scripts", "pg-replica-ctl.sh"), action)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("pg-replica-ctl.sh %s: %v\n%s", action, err, out)
	}
}
