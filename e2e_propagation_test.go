package canary

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-chi/chi/v5"
	"go.opentelemetry.io/contrib/instrumentation/google.golang.org/grpc/otelgrpc"
	"go.opentelemetry.io/otel/propagation"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/metadata"

	"github.com/reqcanary/canary/tenant"
)

// The end-to-end proof of issue 3: real servers on loopback, each with its
// own engine and a plan unlike the others.
//
//	client ──HTTP──▶ edge (chi, WithEdge, 30 %) ──canary.Transport──▶ internal (chi, 70 %)
//	       ──gRPC unary + server stream (otelgrpc stats handlers)──▶ backend (gRPC, 5 %)
//
// The edge decides; every later hop must carry exactly that decision.

var (
	e2eDecisionKey = []byte("e2e-shared-decision-key-0123456789")
	e2eEdgeHashKey = []byte("e2e-edge-user-hash-key-0123456789")
)

const (
	e2eUsers     = 1000
	e2eEdgePlan  = "version: 1\nsalt: e2e-edge\ncanary_percent: 30\noverride:\n  trusted_cidrs: [10.0.0.0/8]\n"
	e2eInnerPlan = "version: 2\nsalt: e2e-internal\ncanary_percent: 70\n"
	e2eBackPlan  = "version: 3\nsalt: e2e-backend\ncanary_percent: 5\n"
)

// hopSeen is what one hop's handler saw for one user.
type hopSeen struct {
	labels    tenant.Labels
	ok        bool
	wire      []string // every header or metadata key and value, "key: value"
	spanTrace string   // gRPC: the trace id of the stats handler's span
}

// hops records what each hop saw, by "hop/user index".
type hops struct {
	mu   sync.Mutex
	seen map[string]hopSeen
}

func (h *hops) put(hop, i string, s hopSeen) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.seen[hop+"/"+i] = s
}

func (h *hops) get(hop string, i int) (hopSeen, bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	s, ok := h.seen[fmt.Sprintf("%s/%d", hop, i)]
	return s, ok
}

func flatHTTP(hd http.Header) []string {
	var out []string
	for k, vs := range hd {
		for _, v := range vs {
			out = append(out, k+": "+v)
		}
	}
	return out
}

func flatMD(md metadata.MD) []string {
	var out []string
	for k, vs := range md {
		for _, v := range vs {
			out = append(out, k+": "+v)
		}
	}
	return out
}

// backend is the gRPC service at the end of the chain.
type backend struct {
	healthpb.UnimplementedHealthServer
	rec *hops
}

func (b *backend) record(ctx context.Context, hop, service string) {
	l, ok := tenant.FromContext(ctx)
	md, _ := metadata.FromIncomingContext(ctx)
	b.rec.put(hop, service, hopSeen{labels: l, ok: ok, wire: flatMD(md),
		spanTrace: trace.SpanContextFromContext(ctx).TraceID().String()})
}

func (b *backend) Check(ctx context.Context, req *healthpb.HealthCheckRequest) (*healthpb.HealthCheckResponse, error) {
	b.record(ctx, "grpc-unary", req.GetService())
	return &healthpb.HealthCheckResponse{Status: healthpb.HealthCheckResponse_SERVING}, nil
}

func (b *backend) Watch(req *healthpb.HealthCheckRequest, st grpc.ServerStreamingServer[healthpb.HealthCheckResponse]) error {
	b.record(st.Context(), "grpc-stream", req.GetService())
	return st.Send(&healthpb.HealthCheckResponse{Status: healthpb.HealthCheckResponse_SERVING})
}

func e2eEngine(t *testing.T, plan string, opts ...Option) *Engine {
	t.Helper()
	p, err := ParsePlan([]byte(plan))
	if err != nil {
		t.Fatal(err)
	}
	e, err := New(append([]Option{WithPlan(p)}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = e.Close() })
	return e
}

