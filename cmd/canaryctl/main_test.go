package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"

	"github.com/reqcanary/canary/internal/testenv"
)

var bin string

// TestMain builds canaryctl once: the tests run the binary, as operators do.
func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "canaryctl-test")
	if err != nil {
		panic(err)
	}
	bin = filepath.Join(dir, "canaryctl")
	if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "go build: %v\n%s", err, out)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

type result struct {
	code           int
	stdout, stderr string
}

func ctl(t testing.TB, env []string, args ...string) result {
	t.Helper()
	cmd := exec.Command(bin, args...)
	cmd.Env = append(os.Environ(), env...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	var ee *exec.ExitError
	code := 0
	if errors.As(err, &ee) {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	return result{code, out.String(), errb.String()}
}

func writeFile(t *testing.T, name, s string) string {
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, []byte(s), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestCanaryctlPlanCommands(t *testing.T) {
	env := []string{"CANARY_ETCD_ENDPOINTS=" + strings.Join(testenv.EtcdEndpoints(t), ","), "USER=alice"}
	key := fmt.Sprintf("/canary-test/canaryctl-%d-%d/", os.Getpid(), time.Now().UnixNano())
	pfx := "--prefix=" + key
	cli, err := clientv3.New(clientv3.Config{Endpoints: testenv.EtcdEndpoints(t), DialTimeout: 3 * time.Second, Logger: zap.NewNop()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_, _ = cli.Delete(ctx, key, clientv3.WithPrefix())
		_ = cli.Close()
	})
	p5 := writeFile(t, "p5.yaml", "salt: s\ncanary_percent: 5\n")
	p25 := writeFile(t, "p25.yaml", "salt: s\ncanary_percent: 25\n")
	bad := writeFile(t, "bad.yaml", "salt: s\ncanary_percent: 250\n")

	if r := ctl(t, env, pfx, "plan", "apply", "-f", p5, "--expect-version", "0", "--note", "first"); r.code != 0 || !strings.Contains(r.stdout, "applied version 1") {
		t.Fatalf("apply: %+v", r)
	}
	r := ctl(t, env, pfx, "plan", "apply", "-f", p25, "--expect-version", "0")
	if r.code != exitConflict || !strings.Contains(r.stderr, "expected version 0") || !strings.Contains(r.stderr, "current version is 1") {
		t.Fatalf("conflicting apply: %+v, want exit %d naming both versions", r, exitConflict)
	}
	r = ctl(t, env, pfx, "plan", "apply", "-f", bad)
	if r.code != exitInvalid || !strings.Contains(r.stderr, "line 2") || !strings.Contains(r.stderr, "canary_percent") {
		t.Fatalf("invalid apply: %+v, want exit %d with the line-numbered message", r, exitInvalid)
	}
	if r := ctl(t, env, pfx, "plan", "apply", "-f", p25, "--expect-version", "1"); r.code != 0 {
		t.Fatalf("apply v2: %+v", r)
	}
	r = ctl(t, env, pfx, "--output", "json", "plan", "get")
	var got struct {
		Version int64
		Plan    string
		Author  string
	}
	if r.code != 0 || json.Unmarshal([]byte(r.stdout), &got) != nil || got.Version != 2 || !strings.Contains(got.Plan, "25") || got.Author != "alice" {
		t.Fatalf("get --output json: %+v (%+v)", r, got)
	}
	if r := ctl(t, env, pfx, "plan", "get"); r.code != 0 || r.stdout != "salt: s\ncanary_percent: 25\n" || !strings.Contains(r.stderr, "version 2 by alice") {
		t.Fatalf("get: %+v, want the plan alone on stdout, its version and author on stderr", r)
	}
	if r := ctl(t, env, pfx, "plan", "diff", "1", "2"); r.code != 0 || r.stdout != "@@ -2,1 +2,1 @@\n-canary_percent: 5\n+canary_percent: 25\n" {
		t.Fatalf("diff 1 2: %+v", r)
	}
	if r := ctl(t, env, pfx, "plan", "rollback", "--note", "errors"); r.code != 0 || !strings.Contains(r.stdout, "version 1 as version 3") {
		t.Fatalf("rollback: %+v", r)
	}
	r = ctl(t, env, pfx, "--output", "json", "plan", "history")
	var h []struct {
		Version      int64  `json:"version"`
		Action       string `json:"action"`
		Note         string `json:"note"`
		RolledBackTo int64  `json:"rolled_back_to"`
	}
	if r.code != 0 || json.Unmarshal([]byte(r.stdout), &h) != nil || len(h) != 3 || h[0].Version != 3 || h[0].Action != "rollback" || h[0].Note != "errors" || h[0].RolledBackTo != 1 {
		t.Fatalf("history: %+v (%+v)", r, h)
	}
	if r := ctl(t, env, pfx, "plan", "rollback", "--to", "42"); r.code != exitNotFound {
		t.Fatalf("rollback to an unknown version: %+v, want exit %d", r, exitNotFound)
	}
	if r := ctl(t, env, pfx, "plan", "frobnicate"); r.code != exitUsage {
		t.Fatalf("unknown command: %+v, want exit %d", r, exitUsage)
	}
	// Unreachable store: a proxy that closes every connection.
	proxy := testenv.NewFaultProxy(t, testenv.EtcdEndpoints(t)[0])
	proxy.Set(testenv.ProxyCut)
	r = ctl(t, env, pfx, "--etcd", proxy.Addr(), "--timeout", "500ms", "plan", "get")
	if r.code != exitUnreachable || !strings.Contains(r.stderr, "unavailable") {
		t.Fatalf("unreachable: %+v, want exit %d", r, exitUnreachable)
	}
}

// TestCanaryctlInputChecks: a --server URL with credentials or a query, a
// note with a terminal escape, and a proxy's non-JSON 502 get their own
// exit codes before or after the call.
func TestCanaryctlInputChecks(t *testing.T) {
	if r := ctl(t, nil, "--server", "http://u:pw@127.0.0.1:1/admin", "status"); r.code != exitUsage || strings.Contains(r.stderr, "pw") {
		t.Fatalf("credentials in --server: %+v", r)
	}
	if r := ctl(t, nil, "--server", "http://127.0.0.1:1/admin?x=1", "status"); r.code != exitUsage {
		t.Fatalf("query in --server: %+v", r)
	}
	if r := ctl(t, []string{"CANARY_ETCD_ENDPOINTS=127.0.0.1:1"}, "plan", "rollback", "--note", "a\u009b31mb"); r.code != exitUsage || !strings.Contains(r.stderr, "--note") {
		t.Fatalf("note with a C1 control: %+v", r)
	}
	proxy := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		http.Error(w, "<html>bad gateway</html>", http.StatusBadGateway)
	}))
	defer proxy.Close()
	if r := ctl(t, []string{"CANARY_ADMIN_URL=" + proxy.URL}, "status"); r.code != exitUnreachable {
		t.Fatalf("a proxy's 502: %+v, want exit %d", r, exitUnreachable)
	}
}
