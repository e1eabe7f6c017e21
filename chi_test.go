package canary_test

import (
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/go-chi/chi/v5"

	"github.com/reqcanary/canary"
	"github.com/reqcanary/canary/tenant"
)

// labelsHandler answers with the labels the request carries, as JSON.
func labelsHandler(w http.ResponseWriter, r *http.Request) {
	l, ok := tenant.FromContext(r.Context())
	if !ok {
		http.Error(w, "no labels", http.StatusInternalServerError)
		return
	}
	_ = json.NewEncoder(w).Encode(l)
}

func get(t *testing.T, url string, kv ...string) (*http.Response, tenant.Labels, string) {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i+1 < len(kv); i += 2 {
		req.Header.Set(kv[i], kv[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	var l tenant.Labels
	if resp.StatusCode == http.StatusOK {
		if err := json.Unmarshal(body, &l); err != nil {
			t.Fatalf("body %q: %v", body, err)
		}
	}
	return resp, l, strings.TrimSpace(string(body))
}

// TestChiUseCanaryMiddleware serves a chi router with r.Use(canary.Middleware)
// over real HTTP: zero config means 0 % canary, overrides from loopback.
func TestChiUseCanaryMiddleware(t *testing.T) {
	// TestMain clears CANARY_PLAN: this is the zero-config default engine.
	r := chi.NewRouter()
	r.Use(canary.Middleware)
	r.Get("/labels", labelsHandler)
	srv := httptest.NewServer(r)
	defer srv.Close()

	resp, l, _ := get(t, srv.URL+"/labels", "X-Tenant-ID", "acme", "X-User-ID", "alice")
	if resp.StatusCode != 200 || l.Cohort != tenant.Stable || l.Reason != tenant.ReasonPercent || l.Tenant != "acme" ||
		l.Bucket != tenant.Bucket("", "acme/alice") || len(l.UserHash) != 32 || resp.Header.Get("X-Canary-Cohort") != "stable" {
		t.Fatalf("plain request: %d %+v cohort header %q", resp.StatusCode, l, resp.Header.Get("X-Canary-Cohort"))
	}

	// The test client is a loopback peer, whose override the default honours.
	resp, l, _ = get(t, srv.URL+"/labels", "X-Tenant-ID", "acme", "X-Canary", "canary",
		"Traceparent", "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01")
	if l.Cohort != tenant.Canary || l.Reason != tenant.ReasonOverride || resp.Header.Get("X-Canary-Cohort") != "canary" ||
		l.TraceID != "0af7651916cd43dd8448eb211c80319c" {
		t.Fatalf("loopback override: %+v", l)
	}

	resp, _, body := get(t, srv.URL+"/labels", "X-Tenant-ID", strings.Repeat("x", 65))
	if resp.StatusCode != 400 || body != `{"error":"X-Tenant-ID: longer than 64 bytes","field":"X-Tenant-ID"}` ||
		resp.Header.Get("Content-Type") != "application/json" {
		t.Fatalf("bad tenant: %d %s", resp.StatusCode, body)
	}
}

// TestChiEngineOnPlanFile serves a chi router with an engine on a plan file,
// and edits the file while serving.
func TestChiEngineOnPlanFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "plan.yaml")
	write := func(s string) {
		t.Helper()
		if err := os.WriteFile(path, []byte(s), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("version: 1\nsalt: checkout-v2\ncanary_percent: 0\ntenants:\n  stable: [bigbank]\n")
	eng, err := canary.New(canary.WithPlanFile(path), canary.WithLogger(slog.New(slog.DiscardHandler)))
	if err != nil {
		t.Fatal(err)
	}
	defer eng.Close()

	r := chi.NewRouter()
	r.Use(eng.Middleware)
	r.Get("/labels", labelsHandler)
	srv := httptest.NewServer(r)
	defer srv.Close()

	_, l, _ := get(t, srv.URL+"/labels", "X-Tenant-ID", "acme", "X-User-ID", "alice")
	if l.Cohort != tenant.Stable || l.PlanVersion != 1 || l.Bucket != tenant.Bucket("checkout-v2", "acme/alice") {
		t.Fatalf("version 1: %+v", l)
	}
	// An override from the (loopback) test client is not trusted by this plan.
	if _, l, _ = get(t, srv.URL+"/labels", "X-Tenant-ID", "acme", "X-Canary", "canary"); l.Cohort != tenant.Stable || eng.UntrustedOverrides() != 1 {
		t.Fatalf("untrusted override: %+v, counted %d", l, eng.UntrustedOverrides())
	}

	write("version: 2\nsalt: checkout-v2\ncanary_percent: 100\ntenants:\n  stable: [bigbank]\noverride:\n  trusted_cidrs: [127.0.0.0/8, '::1']\n")
	deadline := time.Now().Add(time.Second)
	for {
		_, l, _ = get(t, srv.URL+"/labels", "X-Tenant-ID", "acme", "X-User-ID", "alice")
		if l.PlanVersion == 2 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the plan edit did not take effect within a second")
		}
		time.Sleep(20 * time.Millisecond)
	}
	if l.Cohort != tenant.Canary || l.Reason != tenant.ReasonPercent {
		t.Fatalf("version 2: %+v", l)
	}
	if _, l, _ = get(t, srv.URL+"/labels", "X-Tenant-ID", "bigbank", "X-User-ID", "alice"); l.Cohort != tenant.Stable || l.Reason != tenant.ReasonTenantStable {
		t.Fatalf("bigbank under version 2: %+v", l)
	}
	if _, l, _ = get(t, srv.URL+"/labels", "X-Tenant-ID", "bigbank", "X-Canary", "canary"); l.Cohort != tenant.Canary || l.Reason != tenant.ReasonOverride {
		t.Fatalf("trusted override under version 2: %+v", l)
	}

	eng.SetKillSwitch(true)
	if resp, l, _ := get(t, srv.URL+"/labels", "X-Tenant-ID", "acme", "X-Canary", "canary"); l.Cohort != tenant.Stable ||
		l.Reason != tenant.ReasonKillSwitch || resp.Header.Get("X-Canary-Cohort") != "stable" {
		t.Fatalf("kill switch: %+v", l)
	}
}