func TestEndToEndPropagation(t *testing.T) {
	rec := &hops{seen: map[string]hopSeen{}}
	tp := sdktrace.NewTracerProvider()
	t.Cleanup(func() { _ = tp.Shutdown(context.Background()) })
	prop := propagation.TraceContext{}

	edgeEng := e2eEngine(t, e2eEdgePlan, WithEdge(), WithSigningKey(e2eDecisionKey), WithUserHashKey(e2eEdgeHashKey))
	innerEng := e2eEngine(t, e2eInnerPlan, WithSigningKey(e2eDecisionKey), WithUserHashKey([]byte("e2e-internal-hash-key-0123456789")))
	backEng := e2eEngine(t, e2eBackPlan, WithSigningKey(e2eDecisionKey), WithUserHashKey([]byte("e2e-backend-hash-key-01234567890")))

	// Backend: gRPC with otelgrpc's server stats handler and the engine's
	// interceptors as method values.
	gsrv := grpc.NewServer(
		grpc.StatsHandler(otelgrpc.NewServerHandler(otelgrpc.WithTracerProvider(tp), otelgrpc.WithPropagators(prop))),
		grpc.UnaryInterceptor(backEng.UnaryServerInterceptor),
		grpc.StreamInterceptor(backEng.StreamServerInterceptor),
	)
	healthpb.RegisterHealthServer(gsrv, &backend{rec: rec})
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	served := make(chan struct{})
	go func() { defer close(served); _ = gsrv.Serve(lis) }()
	t.Cleanup(func() { gsrv.Stop(); <-served })

	conn, err := grpc.NewClient(lis.Addr().String(),
		grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithStatsHandler(otelgrpc.NewClientHandler(otelgrpc.WithTracerProvider(tp), otelgrpc.WithPropagators(prop))),
		grpc.WithUnaryInterceptor(innerEng.UnaryClientInterceptor),
		grpc.WithStreamInterceptor(innerEng.StreamClientInterceptor),
	)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = conn.Close() })
	health := healthpb.NewHealthClient(conn)

	// Internal chi service: records, then calls the backend twice.
	inner := chi.NewRouter()
	inner.Use(innerEng.Middleware)
	inner.Get("/internal", func(w http.ResponseWriter, r *http.Request) {
		i := r.URL.Query().Get("i")
		l, ok := tenant.FromContext(r.Context())
		rec.put("internal", i, hopSeen{labels: l, ok: ok, wire: flatHTTP(r.Header)})
		ctx := r.Context()
		if _, err := health.Check(ctx, &healthpb.HealthCheckRequest{Service: i}); err != nil {
			http.Error(w, "check: "+err.Error(), http.StatusBadGateway)
			return
		}
		st, err := health.Watch(ctx, &healthpb.HealthCheckRequest{Service: i})
		if err == nil {
			_, err = st.Recv()
		}
		if err != nil {
			http.Error(w, "watch: "+err.Error(), http.StatusBadGateway)
			return
		}
		for { // drain to the end of the stream so it is finished, not cancelled
			if _, err := st.Recv(); err != nil {
				break
			}
		}
		w.WriteHeader(http.StatusNoContent)
	})
	innerSrv := httptest.NewServer(inner)
	t.Cleanup(innerSrv.Close)

	// Edge chi service: labels, then calls the internal service through
	// canary.Transport.
	edgeBase := &http.Transport{MaxIdleConnsPerHost: 16}
	t.Cleanup(edgeBase.CloseIdleConnections)
	edgeClient := &http.Client{Transport: edgeEng.Transport(edgeBase), Timeout: 10 * time.Second}
	edge := chi.NewRouter()
	edge.Use(edgeEng.Middleware)
	edge.Get("/edge", func(w http.ResponseWriter, r *http.Request) {
		i := r.URL.Query().Get("i")
		l, ok := tenant.FromContext(r.Context())
		rec.put("edge", i, hopSeen{labels: l, ok: ok, wire: flatHTTP(r.Header)})
		req, _ := http.NewRequestWithContext(r.Context(), http.MethodGet, innerSrv.URL+"/internal?i="+url.QueryEscape(i), nil)
		// A careless handler that forwards every inbound header: canary must
		// still never leak the user id or the client's decision.
		for k, vs := range r.Header {
			req.Header[k] = vs
		}
		resp, err := edgeClient.Do(req)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadGateway)
			return
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != http.StatusNoContent {
			http.Error(w, fmt.Sprintf("internal: %d %s", resp.StatusCode, body), http.StatusBadGateway)
			return
		}
		w.WriteHeader(http.StatusNoContent)
	})
	edgeSrv := httptest.NewServer(edge)
	t.Cleanup(edgeSrv.Close)

	// The outside clients. Every other one attacks: it sends a decision
	// validly signed with the shared key (as if captured) for the opposite
	// cohort, canary baggage and an X-Canary override.
	hasher, _ := tenant.NewUserHasher(e2eEdgeHashKey)
	attacker, _ := tenant.NewDecisionSigner(e2eDecisionKey)
	type user struct{ tenant, id, trace string }
	users := make([]user, e2eUsers)
	for i := range users {
		users[i] = user{tenant: fmt.Sprintf("t%d", i%7), id: fmt.Sprintf("u%04d@example.com", i), trace: fmt.Sprintf("%032x", 0xabc00000+i)}
	}
	clientBase := &http.Transport{MaxIdleConnsPerHost: 16}
	t.Cleanup(clientBase.CloseIdleConnections)
	client := &http.Client{Transport: clientBase, Timeout: 10 * time.Second}

	work := make(chan int)
	errs := make(chan error, e2eUsers)
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			for i := range work {
				u := users[i]
				req, _ := http.NewRequest(http.MethodGet, fmt.Sprintf("%s/edge?i=%d", edgeSrv.URL, i), nil)
				req.Header.Set(tenant.HeaderTenant, u.tenant)
				req.Header.Set(tenant.HeaderUser, u.id)
				req.Header.Set(tenant.HeaderTraceParent, "00-"+u.trace+"-00f067aa0ba902b7-01")
				if i%2 == 1 {
					bucket := tenant.BucketOf("e2e-edge", u.tenant, u.id)
					opposite := tenant.Canary
					if bucket < 3000 {
						opposite = tenant.Stable
					}
					forged, err := attacker.SignLabels(tenant.Labels{Tenant: u.tenant, UserHash: hasher.Hash(u.tenant, u.id),
						Bucket: bucket, Cohort: opposite, Reason: tenant.ReasonOverride, PlanVersion: 1}, time.Now().Add(time.Minute))
					if err != nil {
						errs <- err
						continue
					}
					req.Header.Set(tenant.HeaderDecision, forged)
					req.Header.Set(tenant.HeaderBaggage, "canary.cohort="+string(opposite)+",canary.bucket=1")
					req.Header.Set(tenant.HeaderOverride, string(opposite))
				}
				resp, err := client.Do(req)
				if err != nil {
					errs <- err
					continue
				}
				body, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				if resp.StatusCode != http.StatusNoContent {
					errs <- fmt.Errorf("user %d: %d %s", i, resp.StatusCode, body)
				}
			}
		})
	}
	for i := range users {
		work <- i
	}
	close(work)
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}

	canaries := 0
	for i, u := range users {
		bucket := tenant.BucketOf("e2e-edge", u.tenant, u.id)
		want := tenant.Labels{Tenant: u.tenant, UserHash: hasher.Hash(u.tenant, u.id), Bucket: bucket,
			Cohort: tenant.Stable, Reason: tenant.ReasonPercent, TraceID: u.trace, PlanVersion: 1}
		if bucket < 3000 {
			want.Cohort = tenant.Canary
			canaries++
		}
		edgeSeen, _ := rec.get("edge", i)
		if edgeSeen.labels != want {
			t.Errorf("user %d (attacker=%v): edge labels %+v\nwant %+v", i, i%2 == 1, edgeSeen.labels, want)
		}
		down := want
		down.Reason = tenant.ReasonUpstream
		for _, hop := range []string{"internal", "grpc-unary", "grpc-stream"} {
			s, ok := rec.get(hop, i)
			if !ok || !s.ok {
				t.Errorf("user %d: %s saw no labels", i, hop)
				continue
			}
			if s.labels != down {
				t.Errorf("user %d: %s labels %+v\nwant %+v", i, hop, s.labels, down)
			}
			if hop != "internal" && s.spanTrace != u.trace {
				t.Errorf("user %d: %s stats handler span in trace %s, want %s", i, hop, s.spanTrace, u.trace)
			}
			for _, kv := range s.wire {
				if strings.Contains(kv, u.id) || strings.HasPrefix(strings.ToLower(kv), "x-user-id:") {
					t.Errorf("user %d: raw user id reached %s: %q", i, hop, kv)
				}
			}
		}
		if t.Failed() && i > 20 {
			t.FailNow() // enough detail
		}
	}
	if canaries < 250 || canaries > 350 {
		t.Errorf("%d of %d users canary at 30 %%", canaries, e2eUsers)
	}
	for name, e := range map[string]*Engine{"internal": innerEng, "backend": backEng} {
		if n := e.RejectedDecisions(); n != 0 {
			t.Errorf("%s engine rejected %d decisions, want 0", name, n)
		}
	}
}
