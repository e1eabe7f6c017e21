package canary

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/reqcanary/canary/planstore"
	"github.com/reqcanary/canary/tenant"
)

// adminDo sends method path with body (and the token when not empty) to h
// and returns the status and the decoded JSON (an object or an array).
func adminDo(t *testing.T, h http.Handler, method, path, body, token string) (int, any) {
	t.Helper()
	req := httptest.NewRequest(method, path, strings.NewReader(body))
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	var v any
	if err := json.Unmarshal(rec.Body.Bytes(), &v); err != nil {
		t.Fatalf("%s %s: body %q is not JSON: %v", method, path, rec.Body.String(), err)
	}
	return rec.Code, v
}

func obj(t *testing.T, v any) map[string]any {
	t.Helper()
	m, ok := v.(map[string]any)
	if !ok {
		t.Fatalf("not a JSON object: %v", v)
	}
	return m
}

func applyBody(plan string, expect int64, note string) string {
	b, _ := json.Marshal(map[string]any{"plan": plan, "expect_version": expect, "note": note, "author": "ana"})
	return string(b)
}

// TestAdminPlanAPI drives every plan route of the admin handler against a
// real etcd store, mounted under a prefix as an application would.
func TestAdminPlanAPI(t *testing.T) {
	const tok = "plan-admin-token"
	s := testStore(t, storePrefix(t), ValidatePlan)
	logs := &recordingLogs{}
	e := storeEngine(t, s, WithUserHashKey(testHashKey), WithLoggerProvider(logs))
	if err := e.Start(t.Context()); err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	mux.Handle("/admin/canary/", AdminHandler(e, WithAdminToken(tok)))
	const base = "/admin/canary"

	// Apply the first plan (expect 0: the store is empty).
	code, v := adminDo(t, mux, http.MethodPost, base+"/plan/apply", applyBody(string(storePlan(10)), 0, "ten"), tok)
	if m := obj(t, v); code != 200 || m["version"] != 1.0 || m["author"] != "ana" || m["note"] != "ten" || m["action"] != "apply" {
		t.Fatalf("apply: %d %v", code, v)
	}
	waitPercent(t, 10, 2*time.Second, e)

	// GET the plan: the store's text and what this engine has in force.
	code, v = adminDo(t, mux, http.MethodGet, base+"/plan", "", tok)
	m := obj(t, v)
	if code != 200 || m["version"] != 1.0 || m["plan"] != string(storePlan(10)) || path(m, "in_force.version") != 1.0 ||
		path(m, "in_force.source") != PlanSourceStore {
		t.Fatalf("get: %d %v", code, v)
	}

	// A write based on an old version is refused, naming both versions.
	adminDo(t, mux, http.MethodPost, base+"/plan/apply", applyBody(string(storePlan(20)), 1, "twenty"), tok)
	code, v = adminDo(t, mux, http.MethodPost, base+"/plan/apply", applyBody(string(storePlan(30)), 1, "stale"), tok)
	m = obj(t, v)
	if code != http.StatusConflict || m["code"] != AdminCodeVersionConflict || m["expected_version"] != 1.0 ||
		m["current_version"] != 2.0 || !strings.Contains(m["error"].(string), "1") {
		t.Fatalf("stale apply: %d %v", code, v)
	}

	// An invalid plan never reaches the store; the message has the line.
	code, v = adminDo(t, mux, http.MethodPost, base+"/plan/apply", applyBody("salt: x\ncanary_percent: 140\n", 2, "bad"), tok)
	m = obj(t, v)
	if code != http.StatusUnprocessableEntity || m["code"] != AdminCodeInvalidPlan || m["field"] != "plan" ||
		!strings.Contains(m["error"].(string), "line 2") || !strings.Contains(m["error"].(string), "canary_percent") {
		t.Fatalf("invalid apply: %d %v", code, v)
	}
	if _, v = adminDo(t, mux, http.MethodGet, base+"/plan", "", tok); obj(t, v)["version"] != 2.0 {
		t.Fatalf("the invalid plan changed the store: %v", v)
	}

	// History, newest first, with author, note and diff; limit.
	code, v = adminDo(t, mux, http.MethodGet, base+"/plan/history?limit=1", "", tok)
	h, _ := v.([]any)
	if code != 200 || len(h) != 1 || obj(t, h[0])["version"] != 2.0 || obj(t, h[0])["note"] != "twenty" ||
		!strings.Contains(obj(t, h[0])["diff"].(string), "+canary_percent: 20") {
		t.Fatalf("history: %d %v", code, v)
	}
	code, v = adminDo(t, mux, http.MethodGet, base+"/plan/diff?from=1&to=2", "", tok)
	if m = obj(t, v); code != 200 || !strings.Contains(m["diff"].(string), "-canary_percent: 10") ||
		!strings.Contains(m["diff"].(string), "+canary_percent: 20") {
		t.Fatalf("diff: %d %v", code, v)
	}
	code, v = adminDo(t, mux, http.MethodGet, base+"/plan/diff?from=1&to=99", "", tok)
	if m = obj(t, v); code != 404 || m["code"] != AdminCodeVersionNotFound {
		t.Fatalf("diff to a missing version: %d %v", code, v)
	}

	// Rollback to the previous version; the engine runs it.
	code, v = adminDo(t, mux, http.MethodPost, base+"/plan/rollback", `{"note":"too much","author":"bo"}`, tok)
	if m = obj(t, v); code != 200 || m["version"] != 3.0 || m["rolled_back_to"] != 1.0 || m["action"] != "rollback" {
		t.Fatalf("rollback: %d %v", code, v)
	}
	waitPercent(t, 10, 2*time.Second, e)
	code, v = adminDo(t, mux, http.MethodPost, base+"/plan/rollback", `{"to":77}`, tok)
	if m = obj(t, v); code != 404 || m["code"] != AdminCodeVersionNotFound {
		t.Fatalf("rollback to a missing version: %d %v", code, v)
	}

	// Every write, done or refused, left an audit record.
	var audits []string
	for _, r := range logs.records() {
		if r.EventName() != EventPlanChange {
			continue
		}
		a := map[string]string{}
		r.WalkAttributes(func(kv attributeKV) bool { a[string(kv.Key)] = kv.Value.Emit(); return true })
		audits = append(audits, fmt.Sprintf("%s %s %s %s->%s", a["canary.admin.action"], a["canary.admin.outcome"],
			a["canary.admin.author"], a["canary.plan.from_version"], a["canary.plan.to_version"]))
	}
	want := []string{"plan.apply done ana 0->1", "plan.apply done ana 1->2", "plan.apply version_conflict ana ->",
		"plan.apply invalid_plan ana ->", "plan.rollback done bo 2->3", "plan.rollback version_not_found admin-api ->"}
	if strings.Join(audits, "\n") != strings.Join(want, "\n") {
		t.Fatalf("audit records:\n%s\nwant:\n%s", strings.Join(audits, "\n"), strings.Join(want, "\n"))
	}
}

