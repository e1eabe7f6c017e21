package canary_test

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"

	"github.com/reqcanary/canary"
	"github.com/reqcanary/canary/tenant"
)

// An application with a start phase (go.uber.org/fx, or a main that builds
// everything before serving) makes the engine with WithDeferredStart: the
// engine decides with its plan file at once, but watches the file only once
// Start is called, so an application that fails to build can drop it
// without leaking its watcher.
func ExampleWithDeferredStart() {
	dir, err := os.MkdirTemp("", "canary-example")
	if err != nil {
		fmt.Println(err)
		return
	}
	defer os.RemoveAll(dir)
	planFile := filepath.Join(dir, "plan.yaml")
	if err := os.WriteFile(planFile, []byte("tenants:\n  canary: [acme]\n"), 0o644); err != nil {
		fmt.Println(err)
		return
	}

	eng, err := canary.New(canary.WithPlanFile(planFile), canary.WithDeferredStart())
	if err != nil {
		fmt.Println(err)
		return
	}
	// ... build the rest of the application; on failure, return: nothing
	// of the engine's runs yet.

	if err := eng.Start(context.Background()); err != nil {
		fmt.Println(err)
		return
	}
	defer eng.Close()
	fmt.Println("second Start:", eng.Start(context.Background())) // idempotent

	h := eng.Middleware(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		l, _ := tenant.FromContext(r.Context())
		fmt.Println(l.Tenant, l.Cohort, l.Reason)
	}))
	req := httptest.NewRequest(http.MethodGet, "/", nil)
	req.Header.Set(tenant.HeaderTenant, "acme")
	h.ServeHTTP(httptest.NewRecorder(), req)
	// Output:
	// second Start: <nil>
	// acme canary tenant-canary
}
