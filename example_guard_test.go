package canary_test

import (
	"context"
	"fmt"
	"log"
	"net/http"
	"net/http/httptest"
	"strings"

	"github.com/go-chi/chi/v5"

	"github.com/reqcanary/canary"
	"github.com/reqcanary/canary/tenant"
)

// A service with the guard on and the operator's admin handler on an
// internal router. Here an operator turns the kill switch on by hand.
func ExampleAdminHandler() {
	eng, err := canary.New(canary.WithGuard(canary.GuardConfig{Enabled: true}))
	if err != nil {
		log.Fatal(err)
	}
	defer eng.Close()

	admin := chi.NewRouter()
	admin.Mount("/canary", canary.AdminHandler(eng, canary.WithAdminToken("s3cret")))

	post := func(token, body string) {
		req := httptest.NewRequest(http.MethodPost, "/canary", strings.NewReader(body))
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		rec := httptest.NewRecorder()
		admin.ServeHTTP(rec, req)
		fmt.Println(rec.Code)
	}
	post("", `{"action":"on"}`)       // no token
	post("s3cret", `{"action":"up"}`) // bad action
	post("s3cret", `{"action":"on","note":"bad deploy"}`)
	st := eng.Status()
	fmt.Println(st.KillSwitch.On, st.KillSwitch.Reason, st.KillSwitch.Sources)
	// Output:
	// 401
	// 400
	// 200
	// true kill-switch [operator]
}

// The guard configured in code; a plan file's guard section, when present,
// takes its place.
func ExampleWithGuard() {
	eng, err := canary.New(canary.WithGuard(canary.GuardConfig{
		Enabled:      true,
		FailureRatio: 3, // the canary must fail 3 × as often as stable
	}))
	if err != nil {
		log.Fatal(err)
	}
	defer eng.Close()
	// Fallbacks and shadow mismatches the adapters cannot see feed in too.
	eng.RecordOutcome(context.Background(), tenant.Canary, true, 0)
	g := eng.Status().Guard
	fmt.Println(g.Enabled, g.Source, g.Window, g.Canary.Requests, g.Canary.Failures)
	// Output:
	// true option 10s 1 1
}
