package interceptors_test

import (
	"context"
	"errors"
	"strconv"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/reqcanary/canary/interceptors"
	"github.com/reqcanary/canary/tenant"
)

var testSigner, _ = tenant.NewDecisionSigner([]byte("interceptors-test-decision-key!!"))

// hopLabels are the labels of a request an upstream service decided.
var hopLabels = tenant.Labels{
	Tenant: "acme", UserHash: testHasher.Hash("acme", "alice"), Bucket: tenant.BucketOf(testSalt, "acme", "alice"),
	Cohort: tenant.Canary, Reason: tenant.ReasonTenantCanary, TraceID: testTraceID, PlanVersion: 9,
}

func TestClientPropagatesLabels(t *testing.T) {
	conn, rec := start(t, setup{clientOpts: []interceptors.Option{interceptors.WithSigner(testSigner.LabelSigner(time.Minute, nil))}})
	// The shapes outgoing metadata takes in real handlers: none, appended,
	// forwarded from the inbound call (with the raw user id, stale canary
	// keys and baggage), and a hand-built map with a non-lowercase key.
	shapes := []struct {
		name string
		ctx  func(context.Context) context.Context
		kept map[string]string // other metadata that must arrive unchanged
	}{
		{"no metadata", func(ctx context.Context) context.Context { return ctx }, nil},
		{"appended user id", func(ctx context.Context) context.Context {
			return metadata.AppendToOutgoingContext(ctx, "x-user-id", "alice", "other", "1")
		}, map[string]string{"other": "1"}},
		{"forwarded inbound metadata", func(ctx context.Context) context.Context {
			return metadata.NewOutgoingContext(ctx, metadata.Pairs(
				"x-user-id", "alice", "x-tenant-id", "acme", "x-canary", "stable", "x-canary-decision", "v1;stale",
				"baggage", "session=42,canary.cohort=stable", "other", "2"))
		}, map[string]string{"other": "2"}},
		{"appended twice with tenant", func(ctx context.Context) context.Context {
			ctx = metadata.AppendToOutgoingContext(ctx, "x-tenant-id", "acme")
			return metadata.AppendToOutgoingContext(ctx, "X-User-ID", "alice")
		}, nil},
		{"raw map with uppercase key", func(ctx context.Context) context.Context {
			return metadata.NewOutgoingContext(ctx, metadata.MD{"X-User-ID": {"alice"}, "other": {"3"}})
		}, map[string]string{"other": "3"}},
	}
	for _, c := range calls {
		for _, sh := range shapes {
			t.Run(c.name+"/"+sh.name, func(t *testing.T) {
				ctx := sh.ctx(tenant.NewContext(context.Background(), hopLabels))
				if err := c.do(ctx, conn); err != nil {
					t.Fatal(err)
				}
				md := rec.last(t).md
				for key, want := range map[string]string{"x-tenant-id": "acme", "x-canary": "canary"} {
					if got := md.Get(key); len(got) != 1 || got[0] != want {
						t.Fatalf("%s = %q, want exactly [%q]", key, got, want)
					}
				}
				if got := md.Get("x-user-id"); len(got) != 0 {
					t.Fatalf("the raw user id reached the server: %q", got)
				}
				for k, vs := range md {
					for _, v := range vs {
						if strings.Contains(v, "alice") {
							t.Fatalf("the raw user id reached the server in %s: %q", k, v)
						}
					}
				}
				for k, want := range sh.kept {
					if got := md.Get(k); len(got) != 1 || got[0] != want {
						t.Fatalf("other metadata %s = %q, want [%q]", k, got, want)
					}
				}
				bg := md.Get("baggage")
				wantBg := "canary.cohort=canary,canary.tenant=acme,canary.bucket=" + itoa(hopLabels.Bucket)
				if sh.name == "forwarded inbound metadata" {
					wantBg = "session=42," + wantBg
				}
				if len(bg) != 1 || bg[0] != wantBg {
					t.Fatalf("baggage = %q, want [%q]", bg, wantBg)
				}
				dec := md.Get("x-canary-decision")
				if len(dec) != 1 {
					t.Fatalf("x-canary-decision = %q, want one signed decision", dec)
				}
				d, err := testSigner.Verify(dec[0], time.Now())
				if err != nil {
					t.Fatalf("decision %q does not verify: %v", dec[0], err)
				}
				want := hopLabels
				want.TraceID = ""
				if d.Labels() != want {
					t.Fatalf("decision carries %+v, want %+v", d.Labels(), want)
				}
				// And the server decided from the propagated tenant.
				if got := rec.last(t).labels; got.Tenant != "acme" {
					t.Fatalf("server labels %+v", got)
				}
			})
		}
	}
}

