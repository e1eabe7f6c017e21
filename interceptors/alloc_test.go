package interceptors_test

import (
	"context"
	"net"
	"testing"

	"google.golang.org/grpc"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/peer"

	"github.com/reqcanary/canary/interceptors"
	"github.com/reqcanary/canary/tenant"
)

// grpcContext is the context grpc hands a server interceptor for a call that
// carries a tenant and a user id, from a TCP peer.
func grpcContext() context.Context {
	ctx := metadata.NewIncomingContext(context.Background(), metadata.MD{
		":authority": {"test"}, "content-type": {"application/grpc"}, "user-agent": {"grpc-go/1.85.0"},
		"te": {"trailers"}, "x-tenant-id": {"globex"}, "x-user-id": {"user-12345"},
	})
	return peer.NewContext(ctx, &peer.Peer{Addr: &net.TCPAddr{IP: net.IPv4(10, 0, 0, 7), Port: 40000}})
}

// fixedDecider reads what an engine must (tenant, user, override) and returns
// fixed labels, so that only the interceptors' own allocations are counted.
var fixedDecider = tenant.DeciderFunc(func(_ context.Context, req tenant.Request) (tenant.Labels, error) {
	if _, err := tenant.ReadTenant(req.Source, req.Wire); err != nil {
		return tenant.Labels{}, err
	}
	if _, err := tenant.ReadUser(req.Source, req.Wire); err != nil {
		return tenant.Labels{}, err
	}
	if _, err := tenant.ReadOverride(req.Source, req.Wire.Override); err != nil {
		return tenant.Labels{}, err
	}
	return tenant.Labels{Tenant: "globex", Cohort: tenant.Canary, Reason: tenant.ReasonPercent, Bucket: 4432}, nil
})

// TestServerAllocations pins what the server interceptors add to a call over
// a no-op interceptor (grpc itself allocates 2 more for any unary
// interceptor; see docs/benchmarks.md): grpc's copies of the tenant and user
// values, and the labels context, which is also the Decider's Source: at
// most 3. A stream adds its stream wrapper.
func TestServerAllocations(t *testing.T) {
	if raceEnabled {
		t.Skip("allocation counts are meaningless under the race detector")
	}
	ctx := grpcContext()
	t.Run("unary", func(t *testing.T) {
		info := &grpc.UnaryServerInfo{FullMethod: "/grpc.health.v1.Health/Check"}
		labelled := false
		handler := func(ctx context.Context, _ any) (any, error) {
			_, labelled = tenant.FromContext(ctx)
			return nil, nil
		}
		nop := func(ctx context.Context, req any, _ *grpc.UnaryServerInfo, h grpc.UnaryHandler) (any, error) {
			return h(ctx, req)
		}
		count := func(in grpc.UnaryServerInterceptor) float64 {
			return testing.AllocsPerRun(200, func() {
				if _, err := in(ctx, nil, info, handler); err != nil {
					t.Fatal(err)
				}
			})
		}
		canary := count(interceptors.UnaryServer(fixedDecider))
		if !labelled {
			t.Fatal("the handler's context carries no labels")
		}
		if n := canary - count(nop); n > 3 {
			t.Fatalf("UnaryServer adds %v allocations per call over a no-op interceptor, want at most 3", n)
		}
		// A decider that hashes the user into the buffer the Source offers
		// (as the engine does) adds nothing to that.
		hasher := tenant.NewRandomUserHasher()
		var hash string
		hashing := tenant.DeciderFunc(func(_ context.Context, req tenant.Request) (tenant.Labels, error) {
			te, err := tenant.ReadTenant(req.Source, req.Wire)
			if err != nil {
				return tenant.Labels{}, err
			}
			u, err := tenant.ReadUser(req.Source, req.Wire)
			if err != nil {
				return tenant.Labels{}, err
			}
			if _, err := tenant.ReadOverride(req.Source, req.Wire.Override); err != nil {
				return tenant.Labels{}, err
			}
			l := tenant.Labels{Tenant: te, Cohort: tenant.Canary, Reason: tenant.ReasonPercent, Bucket: 4432}
			b, ok := req.Source.(tenant.UserHashBuffer)
			if !ok {
				t.Fatal("the unary Source offers no user hash buffer")
			}
			l.UserHash = hasher.HashInto(b.UserHashBuffer(), l.Tenant, u)
			return l, nil
		})
		handlerHash := func(ctx context.Context, _ any) (any, error) {
			l, _ := tenant.FromContext(ctx)
			hash = l.UserHash
			return nil, nil
		}
		in := interceptors.UnaryServer(hashing)
		n := testing.AllocsPerRun(200, func() {
			if _, err := in(ctx, nil, info, handlerHash); err != nil {
				t.Fatal(err)
			}
		})
		if n > canary {
			t.Fatalf("with the user hash: %v allocations per call, want %v (the hash in the labels context)", n, canary)
		}
		if hash != hasher.Hash("globex", "user-12345") {
			t.Fatalf("the handler's user hash %q is not the user's", hash)
		}
	})
	t.Run("stream", func(t *testing.T) {
		var ss grpc.ServerStream = fakeStream{ctx: ctx} // boxed once, not per call
		info := &grpc.StreamServerInfo{FullMethod: "/grpc.health.v1.Health/Watch", IsServerStream: true}
		labelled := false
		handler := func(_ any, ss grpc.ServerStream) error {
			_, labelled = tenant.FromContext(ss.Context())
			return nil
		}
		nop := func(srv any, ss grpc.ServerStream, _ *grpc.StreamServerInfo, h grpc.StreamHandler) error {
			return h(srv, ss)
		}
		count := func(in grpc.StreamServerInterceptor) float64 {
			return testing.AllocsPerRun(200, func() {
				if err := in(nil, ss, info, handler); err != nil {
					t.Fatal(err)
				}
			})
		}
		canary := count(interceptors.StreamServer(fixedDecider))
		if !labelled {
			t.Fatal("the handler's stream carries no labels")
		}
		if n := canary - count(nop); n > 4 {
			t.Fatalf("StreamServer adds %v allocations per stream over a no-op interceptor, want at most 4", n)
		}
	})
}
