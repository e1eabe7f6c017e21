package canary

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"testing"

	"github.com/reqcanary/canary/tenant"
)

func TestNewOptionErrors(t *testing.T) {
	t.Parallel()
	noEnv := func(string) string { return "" }
	tests := []struct {
		name  string
		opts  []Option
		env   func(string) string
		names string
	}{
		{"plan and plan file", []Option{WithPlan(Plan{}), WithPlanFile("x.yaml")}, noEnv, "WithPlan and WithPlanFile"},
		{"short hash key", []Option{WithUserHashKey([]byte("short"))}, noEnv, "WithUserHashKey"},
		{"short env hash key", nil, func(k string) string {
			if k == EnvUserHashKey {
				return "tooshort"
			}
			return ""
		}, EnvUserHashKey},
		{"zero poll interval", []Option{WithPlanPollInterval(0)}, noEnv, "WithPlanPollInterval"},
		{"invalid proxy prefix", []Option{WithTrustedProxies(netip.Prefix{})}, noEnv, "WithTrustedProxies"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e, err := newEngine(tt.opts, tt.env, false)
			if err == nil {
				_ = e.Close()
				t.Fatal("want an error")
			}
			if !errors.Is(err, ErrInvalidOption) || !strings.Contains(err.Error(), tt.names) {
				t.Fatalf("error %q: want ErrInvalidOption naming %q", err, tt.names)
			}
		})
	}
}

func TestNewDefaultsToZeroPercentAndLoopbackOverrides(t *testing.T) {
	t.Parallel()
	e, err := New()
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	p := e.Plan()
	if p.CanaryPercent != 0 || p.Override.Header != "X-Canary" || len(p.Override.TrustedCIDRs) != 2 {
		t.Fatalf("default plan %+v", p)
	}
	decide := func(peer string, h ...string) tenant.Labels {
		l, err := e.Decide(context.Background(), tenant.Request{Source: headers(h...), Wire: tenant.HTTP, Peer: netip.MustParseAddr(peer)})
		if err != nil {
			t.Fatal(err)
		}
		return l
	}
	if l := decide("192.0.2.1", "X-Tenant-ID", "acme", "X-User-ID", "bob"); l.Cohort != tenant.Stable || l.Reason != tenant.ReasonPercent {
		t.Errorf("default engine: %s/%s, want stable/percent", l.Cohort, l.Reason)
	}
	for _, peer := range []string{"127.0.0.1", "127.8.9.10", "::1"} {
		if l := decide(peer, "X-Canary", "canary"); l.Cohort != tenant.Canary {
			t.Errorf("override from loopback %s: %s/%s, want canary/override", peer, l.Cohort, l.Reason)
		}
	}
	if l := decide("192.0.2.1", "X-Canary", "canary"); l.Cohort != tenant.Stable {
		t.Errorf("override from a non-loopback peer honoured: %s/%s", l.Cohort, l.Reason)
	}
}

func TestUserHashKeySources(t *testing.T) {
	t.Parallel()
	env := func(k string) string {
		if k == EnvUserHashKey {
			return string(testHashKey)
		}
		return ""
	}
	fromEnv, err := newEngine(nil, env, false)
	if err != nil {
		t.Fatal(err)
	}
	fromOpt, err := newEngine([]Option{WithUserHashKey(testHashKey)}, func(string) string { return "" }, false)
	if err != nil {
		t.Fatal(err)
	}
	random1, _ := newEngine(nil, func(string) string { return "" }, false)
	random2, _ := newEngine(nil, func(string) string { return "" }, false)
	req := tenant.Request{Source: headers("X-Tenant-ID", "acme", "X-User-ID", "alice"), Wire: tenant.HTTP}
	hash := func(e *Engine) string {
		l, err := e.Decide(context.Background(), req)
		if err != nil {
			t.Fatal(err)
		}
		return l.UserHash
	}
	if hash(fromEnv) != hash(fromOpt) {
		t.Error("an engine keyed by CANARY_USER_HASH_KEY and one keyed by WithUserHashKey disagree")
	}
	if hash(random1) == hash(random2) {
		t.Error("two engines with random keys agree")
	}
	if hash(random1) != hash(random1) {
		t.Error("one engine is not stable")
	}
}

