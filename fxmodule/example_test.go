package fxmodule_test

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"

	"github.com/go-chi/chi/v5"
	"go.uber.org/fx"

	"github.com/reqcanary/canary"
	"github.com/reqcanary/canary/fxmodule"
	"github.com/reqcanary/canary/tenant"
)

// An fx application that labels its chi routes: the module provides the
// engine and its middleware (named "canary") from the supplied Config.
func ExampleModule() {
	plan, _ := canary.ParsePlan([]byte("tenants:\n  canary: [acme]\n"))

	var router http.Handler
	app := fx.New(
		fx.NopLogger,
		fxmodule.Module,
		fx.Supply(fxmodule.Config{Plan: &plan}),
		fx.Invoke(fx.Annotate(func(mw func(http.Handler) http.Handler) {
			r := chi.NewRouter()
			r.Use(mw)
			r.Get("/", func(w http.ResponseWriter, r *http.Request) {
				l, _ := tenant.FromContext(r.Context())
				fmt.Fprintln(w, l.Tenant, l.Cohort, l.Reason)
			})
			router = r
		}, fx.ParamTags(`name:"canary"`))),
	)
	if err := app.Start(context.Background()); err != nil {
		fmt.Println(err)
		return
	}
	defer app.Stop(context.Background())

	for _, t := range []string{"acme", "globex"} {
		req := httptest.NewRequest("GET", "/", nil)
		req.Header.Set(tenant.HeaderTenant, t)
		rec := httptest.NewRecorder()
		router.ServeHTTP(rec, req)
		fmt.Print(rec.Body.String())
	}
	// Output:
	// acme canary tenant-canary
	// globex stable percent
}
