package interceptors

import (
	"context"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/metadata"

	"github.com/reqcanary/canary/tenant"
)

// TestClientSendsPosition: the client interceptor sends the request's
// signed position once it has one, on both of its paths (appending, and
// rewriting metadata that already holds keys it owns), and never forwards a
// token already in the outgoing metadata.
func TestClientSendsPosition(t *testing.T) {
	key := []byte("interceptor-consistency-key-0123")
	s, err := tenant.NewDecisionSigner(key)
	if err != nil {
		t.Fatal(err)
	}
	ic := UnaryClient(WithPositionSigner(s.PositionSigner(time.Minute, nil)))
	l := tenant.Labels{Tenant: "acme", UserHash: strings.Repeat("0f", 16), Cohort: tenant.Canary, Bucket: 2}
	base := tenant.NewContext(context.Background(), l)
	var sent metadata.MD
	invoker := func(ctx context.Context, _ string, _, _ any, _ *grpc.ClientConn, _ ...grpc.CallOption) error {
		sent, _ = metadata.FromOutgoingContext(ctx)
		return nil
	}
	call := func(ctx context.Context) []string {
		t.Helper()
		if err := ic(ctx, "/m", nil, nil, nil, invoker); err != nil {
			t.Fatal(err)
		}
		return sent.Get(tenant.GRPC.Consistency)
	}
	stale := metadata.AppendToOutgoingContext(base, tenant.GRPC.Consistency, "stale")
	if vs := call(base); len(vs) != 0 {
		t.Fatalf("no position: sent %q", vs)
	}
	if vs := call(stale); len(vs) != 0 {
		t.Fatalf("no position, stale token in the metadata: sent %q", vs)
	}
	tenant.SessionFromContext(base).RaisePosition(0x77)
	for name, ctx := range map[string]context.Context{"append": base, "rewrite": stale} {
		vs := call(ctx)
		if len(vs) != 1 {
			t.Fatalf("%s: sent %q, want one token", name, vs)
		}
		if p, err := s.VerifyPosition(vs[0], "acme", l.UserHash, time.Now()); err != nil || p != 0x77 {
			t.Fatalf("%s: sent %q, which verifies as %x, %v", name, vs[0], p, err)
		}
	}
}