func TestClientWithoutSignerSendsNoDecision(t *testing.T) {
	conn, rec := start(t, setup{})
	for _, c := range calls {
		ctx := metadata.AppendToOutgoingContext(tenant.NewContext(context.Background(), hopLabels), "x-canary-decision", "v1;stale")
		if err := c.do(ctx, conn); err != nil {
			t.Fatal(err)
		}
		if got := rec.last(t).md.Get("x-canary-decision"); len(got) != 0 {
			t.Fatalf("%s: x-canary-decision = %q, want none without a signer", c.name, got)
		}
	}
}

func TestClientWithoutLabelsPassesThrough(t *testing.T) {
	conn, rec := start(t, setup{clientOpts: []interceptors.Option{interceptors.WithSigner(testSigner.LabelSigner(0, nil))}})
	for _, c := range calls {
		ctx := metadata.AppendToOutgoingContext(context.Background(), "x-user-id", "alice", "baggage", "a=1")
		if err := c.do(ctx, conn); err != nil {
			t.Fatal(err)
		}
		md := rec.last(t).md
		if got := md.Get("x-user-id"); len(got) != 1 || got[0] != "alice" {
			t.Fatalf("%s: x-user-id = %q: metadata of a call without labels must be left untouched", c.name, got)
		}
		for _, k := range []string{"x-canary", "x-canary-decision", "x-tenant-id"} {
			if got := md.Get(k); len(got) != 0 {
				t.Fatalf("%s: %s = %q added without labels", c.name, k, got)
			}
		}
		if got := md.Get("baggage"); len(got) != 1 || got[0] != "a=1" {
			t.Fatalf("%s: baggage = %q, want untouched", c.name, got)
		}
	}
}

func TestClientSignErrorFailsTheCall(t *testing.T) {
	boom := errors.New("signer broken")
	conn, rec := start(t, setup{clientOpts: []interceptors.Option{
		interceptors.WithSigner(func(tenant.Labels) (string, error) { return "", boom }),
	}})
	for _, c := range calls {
		err := c.do(tenant.NewContext(context.Background(), hopLabels), conn)
		s, _ := status.FromError(err)
		if s.Code() != codes.Internal || !strings.Contains(s.Message(), "x-canary-decision") || !strings.Contains(s.Message(), "signer broken") {
			t.Fatalf("%s: err = %v, want Internal naming x-canary-decision and the cause", c.name, err)
		}
	}
	if rec.count() != 0 {
		t.Fatal("a call whose decision could not be signed was sent")
	}
}

// A labelled request that calls the next service: the labels the next
// service decides from the propagated metadata agree with the caller's.
func TestClientToServerHop(t *testing.T) {
	conn, rec := start(t, setup{})
	for i := 0; i < 50; i++ {
		user := "user-" + itoa(i)
		up := labelsFor("acme", user, "", false, "")
		ctx := metadata.AppendToOutgoingContext(tenant.NewContext(context.Background(), up), "x-user-id", user)
		if err := check(ctx, conn); err != nil {
			t.Fatal(err)
		}
		got := rec.last(t)
		if got.labels.Tenant != up.Tenant {
			t.Fatalf("tenant %q, want %q", got.labels.Tenant, up.Tenant)
		}
		// Without the user id the next hop can only bucket on the tenant:
		// that is why the decision is signed and carried along.
		if got.labels.UserHash != "" {
			t.Fatalf("the next hop hashed a user it should never have seen: %+v", got.labels)
		}
		if c := got.md.Get("x-canary"); len(c) != 1 || c[0] != string(up.Cohort) {
			t.Fatalf("x-canary = %q, want %q", c, up.Cohort)
		}
	}
}

func itoa(i int) string { return strconv.Itoa(i) }
