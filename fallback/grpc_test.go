package fallback

import (
	"context"
	"errors"
	"net"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/reqcanary/canary/tenant"
)

const checkMethod = "/grpc.health.v1.Health/Check"

// grpcServer is a real gRPC server with the health service whose behaviour
// can be switched: it answers, hangs until the call is canceled, or fails
// with Unavailable.
type grpcServer struct {
	addr string
	hits atomic.Int64
	mode atomic.Value // "ok", "hang", "unavailable"
}

func newGRPCServer(t *testing.T, name string) *grpcServer {
	t.Helper()
	s := &grpcServer{}
	s.mode.Store("ok")
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s.addr = l.Addr().String()
	srv := grpc.NewServer(grpc.UnaryInterceptor(func(ctx context.Context, req any, info *grpc.UnaryServerInfo, h grpc.UnaryHandler) (any, error) {
		s.hits.Add(1)
		grpc.SetHeader(ctx, metadata.Pairs("x-served-by", name))
		switch s.mode.Load() {
		case "hang":
			<-ctx.Done()
			return nil, status.Error(codes.Canceled, "canceled")
		case "unavailable":
			return nil, status.Error(codes.Unavailable, "going away")
		}
		return h(ctx, req)
	}))
	hs := health.NewServer()
	hs.SetServingStatus("svc", healthpb.HealthCheckResponse_SERVING)
	healthpb.RegisterHealthServer(srv, hs)
	go srv.Serve(l)
	t.Cleanup(srv.Stop)
	return s
}

func dial(t *testing.T, addr string, opts ...grpc.DialOption) *grpc.ClientConn {
	t.Helper()
	cc, err := grpc.NewClient(addr, append(opts, grpc.WithTransportCredentials(insecure.NewCredentials()))...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cc.Close() })
	return cc
}

// grpcSetup returns a health client on the stable connection with the
// interceptor, whose canary connection goes to canaryAddr.
func grpcSetup(t *testing.T, canaryAddr, stableAddr string, tweak func(*GRPCConfig)) healthpb.HealthClient {
	t.Helper()
	cfg := GRPCConfig{Canary: dial(t, canaryAddr), Timeout: 150 * time.Millisecond}
	if tweak != nil {
		tweak(&cfg)
	}
	ic, err := NewUnaryClientInterceptor(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return healthpb.NewHealthClient(dial(t, stableAddr, grpc.WithUnaryInterceptor(ic)))
}

// check calls Check in cohort and returns who answered ("" on error).
func check(client healthpb.HealthClient, cohort tenant.Cohort, service string) (string, error) {
	ctx, cancel := context.WithTimeout(labelled(cohort, "acme", ""), 5*time.Second)
	defer cancel()
	var md metadata.MD
	_, err := client.Check(ctx, &healthpb.HealthCheckRequest{Service: service}, grpc.Header(&md))
	if err != nil {
		return "", err
	}
	return strings.Join(md.Get("x-served-by"), ","), nil
}

func TestGRPCCohortPicksConnection(t *testing.T) {
	canary, stable := newGRPCServer(t, "canary"), newGRPCServer(t, "stable")
	client := grpcSetup(t, canary.addr, stable.addr, nil)
	for cohort, want := range map[tenant.Cohort]string{tenant.Canary: "canary", tenant.Stable: "stable"} {
		if got, err := check(client, cohort, "svc"); err != nil || got != want {
			t.Errorf("%s cohort served by %q (%v), want %q", cohort, got, err, want)
		}
	}
	ctx := context.Background()
	if _, err := client.Check(ctx, &healthpb.HealthCheckRequest{Service: "svc"}); err != nil || canary.hits.Load() != 1 {
		t.Fatalf("a call without labels: %v, canary hits %d", err, canary.hits.Load())
	}
}

func TestGRPCFallbackRules(t *testing.T) {
	for _, tc := range []struct {
		name       string
		mode       string // canary behaviour; "" = refused connection
		idempotent bool
		wantBy     string
		wantCode   codes.Code
		notReplay  bool
	}{
		{"refused, not idempotent", "", false, "stable", codes.OK, false},
		{"timeout, idempotent", "hang", true, "stable", codes.OK, false},
		{"timeout, not idempotent", "hang", false, "", codes.DeadlineExceeded, true},
		{"unavailable, idempotent", "unavailable", true, "stable", codes.OK, false},
		{"unavailable, not idempotent", "unavailable", false, "", codes.Unavailable, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			stable := newGRPCServer(t, "stable")
			canaryAddr := refusedURL(t)[len("http://"):]
			if tc.mode != "" {
				c := newGRPCServer(t, "canary")
				c.mode.Store(tc.mode)
				canaryAddr = c.addr
			}
			client := grpcSetup(t, canaryAddr, stable.addr, func(c *GRPCConfig) {
				if tc.idempotent {
					c.IdempotentMethods = []string{checkMethod}
				}
			})
			got, err := check(client, tenant.Canary, "svc")
			if status.Code(err) != tc.wantCode || got != tc.wantBy {
				t.Fatalf("served by %q, error %v; want %q, code %v", got, err, tc.wantBy, tc.wantCode)
			}
			if errors.Is(err, ErrNotReplayed) != tc.notReplay {
				t.Fatalf("error %v: ErrNotReplayed = %v, want %v", err, !tc.notReplay, tc.notReplay)
			}
			if want := int64(0); tc.wantBy == "stable" {
				want = 1
				if stable.hits.Load() != want {
					t.Fatalf("stable hits %d, want %d", stable.hits.Load(), want)
				}
			} else if stable.hits.Load() != want {
				t.Fatal("a call that may have been sent was replayed to stable")
			}
		})
	}
}

