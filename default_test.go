package canary

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"testing"
	"time"

	"github.com/reqcanary/canary/tenant"
)

func envOf(kv map[string]string) func(string) string {
	return func(k string) string { return kv[k] }
}

// TestDefaultEngineBadPlanFile: a bad CANARY_PLAN does not panic or fail
// requests; everyone is stable, PlanError reports it, and fixing the file
// takes effect.
func TestDefaultEngineBadPlanFile(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "plan.yaml")
	writeFile(t, path, "version: 9\ncanary_percent: 100\ntenants:\n  canary: [acme]\nbogus: 1\n")
	e := newDefault(envOf(map[string]string{EnvPlan: path}))
	defer e.Close()

	var pe *PlanError
	if err := e.PlanError(); !errors.As(err, &pe) || pe.Key != "bogus" || pe.Line != 5 {
		t.Fatalf("PlanError() = %v, want the unknown key bogus on line 5", err)
	}
	h := e.Middleware(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}))
	for _, hdr := range []http.Header{
		headers("X-Tenant-ID", "acme"),
		headers("X-Tenant-ID", "acme", "X-User-ID", "u1"),
		headers("X-Canary", "canary"),
	} {
		req := httptest.NewRequest("GET", "/", nil)
		req.Header = hdr
		req.RemoteAddr = "127.0.0.1:4000"
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		if rec.Code != http.StatusOK || rec.Header().Get("X-Canary-Cohort") != "stable" {
			t.Fatalf("with a bad plan, %v got %d %q, want 200 stable", hdr, rec.Code, rec.Header().Get("X-Canary-Cohort"))
		}
	}
	// Told apart from a 0 % plan: its own reason, and Status says so.
	if l := acmeCohort(t, e); l.Cohort != tenant.Stable || l.Reason != tenant.ReasonPlanError {
		t.Fatalf("with a bad plan: %+v, want stable with reason %s", l, tenant.ReasonPlanError)
	}
	if st := e.Status(); !st.PlanUnusable || st.PlanError == "" {
		t.Fatalf("Status with a bad plan: unusable %v, error %q", st.PlanUnusable, st.PlanError)
	}

	writeFile(t, path, "version: 9\ncanary_percent: 100\ntenants:\n  canary: [acme]\n")
	eventually(t, time.Second, "the fixed file is in force", func() bool { return e.PlanError() == nil && e.Plan().Version == 9 })
	if l := acmeCohort(t, e); l.Cohort != tenant.Canary || l.Reason != tenant.ReasonTenantCanary {
		t.Fatalf("after the fix: %+v", l)
	}
	if e.Status().PlanUnusable {
		t.Fatal("Status still says the plan is unusable after the fix")
	}
}

func TestDefaultEngineMissingPlanFileAndShortKey(t *testing.T) {
	t.Parallel()
	e := newDefault(envOf(map[string]string{
		EnvPlan:        filepath.Join(t.TempDir(), "absent.yaml"),
		EnvUserHashKey: "short",
	}))
	defer e.Close()
	if e.PlanError() == nil {
		t.Fatal("PlanError() = nil for a missing CANARY_PLAN file")
	}
	l, err := e.Decide(context.Background(), tenant.Request{Source: headers("X-Tenant-ID", "acme", "X-User-ID", "u"), Wire: tenant.HTTP})
	if err != nil || l.Cohort != tenant.Stable || len(l.UserHash) != 32 {
		t.Fatalf("Decide = %+v, %v", l, err)
	}
}

func TestDefaultEngineWithoutPlan(t *testing.T) {
	t.Parallel()
	e := newDefault(envOf(nil))
	defer e.Close()
	if e.PlanError() != nil || e.Plan().CanaryPercent != 0 || len(e.Plan().Override.TrustedCIDRs) != 2 {
		t.Fatalf("default engine without CANARY_PLAN: plan %+v, error %v", e.Plan(), e.PlanError())
	}
	if Default() != Default() {
		t.Fatal("Default() returns different engines")
	}
}
