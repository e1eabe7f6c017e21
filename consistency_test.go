package canary

import (
	"context"
	"net/http"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/reqcanary/canary/tenant"
)

// TestDecideConsistencyToken: a valid token becomes Labels.Position (and the
// request's position in its context); every invalid one is ignored, counted
// by reason, and never an error; edges and engines without a key ignore
// tokens without counting.
func TestDecideConsistencyToken(t *testing.T) {
	key := []byte("decide-consistency-key-0123456789")
	e := newTestEngine(t, planAt("50"), WithSigningKey(key))
	s, err := tenant.NewDecisionSigner(key)
	if err != nil {
		t.Fatal(err)
	}
	bg := context.Background()
	// The labels this engine decides for acme/alice, to bind tokens to.
	l, err := e.Decide(bg, tenant.Request{Source: headers(tenant.HeaderTenant, "acme", tenant.HeaderUser, "alice"), Wire: tenant.HTTP})
	if err != nil {
		t.Fatal(err)
	}
	soon := time.Now().Add(time.Minute)
	valid, _ := s.SignPosition("acme", l.UserHash, 0x1234, soon)
	expired, _ := s.SignPosition("acme", l.UserHash, 0x1234, time.Now().Add(-time.Second))
	bob, _ := s.SignPosition("acme", strings.Repeat("ab", 16), 0x1234, soon)
	other, _ := tenant.NewDecisionSigner([]byte("another-signing-key-0123456789"))
	forged, _ := other.SignPosition("acme", l.UserHash, 0x1234, soon)

	decide := func(e *Engine, tokens ...string) tenant.Labels {
		t.Helper()
		h := headers(tenant.HeaderTenant, "acme", tenant.HeaderUser, "alice")
		for _, v := range tokens {
			h.Add(tenant.HeaderConsistency, v)
		}
		got, err := e.Decide(bg, tenant.Request{Source: h, Wire: tenant.HTTP, Peer: netip.MustParseAddr("192.0.2.1")})
		if err != nil {
			t.Fatalf("Decide with tokens %q: %v", tokens, err)
		}
		return got
	}
	if got := decide(e, valid); got.Position != 0x1234 {
		t.Fatalf("valid token: Position %x, want 1234", got.Position)
	}
	if p := tenant.PositionFromContext(tenant.NewContext(bg, decide(e, valid))); p != 0x1234 {
		t.Fatalf("the request's context has position %x", p)
	}
	for _, tc := range []struct {
		name   string
		tokens []string
	}{
		{"signature", []string{forged}},
		{"expired", []string{expired}},
		{"user", []string{bob}},
		{"malformed", []string{"c1;garbage"}},
		{"oversized", []string{strings.Repeat("x", 1<<16)}},
		{"repeated", []string{valid, valid}},
	} {
		before := e.RejectedConsistencyTokens()
		if got := decide(e, tc.tokens...); got.Position != 0 {
			t.Errorf("%s: Position %x, want 0", tc.name, got.Position)
		}
		if n := e.RejectedConsistencyTokens() - before; n != 1 {
			t.Errorf("%s: counted %d rejections, want 1", tc.name, n)
		}
	}
	if n := e.RejectedDecisions(); n != 0 {
		t.Errorf("token rejections counted as decision rejections: %d", n)
	}

	for name, eng := range map[string]*Engine{
		"edge":   newTestEngine(t, planAt("50"), WithSigningKey(key), WithEdge()),
		"no key": newTestEngine(t, planAt("50")),
	} {
		if got := decide(eng, valid); got.Position != 0 || eng.RejectedConsistencyTokens() != 0 {
			t.Errorf("%s: Position %x, rejected %d; want the token ignored, uncounted", name, got.Position, eng.RejectedConsistencyTokens())
		}
	}
}

// TestTransportSendsRequestPosition: the engine's transport sends the
// request's position, signed and bound to its user, only once the request
// has one, and never forwards an inbound token.
func TestTransportSendsRequestPosition(t *testing.T) {
	key := []byte("transport-consistency-key-012345")
	e := newTestEngine(t, planAt("50"), WithSigningKey(key))
	s, _ := tenant.NewDecisionSigner(key)
	var got http.Header
	rt := e.Transport(roundTripFunc(func(r *http.Request) (*http.Response, error) {
		got = r.Header
		return &http.Response{StatusCode: 204, Body: http.NoBody}, nil
	}))
	l := tenant.Labels{Tenant: "acme", UserHash: strings.Repeat("0f", 16), Cohort: tenant.Stable, Bucket: 1}
	ctx := tenant.NewContext(context.Background(), l)
	send := func() string {
		t.Helper()
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, "http://b/", nil)
		req.Header.Set(tenant.HeaderConsistency, "copied from an inbound request")
		if _, err := rt.RoundTrip(req); err != nil {
			t.Fatal(err)
		}
		return got.Get(tenant.HeaderConsistency)
	}
	if v := send(); v != "" {
		t.Fatalf("a request that has not written sent %q", v)
	}
	tenant.SessionFromContext(ctx).RaisePosition(0xabc) // as dbwrap does after a write
	v := send()
	if p, err := s.VerifyPosition(v, "acme", l.UserHash, time.Now()); err != nil || p != 0xabc {
		t.Fatalf("sent %q, which verifies as %x, %v", v, p, err)
	}
}