func TestGRPCCircuitOpenSwitchesAnyMethod(t *testing.T) {
	reader, mp := newReader()
	canary, stable := newGRPCServer(t, "canary"), newGRPCServer(t, "stable")
	canary.mode.Store("unavailable")
	client := grpcSetup(t, canary.addr, stable.addr, func(c *GRPCConfig) {
		c.Breaker = BreakerConfig{Failures: 1, Delay: time.Minute}
		c.MeterProvider = mp
	})
	if _, err := check(client, tenant.Canary, "svc"); status.Code(err) != codes.Unavailable {
		t.Fatalf("first call: %v, want the canary's Unavailable", err)
	}
	hits := canary.hits.Load()
	if got, err := check(client, tenant.Canary, "svc"); err != nil || got != "stable" {
		t.Fatalf("with the circuit open: served by %q, %v; want stable", got, err)
	}
	if canary.hits.Load() != hits {
		t.Fatal("the canary was called with its circuit open")
	}
	m := collect(t, reader)
	if v := m[MetricFallbacks]["canary.fallback.from=canary,canary.fallback.reason=circuit-open,canary.fallback.to=stable"]; v != 1 {
		t.Errorf("fallbacks %v", m[MetricFallbacks])
	}
	if v := m[MetricCircuitState]["canary.endpoint=canary"]; v != 2 {
		t.Errorf("circuit state %v, want open (2)", m[MetricCircuitState])
	}
}

func TestGRPCApplicationErrorsAreAnswers(t *testing.T) {
	canary, stable := newGRPCServer(t, "canary"), newGRPCServer(t, "stable")
	client := grpcSetup(t, canary.addr, stable.addr, func(c *GRPCConfig) { c.IdempotentMethods = []string{checkMethod} })
	if _, err := check(client, tenant.Canary, "unknown-service"); status.Code(err) != codes.NotFound {
		t.Fatalf("error %v, want the canary's NotFound", err)
	}
	if stable.hits.Load() != 0 {
		t.Fatal("an application error caused a fallback")
	}
}

func TestGRPCConfigErrors(t *testing.T) {
	cc := dial(t, "127.0.0.1:1")
	for _, tc := range []struct {
		cfg  GRPCConfig
		want string
	}{
		{GRPCConfig{}, "fallback: GRPCConfig.Canary: missing"},
		{GRPCConfig{Canary: cc, Timeout: -1}, "fallback: GRPCConfig.Timeout: -1ns is negative"},
		{GRPCConfig{Canary: cc, IdempotentMethods: []string{"Check"}}, "fallback: GRPCConfig.IdempotentMethods[0]: \"Check\" is not a full method name"},
		{GRPCConfig{Canary: cc, Breaker: BreakerConfig{Failures: 3, Of: 2}}, "fallback: GRPCConfig.Breaker.Of: 2 is less than Breaker.Failures 3"},
	} {
		if _, err := NewUnaryClientInterceptor(tc.cfg); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("error %v, want %q", err, tc.want)
		}
	}
}