// TestAdminPlanAPIRefusals: tokens, methods, bodies and an engine without a
// store, each answered with a JSON error naming what is wrong.
func TestAdminPlanAPIRefusals(t *testing.T) {
	const tok = "refusal-token"
	s := testStore(t, storePrefix(t), ValidatePlan)
	e := storeEngine(t, s, WithUserHashKey(testHashKey))
	h := AdminHandler(e, WithAdminToken(tok))
	fileEngine := newTestEngine(t, "canary_percent: 5\n")

	cases := []struct {
		name, method, path, body, token string
		h                               http.Handler
		code                            int
		errCode, field, msg             string
	}{
		{"no token", "GET", "/plan", "", "", h, 401, AdminCodeUnauthorized, "Authorization", "bearer token"},
		{"wrong token", "POST", "/plan/apply", applyBody("salt: a\n", 0, ""), "nope", h, 401, AdminCodeUnauthorized, "Authorization", ""},
		{"read-only handler", "GET", "/plan/history", "", tok, AdminHandler(e), 403, AdminCodeReadOnly, "", "read-only"},
		{"explain needs the token", "GET", "/explain?user=u1", "", "", h, 401, AdminCodeUnauthorized, "", ""},
		{"GET on apply", "GET", "/plan/apply", "", tok, h, 405, AdminCodeBadRequest, "", "use POST"},
		{"POST on plan", "POST", "/plan", "{}", tok, h, 405, AdminCodeBadRequest, "", "use GET"},
		{"no plan", "POST", "/plan/apply", `{"note":"x"}`, tok, h, 400, AdminCodeBadRequest, "plan", "plan: required"},
		{"negative expect", "POST", "/plan/apply", `{"plan":"salt: a\n","expect_version":-3}`, tok, h, 400, AdminCodeBadRequest, "expect_version", ">= 0"},
		{"expect as text", "POST", "/plan/apply", `{"plan":"salt: a\n","expect_version":"3"}`, tok, h, 400, AdminCodeBadRequest, "expect_version", "whole number"},
		{"unknown field", "POST", "/plan/apply", `{"plan":"salt: a\n","percent":3}`, tok, h, 400, AdminCodeBadRequest, "percent", "known fields: plan, expect_version, note, author"},
		{"repeated key", "POST", "/plan/apply", `{"plan":"salt: a\n","plan":"salt: b\n"}`, tok, h, 400, AdminCodeBadRequest, "plan", "duplicate key"},
		{"note with control", "POST", "/plan/rollback", `{"note":"a\u001b[31mb"}`, tok, h, 400, AdminCodeBadRequest, "note", "control or format character"},
		{"author too long", "POST", "/plan/rollback", `{"author":"` + strings.Repeat("a", 101) + `"}`, tok, h, 400, AdminCodeBadRequest, "author", "longer than 100"},
		{"negative to", "POST", "/plan/rollback", `{"to":-1}`, tok, h, 400, AdminCodeBadRequest, "to", ">= 1"},
		{"bad limit", "GET", "/plan/history?limit=x", "", tok, h, 400, AdminCodeBadRequest, "limit", "whole number"},
		{"diff without to", "GET", "/plan/diff?from=1", "", tok, h, 400, AdminCodeBadRequest, "to", "required"},
		{"no store", "GET", "/plan", "", tok, AdminHandler(fileEngine, WithAdminToken(tok)), 404, AdminCodeNoPlanStore, "", "WithPlanStore"},
		{"explain bad tenant", "GET", "/explain?tenant=a%20b", "", tok, h, 400, AdminCodeBadRequest, "tenant", "tenant: byte 1"},
		{"explain unknown param", "GET", "/explain?tenant=a&userid=b", "", tok, h, 400, AdminCodeBadRequest, "userid", "known: tenant, user"},
		{"explain nothing", "GET", "/explain", "", tok, h, 400, AdminCodeBadRequest, "tenant", "give a tenant"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			code, v := adminDo(t, c.h, c.method, c.path, c.body, c.token)
			m := obj(t, v)
			if code != c.code || m["code"] != c.errCode || (c.field != "" && m["field"] != c.field) ||
				!strings.Contains(fmt.Sprint(m["error"]), c.msg) {
				t.Fatalf("%d %v; want %d code %s field %q error containing %q", code, m, c.code, c.errCode, c.field, c.msg)
			}
		})
	}
	if p, err := s.Get(t.Context()); err != nil || p.Version != 0 {
		t.Fatalf("a refused request wrote to the store: %+v %v", p, err)
	}
}

