package testenv

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// Environment variables that scripts/testenv.sh (testenv-prometheus.sh)
// prints.
const (
	EnvPrometheusURL     = "CANARY_PROMETHEUS_URL"     // http://host:port of the test Prometheus
	EnvPrometheusTargets = "CANARY_PROMETHEUS_TARGETS" // directory of its file_sd target files
)

// PrometheusURL returns the address of the test Prometheus, which scrapes
// every second the targets listed with [PrometheusTarget].
func PrometheusURL(t testing.TB) string { t.Helper(); return need(t, EnvPrometheusURL) }

// PrometheusTarget makes the test Prometheus scrape addr (host:port, path
// /metrics) with labels added to its series, until the test ends. Give a
// label of the test's own (e.g. test=<unique>) and select on it: other
// tests' targets are scraped by the same job. Prometheus picks a new target
// up within a few seconds.
func PrometheusTarget(t testing.TB, addr string, labels map[string]string) {
	t.Helper()
	dir := need(t, EnvPrometheusTargets)
	name := fmt.Sprintf("%s-%d-%d.json", strings.NewReplacer("/", "_", " ", "_").Replace(t.Name()), os.Getpid(), time.Now().UnixNano())
	b, err := json.Marshal([]map[string]any{{"targets": []string{addr}, "labels": labels}})
	if err != nil {
		t.Fatal(err)
	}
	// Written aside and renamed, so Prometheus never reads half a file.
	tmp := filepath.Join(dir, "."+name+".tmp")
	if err := os.WriteFile(tmp, b, 0o644); err != nil {
		t.Fatalf("write a Prometheus target file: %v", err)
	}
	path := filepath.Join(dir, name)
	if err := os.Rename(tmp, path); err != nil {
		t.Fatalf("write a Prometheus target file: %v", err)
	}
	t.Cleanup(func() { _ = os.Remove(path) })
}
