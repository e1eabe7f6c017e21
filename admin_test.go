package canary

import (
	"context"
	"encoding/json"
	"io"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/go-chi/chi/v5"

	"github.com/reqcanary/canary/tenant"
)

// adminCall sends method with body (and a bearer token when not empty) to h
// and returns the status and the decoded JSON body.
func adminCall(t *testing.T, h http.Handler, method, body, token string) (int, map[string]any) {
	t.Helper()
	req := httptest.NewRequest(method, "/admin/canary", strings.NewReader(body))
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	var m map[string]any
	if rec.Body.Len() > 0 {
		if err := json.Unmarshal(rec.Body.Bytes(), &m); err != nil {
			t.Fatalf("%s: body %q is not JSON: %v", method, rec.Body.String(), err)
		}
		if ct := rec.Header().Get("Content-Type"); ct != "application/json" {
			t.Fatalf("Content-Type %q", ct)
		}
	}
	return rec.Code, m
}

// path reads a nested value of a decoded JSON object, e.g. "kill_switch.on".
func path(m map[string]any, p string) any {
	var v any = m
	for _, k := range strings.Split(p, ".") {
		o, ok := v.(map[string]any)
		if !ok {
			return nil
		}
		v = o[k]
	}
	return v
}

func TestAdminHandlerGet(t *testing.T) {
	e := newTestEngine(t, "version: 9\ncanary_percent: 12.5\ntenants:\n  canary: [acme]\n", WithGuard(GuardConfig{Enabled: true}))
	e.RecordOutcome(context.Background(), tenant.Canary, true, 30*time.Millisecond)
	e.RecordOutcome(context.Background(), tenant.Canary, false, 10*time.Millisecond)
	code, m := adminCall(t, AdminHandler(e), http.MethodGet, "", "")
	if code != 200 {
		t.Fatalf("GET: %d %v", code, m)
	}
	for p, want := range map[string]any{
		"plan_version":              9.0,
		"plan.canary_percent":       12.5,
		"plan.override.header":      "X-Canary",
		"kill_switch.on":            false,
		"guard.enabled":             true,
		"guard.source":              "option",
		"guard.window":              "10s",
		"guard.config.bucket_width": "1s",
		"guard.canary.requests":     2.0,
		"guard.canary.failures":     1.0,
		"guard.canary.failure_rate": 0.5,
		"guard.stable.requests":     0.0,
		"untrusted_overrides":       0.0,
	} {
		if got := path(m, p); got != want {
			t.Errorf("%s = %v, want %v", p, got, want)
		}
	}
	if tl, _ := path(m, "plan.tenants.canary").([]any); len(tl) != 1 || tl[0] != "acme" {
		t.Errorf("plan.tenants.canary = %v", path(m, "plan.tenants.canary"))
	}
	if p95, _ := path(m, "guard.canary.p95_ms").(float64); p95 < 25 || p95 > 35 {
		t.Errorf("guard.canary.p95_ms = %v, want about 30", p95)
	}
	if _, ok := m["fleet"]; ok {
		t.Error("a fleet section without a fleet switch")
	}
}

func TestAdminHandlerPostErrors(t *testing.T) {
	e := newTestEngine(t, "canary_percent: 50\n")
	readOnly := AdminHandler(e)
	if code, m := adminCall(t, readOnly, http.MethodPost, `{"action":"on"}`, "anything"); code != 403 ||
		!strings.Contains(m["error"].(string), "read-only") {
		t.Fatalf("POST to a read-only handler: %d %v", code, m)
	}
	h := AdminHandler(e, WithAdminToken("s3cret-token"))
	for _, tc := range []struct {
		name, body, token string
		code              int
		field             string
	}{
		{"no token", `{"action":"on"}`, "", 401, "Authorization"},
		{"wrong token", `{"action":"on"}`, "s3cret-tokex", 401, "Authorization"},
		{"prefix of the token", `{"action":"on"}`, "s3cret", 401, "Authorization"},
		{"empty body", ``, "s3cret-token", 400, "body"},
		{"not JSON", `action=on`, "s3cret-token", 400, "body"},
		{"missing action", `{"note":"x"}`, "s3cret-token", 400, "action"},
		{"bad action", `{"action":"maybe"}`, "s3cret-token", 400, "action"},
		{"unknown field", `{"action":"on","force":true}`, "s3cret-token", 400, "force"},
		{"action not a string", `{"action":1}`, "s3cret-token", 400, "action"},
		{"long note", `{"action":"on","note":"` + strings.Repeat("n", 201) + `"}`, "s3cret-token", 400, "note"},
	} {
		code, m := adminCall(t, h, http.MethodPost, tc.body, tc.token)
		if code != tc.code || m["field"] != tc.field {
			t.Errorf("%s: %d %v, want %d naming %q", tc.name, code, m, tc.code, tc.field)
		}
	}
	if e.KillSwitch() {
		t.Fatal("a refused POST changed the kill switch")
	}
	if code, _ := adminCall(t, h, http.MethodDelete, "", "s3cret-token"); code != 405 {
		t.Fatalf("DELETE: %d", code)
	}
	code, m := adminCall(t, h, http.MethodPost, `{"action":"on","note":"bad deploy"}`, "s3cret-token")
	if code != 200 || path(m, "kill_switch.on") != true || path(m, "kill_switch.reason") != "kill-switch" {
		t.Fatalf("POST on: %d %v", code, m)
	}
	if code, m := adminCall(t, h, http.MethodPost, `{"action":"off"}`, "s3cret-token"); code != 200 || path(m, "kill_switch.on") != false {
		t.Fatalf("POST off: %d %v", code, m)
	}
	if code, _ := adminCall(t, AdminHandler(nil), http.MethodGet, "", ""); code != 500 {
		t.Fatalf("nil engine: %d", code)
	}
}

