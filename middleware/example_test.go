package middleware_test

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/netip"

	"github.com/go-chi/chi/v5"

	"github.com/reqcanary/canary/middleware"
	"github.com/reqcanary/canary/tenant"
)

// New works with any tenant.Decider; canary.Engine is the usual one. Here a
// decider sends tenant "acme" to canary.
func ExampleNew() {
	decider := tenant.DeciderFunc(func(_ context.Context, req tenant.Request) (tenant.Labels, error) {
		t, err := tenant.ReadTenant(req.Source, req.Wire)
		if err != nil {
			return tenant.Labels{}, err
		}
		l := tenant.Labels{Tenant: t, Bucket: tenant.NoBucket, Cohort: tenant.Stable, Reason: tenant.ReasonNoKey}
		if t == "acme" {
			l.Cohort, l.Reason = tenant.Canary, tenant.ReasonTenantCanary
		}
		return l, nil
	})

	r := chi.NewRouter()
	r.Use(middleware.New(decider, middleware.WithTrustedProxies(netip.MustParsePrefix("10.0.0.0/8"))))
	r.Get("/", func(w http.ResponseWriter, r *http.Request) {
		l, _ := tenant.FromContext(r.Context())
		fmt.Fprintf(w, "%s is %s (%s)", l.Tenant, l.Cohort, l.Reason)
	})

	for _, id := range []string{"acme", "globex", "not a tenant"} {
		req := httptest.NewRequest(http.MethodGet, "/", nil)
		req.Header.Set(tenant.HeaderTenant, id)
		rec := httptest.NewRecorder()
		r.ServeHTTP(rec, req)
		fmt.Println(rec.Code, rec.Header().Get(tenant.HeaderCohort), rec.Body.String())
	}
	// Output:
	// 200 canary acme is canary (tenant-canary)
	// 200 stable globex is stable (no-key)
	// 400  {"error":"X-Tenant-ID: byte 3 is not one of [A-Za-z0-9._:-]","field":"X-Tenant-ID"}
}