// TestExplain checks the explanation against the decision the middleware
// makes for the same tenant and user.
func TestExplain(t *testing.T) {
	e := newTestEngine(t, "version: 4\nsalt: ex\ncanary_percent: 50\ntenants:\n  canary: [acme]\n  stable: [bank]\n")
	h := AdminHandler(e, WithAdminToken("x"))
	for i := range 40 {
		u := fmt.Sprintf("user-%d", i)
		for _, tn := range []string{"", "acme", "bank", "shop"} {
			hdr := headers("X-User-ID", u)
			if tn != "" {
				hdr = headers("X-Tenant-ID", tn, "X-User-ID", u)
			}
			want, err := e.Decide(t.Context(), tenant.Request{Source: hdr, Wire: tenant.HTTP})
			if err != nil {
				t.Fatal(err)
			}
			x, err := e.Explain(tn, u)
			if err != nil {
				t.Fatal(err)
			}
			if x.Cohort != want.Cohort || x.Reason != want.Reason || x.Bucket != want.Bucket || x.UserHash != want.UserHash ||
				x.PlanVersion != 4 || x.CanaryBelow != 5000 {
				t.Fatalf("Explain(%q, %q) = %+v; Decide gave %+v", tn, u, x, want)
			}
		}
	}
	e.SetKillSwitch(true)
	code, v := adminDo(t, h, http.MethodGet, "/explain?tenant=acme&user=u", "", "x")
	if m := obj(t, v); code != 200 || m["cohort"] != "stable" || m["reason"] != tenant.ReasonKillSwitch ||
		m["plan_cohort"] != "canary" || m["plan_reason"] != tenant.ReasonTenantCanary || m["kill_switch"] != true {
		t.Fatalf("explain with the kill switch on: %d %v", code, v)
	}
}