func TestPlanReturnsACopy(t *testing.T) {
	t.Parallel()
	e := newTestEngine(t, planAt("10"))
	p := e.Plan()
	p.Tenants.Canary[0] = "mallory"
	p.Override.TrustedCIDRs[0] = netip.MustParsePrefix("0.0.0.0/0")
	if got := e.Plan(); got.Tenants.Canary[0] != "acme" || got.Override.TrustedCIDRs[0].String() != "10.0.0.0/8" {
		t.Fatalf("mutating Plan()'s result changed the engine: %+v", got)
	}
	l, _ := e.Decide(context.Background(), tenant.Request{Source: headers("X-Tenant-ID", "mallory", "X-Canary", "canary"), Wire: tenant.HTTP, Peer: untrustedPeer})
	if l.Cohort != tenant.Stable {
		t.Fatalf("mutation reached decisions: %+v", l)
	}
}

func TestCloseIsIdempotent(t *testing.T) {
	t.Parallel()
	e := newTestEngine(t, planAt("10"))
	for range 3 {
		if err := e.Close(); err != nil {
			t.Fatal(err)
		}
	}
}

func TestEngineMiddlewareOptions(t *testing.T) {
	t.Parallel()
	serve := func(e *Engine, remote string, kv ...string) *httptest.ResponseRecorder {
		h := e.Middleware(http.HandlerFunc(func(http.ResponseWriter, *http.Request) {}))
		req := httptest.NewRequest(http.MethodGet, "/", nil)
		req.RemoteAddr = remote
		for i := 0; i+1 < len(kv); i += 2 {
			req.Header.Set(kv[i], kv[i+1])
		}
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		return rec
	}

	req, err := New(WithRequireTenant())
	if err != nil {
		t.Fatal(err)
	}
	defer req.Close()
	if rec := serve(req, "192.0.2.1:1", "X-User-ID", "bob"); rec.Code != 400 ||
		strings.TrimSpace(rec.Body.String()) != `{"error":"X-Tenant-ID: required","field":"X-Tenant-ID"}` {
		t.Fatalf("WithRequireTenant, no tenant: %d %s", rec.Code, rec.Body)
	}
	if rec := serve(req, "192.0.2.1:1", "X-Tenant-ID", "acme"); rec.Code != 200 {
		t.Fatalf("WithRequireTenant, tenant given: %d %s", rec.Code, rec.Body)
	}

	// A client behind a proxy claims to be loopback in X-Forwarded-For: the
	// default plan trusts loopback overrides, but only a proxy named by
	// WithTrustedProxies makes the forwarded address the peer.
	plain, _ := New()
	defer plain.Close()
	if rec := serve(plain, "10.0.0.5:1", "X-Forwarded-For", "127.0.0.1", "X-Canary", "canary"); rec.Header().Get("X-Canary-Cohort") != "stable" {
		t.Fatal("X-Forwarded-For was believed without WithTrustedProxies")
	}
	proxied, _ := New(WithTrustedProxies(netip.MustParsePrefix("10.0.0.0/8")))
	defer proxied.Close()
	if rec := serve(proxied, "10.0.0.5:1", "X-Forwarded-For", "127.0.0.1", "X-Canary", "canary"); rec.Header().Get("X-Canary-Cohort") != "canary" {
		t.Fatal("the trusted proxy's X-Forwarded-For was not used")
	}
	if rec := serve(proxied, "192.0.2.9:1", "X-Forwarded-For", "127.0.0.1", "X-Canary", "canary"); rec.Header().Get("X-Canary-Cohort") != "stable" {
		t.Fatal("X-Forwarded-For from a peer that is not a trusted proxy was believed")
	}
}
