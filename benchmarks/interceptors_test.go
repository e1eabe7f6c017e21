package benchmarks

import (
	"context"
	"net"
	"testing"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/peer"
	"google.golang.org/grpc/test/bufconn"

	"github.com/reqcanary/canary"
	"github.com/reqcanary/canary/interceptors"
	"github.com/reqcanary/canary/tenant"
)

// The interceptor benchmarks make one unary call (grpc.health.v1 Check) over
// bufconn, so the figures are grpc's own cost plus canary's. Baseline in the
// same run: bare grpc, whose client sends the tenant and user ids as
// metadata, and the same with a no-op interceptor installed on the side
// canary's row measures (baseline=grpc+nop-…): grpc's generated handler
// allocates more as soon as any unary server interceptor is installed, so
// only the difference to the nop row is canary's own. With canary, the
// server interceptor decides from the metadata and the client interceptor
// writes the calling request's labels (tenant, override, baggage) instead.

// grpcLabels are the labels of the request that makes the call, as the HTTP
// middleware or a server interceptor upstream left them in its context.
var grpcLabels = tenant.Labels{Tenant: "globex", UserHash: "0f1e2d3c4b5a69788796a5b4c3d2e1f0", Bucket: 4432,
	Cohort: tenant.Canary, Reason: tenant.ReasonPercent, PlanVersion: 7}

// grpcDecider reads what a call carries as an engine must (tenant, user,
// override) and returns fixed labels: it isolates the interceptors' cost.
var grpcDecider = tenant.DeciderFunc(func(_ context.Context, req tenant.Request) (tenant.Labels, error) {
	if _, err := tenant.ReadTenant(req.Source, req.Wire); err != nil {
		return tenant.Labels{}, err
	}
	if _, err := tenant.ReadUser(req.Source, req.Wire); err != nil {
		return tenant.Labels{}, err
	}
	if _, err := tenant.ReadOverride(req.Source, req.Wire.Override); err != nil {
		return tenant.Labels{}, err
	}
	l := grpcLabels
	l.TraceID = req.TraceID
	return l, nil
})

// nopServer and nopClient are interceptors that only call on: the fair
// baselines of canary's.
func nopServer(ctx context.Context, req any, _ *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
	return handler(ctx, req)
}

func nopClient(ctx context.Context, method string, req, reply any, cc *grpc.ClientConn, invoker grpc.UnaryInvoker, opts ...grpc.CallOption) error {
	return invoker(ctx, method, req, reply, cc, opts...)
}

func grpcConn(b *testing.B, srvOpts []grpc.ServerOption, dialOpts ...grpc.DialOption) healthpb.HealthClient {
	b.Helper()
	srv := grpc.NewServer(srvOpts...)
	healthpb.RegisterHealthServer(srv, health.NewServer())
	lis := bufconn.Listen(1 << 20)
	go func() { _ = srv.Serve(lis) }()
	dialOpts = append(dialOpts,
		grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithContextDialer(func(ctx context.Context, _ string) (net.Conn, error) { return lis.DialContext(ctx) }))
	conn, err := grpc.NewClient("passthrough:///bench", dialOpts...)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = conn.Close(); srv.Stop() })
	return healthpb.NewHealthClient(conn)
}

func runUnary(b *testing.B, c healthpb.HealthClient, ctx context.Context) {
	req := &healthpb.HealthCheckRequest{}
	if _, err := c.Check(ctx, req); err != nil { // warm the connection
		b.Fatal(err)
	}
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		if _, err := c.Check(ctx, req); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkInterceptorsUnary(b *testing.B) {
	bare := metadata.AppendToOutgoingContext(context.Background(), "x-tenant-id", "globex", "x-user-id", "user-12345")
	labelled := tenant.NewContext(context.Background(), grpcLabels)
	server := []grpc.ServerOption{grpc.UnaryInterceptor(interceptors.UnaryServer(grpcDecider))}

	nopSrv := []grpc.ServerOption{grpc.UnaryInterceptor(nopServer)}
	nopCli := grpc.WithUnaryInterceptor(nopClient)

	b.Run("baseline=grpc", func(b *testing.B) {
		runUnary(b, grpcConn(b, nil), bare)
	})
	b.Run("baseline=grpc+nop-server", func(b *testing.B) {
		runUnary(b, grpcConn(b, nopSrv), bare)
	})
	b.Run("baseline=grpc+nop-client", func(b *testing.B) {
		runUnary(b, grpcConn(b, nil, nopCli), bare)
	})
	b.Run("baseline=grpc+nop-server+client", func(b *testing.B) {
		runUnary(b, grpcConn(b, nopSrv, nopCli), bare)
	})
	b.Run("canary=server", func(b *testing.B) {
		runUnary(b, grpcConn(b, server), bare)
	})
	b.Run("canary=client", func(b *testing.B) {
		runUnary(b, grpcConn(b, nil, grpc.WithUnaryInterceptor(interceptors.UnaryClient())), labelled)
	})
	b.Run("canary=server+client", func(b *testing.B) {
		runUnary(b, grpcConn(b, server, grpc.WithUnaryInterceptor(interceptors.UnaryClient())), labelled)
	})
	b.Run("canary=server+client+signed", func(b *testing.B) {
		signer, err := tenant.NewDecisionSigner([]byte("benchmark-decision-key-0123456789"))
		if err != nil {
			b.Fatal(err)
		}
		client := grpc.WithUnaryInterceptor(interceptors.UnaryClient(interceptors.WithSigner(signer.LabelSigner(0, nil))))
		runUnary(b, grpcConn(b, server, client), labelled)
	})
	b.Run("canary=server+client+engine", func(b *testing.B) {
		plan, err := canary.ParsePlan([]byte("version: 7\nsalt: checkout-v2\ncanary_percent: 12.5\n"))
		if err != nil {
			b.Fatal(err)
		}
		eng, err := canary.New(canary.WithPlan(plan), canary.WithUserHashKey([]byte("benchmark-key-0123456789abcdef")))
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { _ = eng.Close() })
		srv := []grpc.ServerOption{grpc.UnaryInterceptor(interceptors.UnaryServer(eng))}
		runUnary(b, grpcConn(b, srv, grpc.WithUnaryInterceptor(interceptors.UnaryClient())), labelled)
	})
}

