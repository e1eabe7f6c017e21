package interceptors_test

import (
	"context"
	"fmt"
	"net"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/test/bufconn"

	"github.com/reqcanary/canary/interceptors"
	"github.com/reqcanary/canary/tenant"
)

// A server labels every call; the handler reads the labels from its context.
func ExampleUnaryServer() {
	// Any tenant.Decider; the canary engine is the usual one.
	decider := tenant.DeciderFunc(func(_ context.Context, req tenant.Request) (tenant.Labels, error) {
		t, err := tenant.ReadTenant(req.Source, req.Wire)
		if err != nil {
			return tenant.Labels{}, err
		}
		return tenant.Labels{Tenant: t, Bucket: tenant.BucketOf("salt", t, ""), Cohort: tenant.Canary,
			Reason: tenant.ReasonTenantCanary, TraceID: req.TraceID}, nil
	})
	printLabels := func(ctx context.Context, req any, _ *grpc.UnaryServerInfo, h grpc.UnaryHandler) (any, error) {
		l, _ := tenant.FromContext(ctx)
		fmt.Println("handler sees:", l.Tenant, l.Cohort, l.Reason, l.TraceID)
		return h(ctx, req)
	}
	srv := grpc.NewServer(grpc.ChainUnaryInterceptor(interceptors.UnaryServer(decider), printLabels))
	healthpb.RegisterHealthServer(srv, health.NewServer())
	lis := bufconn.Listen(1 << 16)
	go func() { _ = srv.Serve(lis) }()
	defer srv.Stop()

	conn, _ := grpc.NewClient("passthrough:///example",
		grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithContextDialer(func(ctx context.Context, _ string) (net.Conn, error) { return lis.DialContext(ctx) }))
	defer conn.Close()
	client := healthpb.NewHealthClient(conn)

	ctx := metadata.AppendToOutgoingContext(context.Background(),
		"x-tenant-id", "acme", "traceparent", "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01")
	_, err := client.Check(ctx, &healthpb.HealthCheckRequest{})
	fmt.Println("err:", err)

	ctx = metadata.AppendToOutgoingContext(context.Background(), "x-tenant-id", "acme/evil")
	_, err = client.Check(ctx, &healthpb.HealthCheckRequest{})
	fmt.Println("err:", err)
	// Output:
	// handler sees: acme canary tenant-canary 4bf92f3577b34da6a3ce929d0e0e4736
	// err: <nil>
	// err: rpc error: code = InvalidArgument desc = x-tenant-id: byte 4 is not one of [A-Za-z0-9._:-]
}

// A client writes the calling request's labels onto outgoing metadata, and
// drops the raw user id.
func ExampleUnaryClient() {
	signer, _ := tenant.NewDecisionSigner([]byte("the key every service of the chain shares"))
	show := func(ctx context.Context, method string, req, reply any, cc *grpc.ClientConn, invoker grpc.UnaryInvoker, opts ...grpc.CallOption) error {
		md, _ := metadata.FromOutgoingContext(ctx)
		fmt.Println("x-tenant-id:", md.Get("x-tenant-id"))
		fmt.Println("x-canary:", md.Get("x-canary"))
		fmt.Println("x-user-id:", md.Get("x-user-id"))
		fmt.Println("baggage:", md.Get("baggage"))
		fmt.Println("signed decision:", len(md.Get("x-canary-decision")) == 1)
		return nil // stop here: no server in this example
	}
	conn, _ := grpc.NewClient("passthrough:///example",
		grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithChainUnaryInterceptor(interceptors.UnaryClient(interceptors.WithSigner(signer.LabelSigner(0, nil))), show))
	defer conn.Close()

	// In a service, these labels come from the server interceptor or the
	// HTTP middleware that labelled the inbound request.
	ctx := tenant.NewContext(context.Background(), tenant.Labels{Tenant: "acme", Bucket: 4432,
		UserHash: "0f1e2d3c4b5a69788796a5b4c3d2e1f0", Cohort: tenant.Canary, Reason: tenant.ReasonPercent})
	ctx = metadata.AppendToOutgoingContext(ctx, "x-user-id", "alice")
	_, _ = healthpb.NewHealthClient(conn).Check(ctx, &healthpb.HealthCheckRequest{})
	// Output:
	// x-tenant-id: [acme]
	// x-canary: [canary]
	// x-user-id: []
	// baggage: [canary.cohort=canary,canary.tenant=acme,canary.bucket=4432]
	// signed decision: true
}
