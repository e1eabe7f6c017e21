package interceptors_test

import (
	"context"
	"net/netip"
	"strings"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/reqcanary/canary/interceptors"
	"github.com/reqcanary/canary/tenant"
)

// TestIdentityMetadataFromUntrustedPeerIgnored is the attack of issue 12 on
// gRPC: a client names its tenant and user in metadata. Under
// WithIdentityFromHeaders it is believed only from the trusted gateway's
// network; from elsewhere the call has no identity and the handler does not
// see the keys.
func TestIdentityMetadataFromUntrustedPeerIgnored(t *testing.T) {
	for _, tc := range []struct {
		name    string
		trusted netip.Prefix
		want    string
	}{
		{"untrusted", netip.MustParsePrefix("10.0.0.0/8"), ""},
		{"trusted gateway", netip.MustParsePrefix("127.0.0.0/8"), "acme"},
	} {
		conn, rec := start(t, setup{tcp: true, interceptorOpts: []interceptors.Option{interceptors.WithIdentityFromHeaders(tc.trusted)}})
		for _, c := range calls {
			ctx := metadata.AppendToOutgoingContext(context.Background(), "x-tenant-id", "acme", "x-user-id", "mallory")
			if err := c.do(ctx, conn); err != nil {
				t.Fatalf("%s %s: %v", tc.name, c.name, err)
			}
			got := rec.last(t)
			if got.labels.Tenant != tc.want {
				t.Errorf("%s %s: labels %+v, want tenant %q", tc.name, c.name, got.labels, tc.want)
			}
			if tn := got.md.Get("x-tenant-id"); tc.want == "" && (len(tn) != 0 || len(got.md.Get("x-user-id")) != 0) {
				t.Errorf("%s %s: handler saw untrusted identity %v", tc.name, c.name, got.md)
			}
		}
	}
}

// fromAuth stands for an auth interceptor's claims: the tenant and user a
// verified token names.
func fromAuth(ctx context.Context) (string, string, bool) {
	if v := metadata.ValueFromIncomingContext(ctx, "authorization"); len(v) == 1 && v[0] == "Bearer globex-token" {
		return "globex", "gus", true
	}
	return "", "", false
}

// TestIdentityFunctionWinsOverMetadata: the function's identity beats the
// metadata even from a trusted peer; without it the trusted metadata counts.
func TestIdentityFunctionWinsOverMetadata(t *testing.T) {
	conn, rec := start(t, setup{tcp: true, interceptorOpts: []interceptors.Option{
		interceptors.WithIdentity(fromAuth), interceptors.WithIdentityFromHeaders(netip.MustParsePrefix("127.0.0.0/8"))}})
	for _, c := range calls {
		ctx := metadata.AppendToOutgoingContext(context.Background(), "x-tenant-id", "acme", "authorization", "Bearer globex-token")
		if err := c.do(ctx, conn); err != nil {
			t.Fatal(err)
		}
		if got := rec.last(t).labels; got.Tenant != "globex" {
			t.Errorf("%s: labels %+v, want the claims' tenant", c.name, got)
		}
		ctx = metadata.AppendToOutgoingContext(context.Background(), "x-tenant-id", "acme")
		if err := c.do(ctx, conn); err != nil {
			t.Fatal(err)
		}
		if got := rec.last(t).labels; got.Tenant != "acme" {
			t.Errorf("%s: labels %+v, want the trusted metadata's tenant", c.name, got)
		}
	}
}

func TestIdentityFunctionBadValueIsInvalidArgument(t *testing.T) {
	bad := func(context.Context) (string, string, bool) { return "acme", "a\u200bb", true }
	conn, _ := start(t, setup{interceptorOpts: []interceptors.Option{interceptors.WithIdentity(bad)}})
	for _, c := range calls {
		err := c.do(context.Background(), conn)
		if status.Code(err) != codes.InvalidArgument || !strings.Contains(err.Error(), tenant.FieldIdentityUser) {
			t.Errorf("%s: %v", c.name, err)
		}
	}
}

// TestServerWithStripOverride: the handler does not see x-canary (nor the
// plan's own key) although the Decider did.
func TestServerWithStripOverride(t *testing.T) {
	conn, rec := start(t, setup{interceptorOpts: []interceptors.Option{
		interceptors.WithStripOverride(func() string { return "X-Rollout" })}})
	for _, c := range calls {
		ctx := metadata.AppendToOutgoingContext(context.Background(), "x-canary", "canary", "x-rollout", "canary", "x-other", "kept")
		if err := c.do(ctx, conn); err != nil {
			t.Fatal(err)
		}
		if got := rec.lastReq(t).Source.Values("x-canary"); len(got) != 1 {
			t.Errorf("%s: the Decider did not see x-canary: %q", c.name, got)
		}
		md := rec.last(t).md
		if len(md.Get("x-canary")) != 0 || len(md.Get("x-rollout")) != 0 || len(md.Get("x-other")) != 1 {
			t.Errorf("%s: handler saw %v", c.name, md)
		}
	}
}

// TestClientDropsUserIDUnderAnySpelling: an outgoing MD built by hand with
// a non-lowercase x-user-id key does not carry the raw user id.
func TestClientDropsUserIDUnderAnySpelling(t *testing.T) {
	conn, rec := start(t, setup{})
	labelled := tenant.NewContext(context.Background(), tenant.Labels{Tenant: "acme", Cohort: tenant.Canary, Bucket: 1, Reason: tenant.ReasonPercent})
	for _, c := range calls {
		for _, key := range []string{"X-User-ID", "x-User-Id", "x-user-id"} {
			ctx := metadata.NewOutgoingContext(labelled, metadata.MD{key: {"alice"}})
			if err := c.do(ctx, conn); err != nil {
				t.Fatalf("%s %s: %v", c.name, key, err)
			}
			for k, v := range rec.last(t).md {
				for _, s := range v {
					if strings.Contains(s, "alice") {
						t.Errorf("%s %s: the raw user id reached the server under %q", c.name, key, k)
					}
				}
			}
		}
	}
}
