package canary_test

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/test/bufconn"

	"github.com/reqcanary/canary"
	"github.com/reqcanary/canary/tenant"
)

// An edge decides; the internal service it calls through Transport adopts
// the signed decision exactly, although its own plan sends nobody to canary,
// and never sees the raw user id.
func ExampleEngine_Transport() {
	key := []byte("shared-decision-key-0123456789") // from a secret store in real life
	edgePlan, _ := canary.ParsePlan([]byte("version: 7\ntenants:\n  canary: [acme]\n"))
	edge, _ := canary.New(canary.WithPlan(edgePlan), canary.WithEdge(), canary.WithSigningKey(key))
	internal, _ := canary.New(canary.WithPlan(canary.Plan{Version: 1}), canary.WithSigningKey(key))
	defer edge.Close()
	defer internal.Close()

	internalSrv := httptest.NewServer(internal.Middleware(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		l, _ := tenant.FromContext(r.Context())
		fmt.Fprintf(w, "internal: %s %s %s plan %d, user id sent: %v", l.Tenant, l.Cohort, l.Reason, l.PlanVersion,
			r.Header.Get(tenant.HeaderUser) != "")
	})))
	defer internalSrv.Close()

	client := &http.Client{Transport: edge.Transport(nil)}
	defer client.CloseIdleConnections()
	edgeHandler := edge.Middleware(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		req, _ := http.NewRequestWithContext(r.Context(), http.MethodGet, internalSrv.URL, nil)
		resp, err := client.Do(req)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadGateway)
			return
		}
		defer resp.Body.Close()
		io.Copy(w, resp.Body)
	}))

	req := httptest.NewRequest(http.MethodGet, "/checkout", nil)
	req.Header.Set(tenant.HeaderTenant, "acme")
	req.Header.Set(tenant.HeaderUser, "alice")
	rec := httptest.NewRecorder()
	edgeHandler.ServeHTTP(rec, req)
	fmt.Println(rec.Body.String())
	// Output:
	// internal: acme canary upstream plan 7, user id sent: false
}

// Transport writes the calling request's labels onto outgoing requests. The
// default engine has no signing key, so no decision is sent.
func ExampleTransport() {
	srv := httptest.NewServer(http.HandlerFunc(func(_ http.ResponseWriter, r *http.Request) {
		for _, h := range []string{tenant.HeaderTenant, tenant.HeaderUser, tenant.HeaderOverride, tenant.HeaderBaggage, tenant.HeaderDecision} {
			fmt.Printf("%s: %q\n", h, r.Header.Get(h))
		}
	}))
	defer srv.Close()
	client := &http.Client{Transport: canary.Transport(nil)}
	defer client.CloseIdleConnections()

	// In a handler, the context is the labelled r.Context().
	ctx := tenant.NewContext(context.Background(), tenant.Labels{Tenant: "acme", Bucket: 1234,
		Cohort: tenant.Canary, Reason: tenant.ReasonTenantCanary})
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, srv.URL, nil)
	req.Header.Set(tenant.HeaderUser, "alice") // copied from the inbound request: removed
	resp, err := client.Do(req)
	if err != nil {
		fmt.Println(err)
		return
	}
	resp.Body.Close()
	// Output:
	// X-Tenant-ID: "acme"
	// X-User-ID: ""
	// X-Canary: "canary"
	// Baggage: "canary.cohort=canary,canary.tenant=acme,canary.bucket=1234"
	// X-Canary-Decision: ""
}

// reportingHealth is a health service whose Check prints the call's labels.
type reportingHealth struct {
	healthpb.UnimplementedHealthServer
}

func (reportingHealth) Check(ctx context.Context, _ *healthpb.HealthCheckRequest) (*healthpb.HealthCheckResponse, error) {
	l, _ := tenant.FromContext(ctx)
	md, _ := metadata.FromIncomingContext(ctx)
	fmt.Printf("server: %s %s %s plan %d, x-user-id sent: %v\n", l.Tenant, l.Cohort, l.Reason, l.PlanVersion, len(md.Get("x-user-id")) > 0)
	return &healthpb.HealthCheckResponse{Status: healthpb.HealthCheckResponse_SERVING}, nil
}

// The engine's interceptors are method values with grpc's interceptor
// types. The client side signs the calling request's decision; the server,
// sharing the key, adopts it.
func ExampleEngine_UnaryServerInterceptor() {
	key := []byte("shared-decision-key-0123456789")
	client, _ := canary.New(canary.WithSigningKey(key))
	server, _ := canary.New(canary.WithPlan(canary.Plan{Version: 2}), canary.WithSigningKey(key))
	defer client.Close()
	defer server.Close()

	srv := grpc.NewServer(
		grpc.UnaryInterceptor(server.UnaryServerInterceptor),
		grpc.StreamInterceptor(server.StreamServerInterceptor),
	)
	healthpb.RegisterHealthServer(srv, reportingHealth{})
	lis := bufconn.Listen(1 << 16)
	go srv.Serve(lis)
	defer srv.Stop()

	conn, err := grpc.NewClient("passthrough:///example",
		grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithContextDialer(func(ctx context.Context, _ string) (net.Conn, error) { return lis.DialContext(ctx) }),
		grpc.WithUnaryInterceptor(client.UnaryClientInterceptor),
		grpc.WithStreamInterceptor(client.StreamClientInterceptor),
	)
	if err != nil {
		fmt.Println(err)
		return
	}
	defer conn.Close()

	// The labels of the request being served, as the HTTP middleware left them.
	ctx := tenant.NewContext(context.Background(), tenant.Labels{Tenant: "acme", UserHash: "0f1e2d3c4b5a69788796a5b4c3d2e1f0",
		Bucket: 42, Cohort: tenant.Canary, Reason: tenant.ReasonPercent, PlanVersion: 9})
	ctx = metadata.AppendToOutgoingContext(ctx, "x-user-id", "alice") // never forwarded
	if _, err := healthpb.NewHealthClient(conn).Check(ctx, &healthpb.HealthCheckRequest{}); err != nil {
		fmt.Println(err)
	}
	// Output:
	// server: acme canary upstream plan 9, x-user-id sent: false
}

// With no configuration, the package-level interceptors use the default
// engine: 0 % canary, no signing key.
func ExampleUnaryServerInterceptor() {
	srv := grpc.NewServer(
		grpc.UnaryInterceptor(canary.UnaryServerInterceptor),
		grpc.StreamInterceptor(canary.StreamServerInterceptor),
	)
	healthpb.RegisterHealthServer(srv, reportingHealth{})
	lis := bufconn.Listen(1 << 16)
	go srv.Serve(lis)
	defer srv.Stop()

	conn, err := grpc.NewClient("passthrough:///example",
		grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithContextDialer(func(ctx context.Context, _ string) (net.Conn, error) { return lis.DialContext(ctx) }),
		grpc.WithUnaryInterceptor(canary.UnaryClientInterceptor),
		grpc.WithStreamInterceptor(canary.StreamClientInterceptor),
	)
	if err != nil {
		fmt.Println(err)
		return
	}
	defer conn.Close()

	ctx := metadata.AppendToOutgoingContext(context.Background(), "x-tenant-id", "acme", "x-user-id", "alice")
	if _, err := healthpb.NewHealthClient(conn).Check(ctx, &healthpb.HealthCheckRequest{}); err != nil {
		fmt.Println(err)
	}
	// Output:
	// server: acme stable percent plan 0, x-user-id sent: true
}