// BenchmarkInterceptorsDirect calls the interceptors without grpc around
// them, with the context grpc would hand them (incoming metadata as the
// transport builds it, a TCP peer), and a handler / invoker that does
// nothing: the figures are canary's own cost per call, free of the transport's
// noise.
func BenchmarkInterceptorsDirect(b *testing.B) {
	b.Run("server", func(b *testing.B) {
		ctx := metadata.NewIncomingContext(context.Background(), metadata.MD{
			":authority": {"bench"}, "content-type": {"application/grpc"}, "user-agent": {"grpc-go/1.85.0"},
			"te": {"trailers"}, "x-tenant-id": {"globex"}, "x-user-id": {"user-12345"},
		})
		ctx = peer.NewContext(ctx, &peer.Peer{Addr: &net.TCPAddr{IP: net.IPv4(10, 0, 0, 7), Port: 40000}})
		in := interceptors.UnaryServer(grpcDecider)
		info := &grpc.UnaryServerInfo{FullMethod: "/grpc.health.v1.Health/Check"}
		handler := func(ctx context.Context, _ any) (any, error) { return nil, nil }
		b.ReportAllocs()
		for b.Loop() {
			if _, err := in(ctx, nil, info, handler); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("stream-server", func(b *testing.B) {
		ctx := metadata.NewIncomingContext(context.Background(), metadata.MD{
			":authority": {"bench"}, "content-type": {"application/grpc"}, "user-agent": {"grpc-go/1.85.0"},
			"te": {"trailers"}, "x-tenant-id": {"globex"}, "x-user-id": {"user-12345"},
		})
		ctx = peer.NewContext(ctx, &peer.Peer{Addr: &net.TCPAddr{IP: net.IPv4(10, 0, 0, 7), Port: 40000}})
		ss := &benchStream{ctx: ctx}
		in := interceptors.StreamServer(grpcDecider)
		info := &grpc.StreamServerInfo{FullMethod: "/grpc.health.v1.Health/Watch", IsServerStream: true}
		handler := func(any, grpc.ServerStream) error { return nil }
		b.ReportAllocs()
		for b.Loop() {
			if err := in(nil, ss, info, handler); err != nil {
				b.Fatal(err)
			}
		}
	})
	// The floor of any client interceptor that adds metadata to a call
	// whose context has none, through grpc's public API: one key appended
	// (AppendToOutgoingContext), or a one-key MD attached
	// (NewOutgoingContext). Canary's client row sends three keys.
	invoke := func(b *testing.B, in grpc.UnaryClientInterceptor) {
		ctx := tenant.NewContext(context.Background(), grpcLabels)
		invoker := func(context.Context, string, any, any, *grpc.ClientConn, ...grpc.CallOption) error { return nil }
		b.ReportAllocs()
		for b.Loop() {
			if err := in(ctx, "/grpc.health.v1.Health/Check", nil, nil, nil, invoker); err != nil {
				b.Fatal(err)
			}
		}
	}
	b.Run("floor=client-AppendToOutgoingContext", func(b *testing.B) {
		invoke(b, func(ctx context.Context, method string, req, reply any, cc *grpc.ClientConn, invoker grpc.UnaryInvoker, opts ...grpc.CallOption) error {
			l, _ := tenant.FromContext(ctx)
			return invoker(metadata.AppendToOutgoingContext(ctx, tenant.GRPC.Tenant, l.Tenant), method, req, reply, cc, opts...)
		})
	})
	b.Run("floor=client-NewOutgoingContext", func(b *testing.B) {
		invoke(b, func(ctx context.Context, method string, req, reply any, cc *grpc.ClientConn, invoker grpc.UnaryInvoker, opts ...grpc.CallOption) error {
			l, _ := tenant.FromContext(ctx)
			md := metadata.MD{tenant.GRPC.Tenant: {l.Tenant}}
			return invoker(metadata.NewOutgoingContext(ctx, md), method, req, reply, cc, opts...)
		})
	})
	b.Run("client", func(b *testing.B) {
		ctx := tenant.NewContext(context.Background(), grpcLabels)
		in := interceptors.UnaryClient()
		invoker := func(context.Context, string, any, any, *grpc.ClientConn, ...grpc.CallOption) error { return nil }
		b.ReportAllocs()
		for b.Loop() {
			if err := in(ctx, "/grpc.health.v1.Health/Check", nil, nil, nil, invoker); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// benchStream is the server stream grpc would hand a stream interceptor:
// only its context is used.
type benchStream struct {
	grpc.ServerStream
	ctx context.Context
}

func (s *benchStream) Context() context.Context { return s.ctx }
