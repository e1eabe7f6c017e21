package middleware

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"testing"

	"github.com/reqcanary/canary/tenant"
)

// gateway is the network of the gateway that sets the identity headers.
var gateway = netip.MustParsePrefix("10.1.0.0/16")

// TestIdentityHeadersFromUntrustedPeerAreIgnored is the attack of issue 12:
// a client that reaches the service directly names a canary tenant in
// X-Tenant-ID. Under WithIdentityFromHeaders it is not believed (no tenant,
// so not canary), and the handler does not see the header; the gateway's
// headers are believed.
func TestIdentityHeadersFromUntrustedPeerAreIgnored(t *testing.T) {
	t.Parallel()
	var seen http.Header
	h := New(&recordingDecider{}, WithIdentityFromHeaders(gateway))(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		seen = r.Header.Clone()
	}))
	for _, tc := range []struct {
		name, remote string
		want         tenant.Cohort
		wantTenant   string
	}{
		{"attacker", "203.0.113.9:4000", tenant.Stable, ""},
		{"gateway", "10.1.2.3:4000", tenant.Canary, "acme"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			req := newReq(tc.remote, "X-Tenant-ID", "acme", "X-User-ID", "mallory")
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, req)
			if got := rec.Header().Get(tenant.HeaderCohort); got != string(tc.want) {
				t.Fatalf("cohort %q, want %q", got, tc.want)
			}
			if got := seen.Get(tenant.HeaderTenant); got != tc.wantTenant {
				t.Fatalf("handler saw X-Tenant-ID %q, want %q", got, tc.wantTenant)
			}
			if tc.wantTenant == "" && seen.Get(tenant.HeaderUser) != "" {
				t.Fatalf("handler saw the untrusted X-User-ID")
			}
			if req.Header.Get(tenant.HeaderTenant) != "acme" {
				t.Fatal("the caller's request was modified")
			}
		})
	}
}

// TestIdentityUntrustedGarbageIsNotAnError: malformed identity headers from
// an untrusted peer are not read at all, so they are no 400.
func TestIdentityUntrustedGarbageIsNotAnError(t *testing.T) {
	t.Parallel()
	rec, l, called := serve(t, &recordingDecider{}, newReq("203.0.113.9:1", "X-Tenant-ID", "bad tenant!"),
		WithIdentityFromHeaders(gateway))
	if !called || rec.Code != 200 || l.Tenant != "" {
		t.Fatalf("code %d called %v labels %+v", rec.Code, called, l)
	}
}

type claimsKey struct{}

type claims struct{ tenant, user string }

// authenticate stands for an auth middleware that verified a token.
func authenticate(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Authorization") == "Bearer globex-token" {
			r = r.WithContext(context.WithValue(r.Context(), claimsKey{}, claims{"globex", "gus"}))
		}
		next.ServeHTTP(w, r)
	})
}

func fromClaims(r *http.Request) (string, string, bool) {
	c, ok := r.Context().Value(claimsKey{}).(claims)
	return c.tenant, c.user, ok
}

// TestIdentityFunctionWinsOverHeaders: the identity comes from the verified
// claims; the headers, even from a trusted peer, do not change it.
func TestIdentityFunctionWinsOverHeaders(t *testing.T) {
	t.Parallel()
	d := &recordingDecider{}
	var handlerTenant string
	h := authenticate(New(d, WithIdentity(fromClaims), WithIdentityFromHeaders(gateway))(http.HandlerFunc(
		func(w http.ResponseWriter, r *http.Request) { handlerTenant = r.Header.Get(tenant.HeaderTenant) })))

	// Authenticated as globex, claims acme by header from a trusted peer.
	req := newReq("10.1.2.3:1", "X-Tenant-ID", "acme", "Authorization", "Bearer globex-token")
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	if got := rec.Header().Get(tenant.HeaderCohort); got != "stable" {
		t.Fatalf("cohort %q: the header beat the claims", got)
	}
	if u, _ := tenant.ReadUser(d.request().Source, tenant.HTTP); u != "gus" {
		t.Fatalf("the Decider read user %q, want the claim's gus", u)
	}
	if handlerTenant != "" {
		t.Fatalf("handler saw the disbelieved X-Tenant-ID %q", handlerTenant)
	}

	// Not authenticated: the trusted gateway's header is the identity.
	rec = httptest.NewRecorder()
	h.ServeHTTP(rec, newReq("10.1.2.3:1", "X-Tenant-ID", "acme"))
	if got := rec.Header().Get(tenant.HeaderCohort); got != "canary" {
		t.Fatalf("cohort %q, want canary from the trusted gateway's header", got)
	}
}

// TestIdentityFunctionAloneIgnoresHeaders: with WithIdentity alone, a
// request the function does not know has no identity, whatever it sends.
func TestIdentityFunctionAloneIgnoresHeaders(t *testing.T) {
	t.Parallel()
	_, l, _ := serve(t, &recordingDecider{}, newReq("127.0.0.1:1", "X-Tenant-ID", "acme"), WithIdentity(fromClaims))
	if l.Tenant != "" || l.Cohort != tenant.Stable {
		t.Fatalf("labels %+v: the header was believed", l)
	}
}

// TestIdentityFunctionBadValueIs400: an identity that breaks the limits is
// answered 400 naming identity.user.
func TestIdentityFunctionBadValueIs400(t *testing.T) {
	t.Parallel()
	bad := func(*http.Request) (string, string, bool) { return "acme", "eve\u202egnp.exe", true }
	rec, _, called := serve(t, &recordingDecider{}, newReq("127.0.0.1:1"), WithIdentity(bad))
	var body errorBody
	_ = json.Unmarshal(rec.Body.Bytes(), &body)
	if called || rec.Code != 400 || body.Field != tenant.FieldIdentityUser {
		t.Fatalf("code %d called %v body %s", rec.Code, called, rec.Body)
	}
}

func TestWithIdentityFromHeadersPanicsOnInvalidPrefix(t *testing.T) {
	t.Parallel()
	defer func() {
		if recover() == nil {
			t.Fatal("no panic")
		}
	}()
	New(&recordingDecider{}, WithIdentityFromHeaders(netip.Prefix{}))
}

// TestStripOverride: the edge removes the client's X-Canary (and the plan's
// own override header) before the handler, after the Decider saw it.
func TestStripOverride(t *testing.T) {
	t.Parallel()
	d := &recordingDecider{}
	var seen http.Header
	h := New(d, WithStripOverride(func() string { return "X-Rollout" }))(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		seen = r.Header.Clone()
	}))
	req := newReq("127.0.0.1:1", "X-Canary", "canary", "X-Rollout", "canary", "X-Other", "kept")
	h.ServeHTTP(httptest.NewRecorder(), req)
	if seen.Get("X-Canary") != "" || seen.Get("X-Rollout") != "" || seen.Get("X-Other") != "kept" {
		t.Fatalf("handler saw %v", seen)
	}
	if got := d.request().Source.Values("X-Canary"); len(got) != 1 {
		t.Fatalf("the Decider did not see the override: %q", got)
	}
	if req.Header.Get("X-Canary") != "canary" {
		t.Fatal("the caller's request was modified")
	}
}