func TestRampRoute(t *testing.T) {
	for path, want := range map[string]string{
		"/admin/canary/ramp": "status", "/ramp/": "status", "/x/ramp/start": "start", "/ramp/promote/": "promote",
		"/ramp/bogus": "", "/ramp/start/x": "", "/plan": "", "/": "", "/rampage": "",
	} {
		if got := rampRoute(path); got != want {
			t.Errorf("rampRoute(%q) = %q, want %q", path, got, want)
		}
	}
	e := newTestEngine(t, "canary_percent: 1\n")
	h := AdminHandler(e, WithAdminToken("t"))
	for _, c := range []struct {
		method, path, token string
		code                int
		errCode             string
	}{
		{"GET", "/ramp", "", 401, AdminCodeUnauthorized},
		{"GET", "/ramp", "t", 404, AdminCodeNoRamp},
		{"GET", "/ramp/start", "t", 405, AdminCodeBadRequest},
		{"POST", "/ramp/bogus", "t", 404, AdminCodeUnknownRoute},
		{"POST", "/admin/canary/plan/apply/x", "t", 404, AdminCodeUnknownRoute},
		{"POST", "/admin/canary/ramp/start/", "t", 404, AdminCodeNoRamp}, // a route (trailing slash); no controller here
		{"POST", "/admin/canary/explain/x", "t", 404, AdminCodeUnknownRoute},
	} {
		code, v := adminDo(t, h, c.method, c.path, "{}", c.token)
		if m := obj(t, v); code != c.code || m["code"] != c.errCode {
			t.Errorf("%s %s: %d %v, want %d %s", c.method, c.path, code, m, c.code, c.errCode)
		}
	}
}

// TestAdminReviewFixes: a mistyped route never reaches the kill switch, a
// refused write is audited, a token from a file matches, trailing data is
// refused, format characters in an author are refused, a typed-nil ramp
// controller is no controller.
func TestAdminReviewFixes(t *testing.T) {
	logs := &recordingLogs{}
	e := newTestEngine(t, "canary_percent: 1\n", WithLoggerProvider(logs))
	h := AdminHandler(e, WithAdminToken("secret\n"))
	for _, path := range []string{"/admin/canary/plan/apply/x", "/admin/canary/ramp/stop", "/admin/canary/events/x", "/admin/canary/plan/x"} {
		code, v := adminDo(t, h, "POST", path, `{"action":"on"}`, "secret")
		if code != 404 || obj(t, v)["code"] != AdminCodeUnknownRoute || e.KillSwitch() {
			t.Fatalf("POST %s: %d %v, kill switch %v; want 404 unknown_route and the switch untouched", path, code, v, e.KillSwitch())
		}
	}
	if code, v := adminDo(t, h, "POST", "/admin/canary", `{"action":"on"}}`, "secret"); code != 400 || obj(t, v)["field"] != "body" || e.KillSwitch() {
		t.Fatalf("trailing '}': %d %v", code, v)
	}
	if code, v := adminDo(t, h, "POST", "/admin/canary", `{"action":"on","author":"\u009b31mroot\u202e"}`, "secret"); code != 400 || obj(t, v)["field"] != "author" {
		t.Fatalf("author with C1 and bidi characters: %d %v", code, v)
	}
	if code, _ := adminDo(t, h, "POST", "/admin/canary", `{"action":"on"}`, "secret"); code != 200 || !e.KillSwitch() {
		t.Fatalf("the token read with its newline does not match: %d", code)
	}
	if code, _ := adminDo(t, h, "POST", "/admin/canary/plan/apply", `{"plan":"salt: a\n"}`, "wrong"); code != 401 {
		t.Fatalf("wrong token: %d", code)
	}
	refused := false
	for _, r := range logs.records() {
		a := map[string]string{}
		r.WalkAttributes(func(kv attributeKV) bool { a[string(kv.Key)] = kv.Value.Emit(); return true })
		if r.EventName() == EventPlanChange && a["canary.admin.outcome"] == AdminCodeUnauthorized {
			refused = true
		}
	}
	if !refused {
		t.Fatal("a write refused for its token left no audit record")
	}
	var nilCtl *nilRamp
	hr := AdminHandler(e, WithAdminToken("secret"), WithAdminRamp(nilCtl))
	if code, v := adminDo(t, hr, "GET", "/ramp", "", "secret"); code != 404 || obj(t, v)["code"] != AdminCodeNoRamp {
		t.Fatalf("typed-nil controller: %d %v", code, v)
	}
}

type nilRamp struct{}

func (*nilRamp) Act(context.Context, string, planstore.Change) (any, error) { panic("called") }
