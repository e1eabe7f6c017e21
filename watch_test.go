package canary

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/reqcanary/canary/tenant"
)

// syncBuffer is a goroutine-safe log sink.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func writeFile(t *testing.T, path, content string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

// eventually polls cond for up to limit, which is the behaviour's promise
// (not a performance measurement): a plan edit takes effect within a second.
func eventually(t *testing.T, limit time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(limit)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("not within %v: %s", limit, what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func acmeCohort(t *testing.T, e *Engine) tenant.Labels {
	t.Helper()
	l, err := e.Decide(context.Background(), tenant.Request{Source: headers("X-Tenant-ID", "acme"), Wire: tenant.HTTP})
	if err != nil {
		t.Fatal(err)
	}
	return l
}

func TestPlanFileReload(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	path := filepath.Join(dir, "plan.yaml")
	writeFile(t, path, "version: 1\ntenants:\n  stable: [acme]\n")
	logs := &syncBuffer{}
	e, err := New(WithPlanFile(path), WithLogger(slog.New(slog.NewTextHandler(logs, nil))))
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	if l := acmeCohort(t, e); l.Cohort != tenant.Stable || l.PlanVersion != 1 {
		t.Fatalf("initial plan: %+v", l)
	}

	// A valid edit takes effect within a second.
	writeFile(t, path, "version: 2\ntenants:\n  canary: [acme]\n")
	eventually(t, time.Second, "version 2 in force", func() bool { return acmeCohort(t, e).PlanVersion == 2 })
	if l := acmeCohort(t, e); l.Cohort != tenant.Canary || l.Reason != tenant.ReasonTenantCanary {
		t.Fatalf("after edit: %+v", l)
	}

	// An invalid edit keeps the last good plan and is reported, with key
	// and line, by PlanError and the log.
	writeFile(t, path, "version: 3\ncanary_percent: 250\n")
	// The watcher may catch the file half-written (os.WriteFile truncates
	// first) and report that for one poll; wait for the edit's own error.
	var pe *PlanError
	eventually(t, time.Second, "PlanError reports the bad edit", func() bool {
		return errors.As(e.PlanError(), &pe) && pe.Key == "canary_percent"
	})
	if err := e.PlanError(); pe.Line != 2 || !strings.Contains(err.Error(), path) {
		t.Fatalf("PlanError() = %v, want a *PlanError for canary_percent on line 2 naming the file", err)
	}
	if l := acmeCohort(t, e); l.PlanVersion != 2 || l.Cohort != tenant.Canary {
		t.Fatalf("the bad edit replaced the plan: %+v", l)
	}
	eventually(t, time.Second, "the bad edit is logged", func() bool { return strings.Contains(logs.String(), "between 0 and 100") })
	time.Sleep(3 * DefaultPlanPollInterval)
	if n := strings.Count(logs.String(), "between 0 and 100"); n != 1 {
		t.Errorf("the same bad file was logged %d times, want once:\n%s", n, logs)
	}

	// Fixing the file clears the error.
	writeFile(t, path, "version: 4\ncanary_percent: 100\n")
	eventually(t, time.Second, "version 4 in force", func() bool { return acmeCohort(t, e).PlanVersion == 4 })
	if err := e.PlanError(); err != nil {
		t.Fatalf("PlanError() = %v after a good edit", err)
	}
	if l := acmeCohort(t, e); l.Cohort != tenant.Canary || l.Reason != tenant.ReasonPercent {
		t.Fatalf("version 4: %+v", l)
	}
}

// TestPlanFileRenameOnSave replaces the file the way editors and Kubernetes
// do: write a new file and rename it over the old one.
func TestPlanFileRenameOnSave(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	path := filepath.Join(dir, "plan.yaml")
	writeFile(t, path, "version: 1\n")
	e, err := New(WithPlanFile(path), WithLogger(slog.New(slog.DiscardHandler)))
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	tmp := filepath.Join(dir, ".plan.yaml.swp")
	writeFile(t, tmp, "version: 2\n")
	if err := os.Rename(tmp, path); err != nil {
		t.Fatal(err)
	}
	eventually(t, time.Second, "renamed file in force", func() bool { return e.Plan().Version == 2 })

	// A removed file keeps the plan and is reported; restoring the same
	// content clears the report.
	if err := os.Remove(path); err != nil {
		t.Fatal(err)
	}
	eventually(t, time.Second, "removal reported", func() bool { return errors.Is(e.PlanError(), os.ErrNotExist) })
	if e.Plan().Version != 2 {
		t.Fatalf("removing the file changed the plan: %+v", e.Plan())
	}
	writeFile(t, path, "version: 2\n")
	eventually(t, time.Second, "restored file clears PlanError", func() bool { return e.PlanError() == nil })
}

func TestPlanFileBadAtStartFailsNew(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	path := filepath.Join(dir, "plan.yaml")
	writeFile(t, path, "version: 1\ntenants:\n  canary: [ok, 'not ok']\n")
	_, err := New(WithPlanFile(path))
	var pe *PlanError
	if !errors.As(err, &pe) || pe.Key != "tenants.canary[1]" || pe.Line != 3 || pe.File != path ||
		err.Error() != "canary: plan file "+path+": line 3: tenants.canary[1]: tenant id \"not ok\" is invalid: byte 3 is not one of [A-Za-z0-9._:-]" {
		t.Fatalf("New = %v, want a *PlanError for tenants.canary[1] line 3 naming the file once", err)
	}
	// Several problems: each names the file once.
	writeFile(t, path, "version: -1\ncanary_percent: 300\n")
	_, err = New(WithPlanFile(path))
	if msg := err.Error(); strings.Count(msg, "canary: plan file "+path+": line ") != 2 || strings.Contains(msg, "canary: plan:") {
		t.Fatalf("New with two problems = %q, want each naming the file once", msg)
	}
	// An IPv6 address unquoted in a [ ] list gets a hint, not only YAML's message.
	writeFile(t, path, "override:\n  trusted_cidrs: [127.0.0.0/8, ::1/128]\n")
	if _, err = New(WithPlanFile(path)); !errors.As(err, &pe) || pe.Line != 2 || !strings.Contains(err.Error(), "must be quoted in a [ ] list: ['::1/128']") {
		t.Fatalf("New with an unquoted IPv6 CIDR = %v, want line 2 and the hint to quote it", err)
	}
	if _, err := New(WithPlanFile(filepath.Join(dir, "missing.yaml"))); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("New with a missing file = %v, want os.ErrNotExist", err)
	}
	big := filepath.Join(dir, "big.yaml")
	writeFile(t, big, "# "+strings.Repeat("x", MaxPlanFileSize)+"\n")
	if _, err := New(WithPlanFile(big)); err == nil || !strings.Contains(err.Error(), "larger than") {
		t.Fatalf("New with an oversized file = %v", err)
	}
}

func TestPollIntervalOption(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	path := filepath.Join(dir, "plan.yaml")
	writeFile(t, path, "version: 1\n")
	e, err := New(WithPlanFile(path), WithPlanPollInterval(time.Hour), WithLogger(slog.New(slog.DiscardHandler)))
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	writeFile(t, path, "version: 2\n")
	time.Sleep(4 * DefaultPlanPollInterval)
	if v := e.Plan().Version; v != 1 {
		t.Fatalf("with an hourly poll the edit was applied (version %d)", v)
	}
}
