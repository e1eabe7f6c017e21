package canary

import (
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/go-chi/chi/v5"

	"github.com/reqcanary/canary/fallback"
	"github.com/reqcanary/canary/tenant"
)

// TestFallbackClientCarriesLabels is the README's composition: the
// fallback transport inside the engine's transport, so that the dependency
// (canary, stable after a fallback) receives the request's labels. The
// plain &http.Client{Transport: rt} sends none: the test shows both.
func TestFallbackClientCarriesLabels(t *testing.T) {
	type seen struct{ tenantID, cohort, userID, baggage string }
	var mu sync.Mutex
	got := map[string][]seen{}
	dep := func(name string, status int) *httptest.Server {
		s := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			mu.Lock()
			got[name] = append(got[name], seen{r.Header.Get(tenant.HeaderTenant), r.Header.Get(tenant.HeaderOverride),
				r.Header.Get(tenant.HeaderUser), r.Header.Get("Baggage")})
			mu.Unlock()
			w.WriteHeader(status)
			_, _ = io.WriteString(w, name)
		}))
		t.Cleanup(s.Close)
		return s
	}
	canarySrv, stableSrv := dep("canary", http.StatusServiceUnavailable), dep("stable", http.StatusOK)

	eng := newTestEngine(t, "tenants:\n  canary: [acme]\n")
	rt, err := fallback.NewTransport(fallback.Config{Canary: canarySrv.URL, Stable: stableSrv.URL, Timeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = rt.Close() })
	composed := &http.Client{Transport: eng.Transport(rt)} // the README's client
	bare := &http.Client{Transport: rt}                    // what the README showed before

	r := chi.NewRouter()
	r.Use(eng.Middleware)
	r.Get("/{client}", func(w http.ResponseWriter, r *http.Request) {
		c := composed
		if chi.URLParam(r, "client") == "bare" {
			c = bare
		}
		req, _ := http.NewRequestWithContext(r.Context(), http.MethodGet, "http://pricing/price", nil)
		resp, err := c.Do(req)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadGateway)
			return
		}
		defer resp.Body.Close()
		fmt.Fprintf(w, "%s %s", resp.Header.Get(fallback.HeaderServedBy), resp.Header.Get(fallback.HeaderFallbackReason))
	})
	edge := httptest.NewServer(r)
	t.Cleanup(edge.Close)

	for _, path := range []string{"/composed", "/bare"} {
		req, _ := http.NewRequest(http.MethodGet, edge.URL+path, nil)
		req.Header.Set(tenant.HeaderTenant, "acme")
		req.Header.Set(tenant.HeaderUser, "alice")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		// acme is a canary tenant: the canary first, then stable.
		if string(body) != "stable canary:status-503" {
			t.Fatalf("%s: %d %q, want served by stable after the canary's 503", path, resp.StatusCode, body)
		}
	}
	mu.Lock()
	defer mu.Unlock()
	for _, name := range []string{"canary", "stable"} {
		if len(got[name]) != 2 {
			t.Fatalf("%s got %d requests, want 2", name, len(got[name]))
		}
		c, b := got[name][0], got[name][1]
		if c.tenantID != "acme" || c.cohort != "canary" || c.userID != "" || c.baggage == "" {
			t.Errorf("%s through the composed client saw %+v; want tenant acme, cohort canary, baggage, no raw user id", name, c)
		}
		if b.tenantID != "" || b.cohort != "" || b.baggage != "" {
			t.Errorf("%s through the bare fallback client saw %+v; the test assumed it sends no labels", name, b)
		}
	}
}
