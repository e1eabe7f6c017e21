package testenv

import (
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"syscall"
	"testing"
	"time"
)

// PrivateEtcd is a single-member etcd of one test's own, on free ports and a
// temporary data dir, that the test may stop and start again: the shared
// etcd (EtcdEndpoints) must never be stopped, other packages' tests use it.
type PrivateEtcd struct {
	t                    testing.TB
	bin, dir, log        string
	clientPort, peerPort int
	cmd                  *exec.Cmd
	exited               chan struct{}
}

// StartPrivateEtcd starts a private etcd and stops it when the test ends. It
// needs the etcd binary that scripts/testenv.sh installs: without it the
// test skips, or fails under CI=true.
func StartPrivateEtcd(t testing.TB) *PrivateEtcd {
	t.Helper()
	bin, err := exec.LookPath("etcd")
	if err != nil {
		if InCI() {
			t.Fatalf("etcd is not installed (scripts/testenv.sh installs it): %v", err)
		}
		t.Skipf("etcd is not installed: run the tests with `make test`, or `bash scripts/testenv.sh` first")
	}
	dir := t.TempDir()
	e := &PrivateEtcd{t: t, bin: bin, dir: filepath.Join(dir, "data"), log: filepath.Join(dir, "etcd.log"),
		clientPort: freePort(t), peerPort: freePort(t)}
	t.Cleanup(e.Stop)
	e.Start()
	return e
}

// Endpoint is the client address, host:port.
func (e *PrivateEtcd) Endpoint() string { return "127.0.0.1:" + strconv.Itoa(e.clientPort) }

// Start starts the server (again, on the same ports and data) and waits
// until it is healthy.
func (e *PrivateEtcd) Start() {
	e.t.Helper()
	if e.cmd != nil {
		return
	}
	logf, err := os.OpenFile(e.log, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o600)
	if err != nil {
		e.t.Fatal(err)
	}
	curl := "http://" + e.Endpoint()
	purl := "http://127.0.0.1:" + strconv.Itoa(e.peerPort)
	cmd := exec.Command(e.bin, "--name", "private", "--data-dir", e.dir,
		"--listen-client-urls", curl, "--advertise-client-urls", curl,
		"--listen-peer-urls", purl, "--initial-advertise-peer-urls", purl,
		"--initial-cluster", "private="+purl, "--initial-cluster-state", "new")
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		logf.Close()
		e.t.Fatalf("starting etcd: %v", err)
	}
	e.cmd, e.exited = cmd, make(chan struct{})
	go func() { _ = cmd.Wait(); logf.Close(); close(e.exited) }()
	deadline := time.Now().Add(20 * time.Second)
	for {
		resp, err := http.Get(curl + "/health")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return
			}
		}
		select {
		case <-e.exited:
			log, _ := os.ReadFile(e.log)
			e.t.Fatalf("private etcd exited at start:\n%s", tail(log, 2000))
		default:
		}
		if time.Now().After(deadline) {
			e.t.Fatalf("private etcd not healthy within 20 s")
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// Stop stops the server (SIGTERM, then SIGKILL after 5 s) and waits for it.
func (e *PrivateEtcd) Stop() {
	if e.cmd == nil {
		return
	}
	_ = e.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-e.exited:
	case <-time.After(5 * time.Second):
		_ = e.cmd.Process.Kill()
		<-e.exited
	}
	e.cmd = nil
}

func freePort(t testing.TB) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

func tail(b []byte, n int) string {
	if len(b) > n {
		b = b[len(b)-n:]
	}
	return fmt.Sprintf("%s", b)
}