// TestGuardEndToEnd serves a chi router behind the engine's middleware over
// real HTTP. The canary handler fails 20 % of requests, stable 1 %; the guard
// (on a manual clock) trips, new requests are stable with reason guard, the
// admin handler shows it, and a POST rearm brings the canary back.
func TestGuardEndToEnd(t *testing.T) {
	e, clk := newGuardEngine(t, WithGuard(GuardConfig{Enabled: true}))
	rng := rand.New(rand.NewPCG(1, 2))
	r := chi.NewRouter()
	r.Use(e.Middleware)
	r.Get("/checkout", func(w http.ResponseWriter, r *http.Request) {
		l, _ := tenant.FromContext(r.Context())
		fail := 0.01
		if l.Cohort == tenant.Canary {
			fail = 0.20
		}
		w.Header().Set("X-Reason", l.Reason)
		if rng.Float64() < fail {
			http.Error(w, "boom", http.StatusServiceUnavailable)
			return
		}
		_, _ = io.WriteString(w, "ok")
	})
	r.Mount("/admin/canary", AdminHandler(e, WithAdminToken("tok")))
	srv := httptest.NewServer(r)
	defer srv.Close()

	send := func(user string) *http.Response {
		req, _ := http.NewRequest(http.MethodGet, srv.URL+"/checkout", nil)
		req.Header.Set("X-Tenant-ID", "shop")
		req.Header.Set("X-User-ID", user)
		resp, err := srv.Client().Do(req)
		if err != nil {
			t.Fatal(err)
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		return resp
	}
	// Sort users into cohorts once.
	var canaryUsers, stableUsers []string
	for i := 0; len(canaryUsers) < 20 || len(stableUsers) < 20; i++ {
		u := "u" + itoa(i)
		if decideUser(t, e, u).Cohort == tenant.Canary {
			canaryUsers = append(canaryUsers, u)
		} else {
			stableUsers = append(stableUsers, u)
		}
	}
	e.RearmGuard(context.Background()) // forget nothing but be explicit: an empty window
	tripped := -1
	for s := 1; s <= 10 && tripped < 0; s++ {
		for i := range 100 {
			send(stableUsers[i%len(stableUsers)])
		}
		for _, u := range canaryUsers {
			send(u)
		}
		clk.Advance(time.Second)
		e.evaluateGuard()
		if e.KillSwitch() {
			tripped = s
		}
	}
	if tripped < 0 || tripped > 5 {
		t.Fatalf("tripped at simulated second %d, want within 5", tripped)
	}
	if resp := send(canaryUsers[0]); resp.Header.Get("X-Canary-Cohort") != "stable" || resp.Header.Get("X-Reason") != "guard" {
		t.Fatalf("after the trip a canary user gets %s/%s", resp.Header.Get("X-Canary-Cohort"), resp.Header.Get("X-Reason"))
	}

	get := func() map[string]any {
		resp, err := srv.Client().Get(srv.URL + "/admin/canary")
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var m map[string]any
		if err := json.NewDecoder(resp.Body).Decode(&m); err != nil {
			t.Fatal(err)
		}
		return m
	}
	m := get()
	if path(m, "kill_switch.reason") != "guard" || path(m, "guard.tripped") != true ||
		path(m, "guard.trip.rule") != "failure-rate" {
		t.Fatalf("admin after the trip: %v", m)
	}
	if rate, _ := path(m, "guard.trip.canary.failure_rate").(float64); rate < 0.1 {
		t.Fatalf("trip canary failure rate %v", rate)
	}

	req, _ := http.NewRequest(http.MethodPost, srv.URL+"/admin/canary", strings.NewReader(`{"action":"rearm"}`))
	req.Header.Set("Authorization", "Bearer tok")
	resp, err := srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("POST rearm: %d", resp.StatusCode)
	}
	if resp := send(canaryUsers[0]); resp.Header.Get("X-Canary-Cohort") != "canary" {
		t.Fatalf("after re-arming a canary user gets %s", resp.Header.Get("X-Canary-Cohort"))
	}
	if m := get(); path(m, "kill_switch.on") != false || path(m, "guard.tripped") != false {
		t.Fatalf("admin after re-arming: %v", m)
	}
}
