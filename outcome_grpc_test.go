package canary

import (
	"context"
	"testing"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/reqcanary/canary/interceptors"
)

// The options serverInterceptorOptions gives the gRPC facade feed the guard:
// the server-side failure codes count as failures, the others do not.
func TestServerInterceptorOptionsFeedTheGuard(t *testing.T) {
	e := newTestEngine(t, "canary_percent: 100\n", WithGuard(GuardConfig{Enabled: true}))
	unary := interceptors.UnaryServer(e, e.serverInterceptorOptions()...)
	ctx := metadata.NewIncomingContext(context.Background(), metadata.Pairs("x-tenant-id", "acme", "x-user-id", "bob"))
	all := []codes.Code{codes.OK, codes.NotFound, codes.InvalidArgument, codes.Canceled, codes.PermissionDenied,
		codes.Unavailable, codes.Internal, codes.Unknown, codes.DeadlineExceeded, codes.DataLoss}
	for _, c := range all {
		_, _ = unary(ctx, nil, &grpc.UnaryServerInfo{FullMethod: "/shop.Cart/Add"}, func(context.Context, any) (any, error) {
			if c == codes.OK {
				return "ok", nil
			}
			return nil, status.Error(c, "x")
		})
	}
	g := e.Status().Guard
	if g.Canary.Requests != uint64(len(all)) || g.Canary.Failures != 5 {
		t.Fatalf("canary figures %+v, want %d requests and 5 failures", g.Canary, len(all))
	}
}
