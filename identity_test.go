package canary

import (
	"context"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"testing"

	"google.golang.org/grpc"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/peer"

	"github.com/reqcanary/canary/tenant"
)

const identityPlan = "version: 1\ncanary_percent: 0\ntenants:\n  canary: [acme]\n"

// cohortOf runs one request from remote through the engine's middleware and
// returns the labels the handler saw and the headers it got.
func cohortOf(t *testing.T, e *Engine, remote string, kv ...string) (tenant.Labels, http.Header) {
	t.Helper()
	var l tenant.Labels
	var hd http.Header
	h := e.Middleware(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		l, _ = tenant.FromContext(r.Context())
		hd = r.Header.Clone()
	}))
	req := httptest.NewRequest(http.MethodGet, "/", nil)
	req.RemoteAddr = remote
	for i := 0; i+1 < len(kv); i += 2 {
		req.Header.Add(kv[i], kv[i+1])
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	if rec.Code != 200 {
		t.Fatalf("status %d: %s", rec.Code, rec.Body)
	}
	return l, hd
}

// TestIdentityAttackUntrustedClientJoinsCanaryTenant (issue 12): a client
// that reaches the service directly sends the x-tenant-id of a canary
// tenant. With WithIdentityFromHeaders naming the gateway, it is not put in
// the canary; the gateway's header is honoured.
func TestIdentityAttackUntrustedClientJoinsCanaryTenant(t *testing.T) {
	e := newTestEngine(t, identityPlan, WithIdentityFromHeaders(netip.MustParsePrefix("10.0.0.0/8")))
	l, hd := cohortOf(t, e, "203.0.113.9:5000", "X-Tenant-ID", "acme")
	if l.Cohort != tenant.Stable || l.Tenant != "" || l.Reason != tenant.ReasonNoKey {
		t.Fatalf("untrusted client: labels %+v, want stable no-key", l)
	}
	if hd.Get("X-Tenant-ID") != "" {
		t.Fatal("handler saw the untrusted X-Tenant-ID")
	}
	if l, _ = cohortOf(t, e, "10.2.3.4:5000", "X-Tenant-ID", "acme"); l.Cohort != tenant.Canary || l.Tenant != "acme" {
		t.Fatalf("trusted gateway: labels %+v, want canary acme", l)
	}
}

type authClaims struct{ tenant, user string }
type authKey struct{}

// TestIdentityFunctionWinsOverHeaders: with WithIdentity the claims decide,
// whatever the headers say, over HTTP and gRPC.
func TestIdentityFunctionWinsOverHeaders(t *testing.T) {
	fromCtx := func(ctx context.Context) (string, string, bool) {
		c, ok := ctx.Value(authKey{}).(authClaims)
		return c.tenant, c.user, ok
	}
	e := newTestEngine(t, identityPlan,
		WithIdentity(func(r *http.Request) (string, string, bool) { return fromCtx(r.Context()) }),
		WithGRPCIdentity(fromCtx),
		WithIdentityFromHeaders(netip.MustParsePrefix("0.0.0.0/0")))

	var l tenant.Labels
	h := e.Middleware(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { l, _ = tenant.FromContext(r.Context()) }))
	req := httptest.NewRequest(http.MethodGet, "/", nil)
	req.Header.Set("X-Tenant-ID", "acme")
	req = req.WithContext(context.WithValue(req.Context(), authKey{}, authClaims{"globex", "gus"}))
	h.ServeHTTP(httptest.NewRecorder(), req)
	if l.Tenant != "globex" || l.Cohort != tenant.Stable {
		t.Fatalf("HTTP: labels %+v, want the claims' tenant globex", l)
	}

	ctx := metadata.NewIncomingContext(context.Background(), metadata.Pairs("x-tenant-id", "acme"))
	ctx = peer.NewContext(ctx, &peer.Peer{Addr: tcpAddr("192.0.2.1:1")})
	ctx = context.WithValue(ctx, authKey{}, authClaims{"globex", "gus"})
	_, _ = e.UnaryServerInterceptor(ctx, nil, &grpc.UnaryServerInfo{}, func(ctx context.Context, _ any) (any, error) {
		l, _ = tenant.FromContext(ctx)
		return nil, nil
	})
	if l.Tenant != "globex" {
		t.Fatalf("gRPC: labels %+v, want the claims' tenant globex", l)
	}
}

func TestWithIdentityFromHeadersInvalidPrefix(t *testing.T) {
	if _, err := New(WithIdentityFromHeaders(netip.Prefix{})); err == nil {
		t.Fatal("New accepted an invalid prefix")
	}
}

// TestEdgeStripsClientOverride (issue 12): at the edge, a client's X-Canary
// does not reach the handler, so a handler that forwards inbound headers
// with a plain client cannot hand it to a downstream that trusts the edge's
// network. The plan's own override header is removed too.
func TestEdgeStripsClientOverride(t *testing.T) {
	var downstream http.Header
	ds := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { downstream = r.Header.Clone() }))
	defer ds.Close()
	for _, plan := range []string{identityPlan, identityPlan + "override:\n  header: X-Rollout\n"} {
		e := newTestEngine(t, plan, WithEdge())
		h := e.Middleware(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			out, _ := http.NewRequestWithContext(r.Context(), http.MethodGet, ds.URL, nil)
			out.Header = r.Header.Clone() // a careless handler: forwards every inbound header
			resp, err := http.DefaultClient.Do(out)
			if err != nil {
				t.Error(err)
				return
			}
			resp.Body.Close()
		}))
		req := httptest.NewRequest(http.MethodGet, "/", nil)
		req.Header.Set("X-Canary", "canary")
		if strings.Contains(plan, "X-Rollout") {
			req.Header.Set("X-Rollout", "canary")
		}
		h.ServeHTTP(httptest.NewRecorder(), req)
		if downstream.Get("X-Canary") != "" || downstream.Get("X-Rollout") != "" {
			t.Fatalf("the client's override reached the downstream: %v", downstream)
		}
	}
}

// TestTransportDropsUserIDUnderAnySpelling (issue 12): the engine's
// transport never sends the raw user id, however the header key is spelt.
func TestTransportDropsUserIDUnderAnySpelling(t *testing.T) {
	var got http.Header
	ds := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { got = r.Header.Clone() }))
	defer ds.Close()
	e := newTestEngine(t, identityPlan)
	client := &http.Client{Transport: e.Transport(nil)}
	ctx := tenant.NewContext(context.Background(), tenant.Labels{Tenant: "acme", Cohort: tenant.Canary, Bucket: 3})
	for _, key := range []string{"X-User-ID", "x-user-id", "X-USER-ID", "X-User-Id"} {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, ds.URL, nil)
		req.Header[key] = []string{"alice"}
		resp, err := client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if v := got.Values("X-User-ID"); len(v) != 0 {
			t.Errorf("key %q: the raw user id left: %q", key, v)
		}
	}
}

func tcpAddr(s string) *net.TCPAddr {
	ap := netip.MustParseAddrPort(s)
	return net.TCPAddrFromAddrPort(ap)
}
