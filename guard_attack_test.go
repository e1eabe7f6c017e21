package canary

import (
	"context"
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/reqcanary/canary/internal/guard"
	"github.com/reqcanary/canary/tenant"
)

// Issue 12, "The guard must measure the service, not its clients": each test
// plays an attack a client can make and checks the guard is not fooled.

// cohortUsers returns n users of tenant shop that guardPlan puts in cohort
// c, named with prefix.
func cohortUsers(t *testing.T, e *Engine, c tenant.Cohort, prefix string, n int) []string {
	t.Helper()
	var out []string
	for i := 0; len(out) < n; i++ {
		if i > 100*n {
			t.Fatalf("fewer than %d %s users among %d", n, c, i)
		}
		u := prefix + strconv.Itoa(i)
		if decideUser(t, e, u).Cohort == c {
			out = append(out, u)
		}
	}
	return out
}

// shopHandler answers 500 when the request's X-Fail header is set, and 503
// when the request's context is done before it answers (a database call
// cancelled under it); with X-Wait it waits for that first.
var shopHandler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
	if r.Header.Get("X-Wait") != "" {
		<-r.Context().Done()
	}
	switch {
	case r.Context().Err() != nil:
		http.Error(w, "query cancelled", http.StatusServiceUnavailable)
	case r.Header.Get("X-Fail") != "":
		http.Error(w, "boom", http.StatusInternalServerError)
	default:
		w.WriteHeader(http.StatusOK)
	}
})

// serve sends one request of user u (tenant shop) through h; fail makes the
// handler answer 500; ctx is the request's context (a cancelled one plays a
// client that went away while the handler ran).
func serve(h http.Handler, ctx context.Context, tenantID, u string, fail bool) {
	req := httptest.NewRequestWithContext(ctx, http.MethodGet, "/", nil)
	req.RemoteAddr = "192.0.2.9:1234"
	req.Header.Set("X-Tenant-ID", tenantID)
	if u != "" {
		req.Header.Set("X-User-ID", u)
	}
	if fail {
		req.Header.Set("X-Fail", "1")
	}
	h.ServeHTTP(httptest.NewRecorder(), req)
}

// normalSecond serves one simulated second of healthy traffic: stable 200
// requests and canary 20, each from its own user, failing 1 in 100 (stable)
// and canaryFail of 20 (canary).
func normalSecond(h http.Handler, stable, canaryUsers []string, sec, canaryFail int) {
	ctx := context.Background()
	for i := range 200 {
		serve(h, ctx, "shop", stable[(sec*200+i)%len(stable)], i%100 == 0)
	}
	for i := range 20 {
		serve(h, ctx, "shop", canaryUsers[(sec*20+i)%len(canaryUsers)], i < canaryFail)
	}
}

var cancelledCtx = func() context.Context {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	return ctx
}()

// noLatencyRule is the guard of the tests that must not trip: they are about
// counting failures and cancellations, and the latencies they would compare
// are real sub-microsecond handler times, which a loaded machine skews
// (canary p95 2.5 µs against stable 0.5 µs tripped the latency rule).
var noLatencyRule = GuardConfig{Enabled: true, DisableLatencyRule: true}

// A flood of canary requests whose clients went away (the handler then
// answers 503, as a cancelled query would) beside healthy traffic never trips
// the guard, over ten simulated minutes.
func TestGuardIgnoresClientCancelledCanaryFlood(t *testing.T) {
	e, clk := newGuardEngine(t, WithGuard(noLatencyRule))
	h := e.Middleware(shopHandler)
	stable := cohortUsers(t, e, tenant.Stable, "s", 400)
	canaryUsers := cohortUsers(t, e, tenant.Canary, "c", 400)
	for sec := range 600 {
		normalSecond(h, stable, canaryUsers, sec, 0)
		for i := range 100 { // the attacker: many canary users, every request aborted
			serve(h, cancelledCtx, "shop", canaryUsers[(sec*100+i)%len(canaryUsers)], false)
		}
		clk.Advance(time.Second)
		e.evaluateGuard()
		if s := e.Status(); s.Guard.Tripped {
			t.Fatalf("second %d: a flood of client-cancelled canary requests tripped the guard: %+v", sec, s.Guard.Trip)
		}
	}
	s := e.Status().Guard
	if s.Canary.ClientCancelled == 0 || s.Canary.Failures > s.Canary.Requests/10 {
		t.Fatalf("canary figures %+v: want the cancelled requests counted apart, not as failures", s.Canary)
	}
}

// A canary really failing 20 % still trips within 5 s while a client floods
// the stable cohort with cancelled requests (which, counted as stable
// failures, would hide it).
func TestGuardTripsDespiteCancelledStableFlood(t *testing.T) {
	e, clk := newGuardEngine(t, WithGuard(GuardConfig{Enabled: true}))
	h := e.Middleware(shopHandler)
	stable := cohortUsers(t, e, tenant.Stable, "s", 400)
	canaryUsers := cohortUsers(t, e, tenant.Canary, "c", 400)
	for sec := range 10 {
		normalSecond(h, stable, canaryUsers, sec, 4) // canary 4 of 20 fail: 20 %
		for i := range 1000 {
			serve(h, cancelledCtx, "shop", stable[(sec*1000+i)%len(stable)], false)
		}
		clk.Advance(time.Second)
		e.evaluateGuard()
		if s := e.Status(); s.Guard.Tripped {
			if sec+1 > 5 {
				t.Fatalf("tripped after %d s, want within 5", sec+1)
			}
			if s.Guard.Stable.ClientCancelled == 0 {
				t.Errorf("stable figures %+v: the cancelled flood is not counted apart", s.Guard.Stable)
			}
			return
		}
	}
	t.Fatalf("a canary failing 20 %% did not trip within 10 s beside a cancelled stable flood: %+v", e.Status().Guard)
}

// One canary user sending many failing requests cannot trip the guard
// alone, and neither can one canary tenant without users.
func TestGuardOneUnitCannotTrip(t *testing.T) {
	for _, tc := range []struct {
		name, tenant, user string
	}{
		{"one user", "shop", ""}, // user filled in below
		{"one tenant without users", "acme", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			clk := guard.NewManualClock(t0)
			e := newTestEngine(t, guardPlan+"tenants:\n  canary: [acme]\n", withGuardClock(clk),
				WithGuard(noLatencyRule))
			h := e.Middleware(shopHandler)
			stable := cohortUsers(t, e, tenant.Stable, "s", 400)
			canaryUsers := cohortUsers(t, e, tenant.Canary, "c", 400)
			user := tc.user
			if tc.tenant == "shop" {
				user = canaryUsers[0]
			}
			for sec := range 120 {
				normalSecond(h, stable, canaryUsers[1:], sec, 0)
				for range 200 {
					serve(h, context.Background(), tc.tenant, user, true)
				}
				clk.Advance(time.Second)
				e.evaluateGuard()
				if s := e.Status(); s.Guard.Tripped {
					t.Fatalf("second %d: one unit's failing requests tripped the guard: %+v", sec, s.Guard.Trip)
				}
			}
		})
	}
}

// HTTP clients that reset their connection while the handler runs, through
// a real server: 300 aborted canary requests do not trip the guard.
func TestGuardHTTPClientAbortsDoNotTrip(t *testing.T) {
	e, clk := newGuardEngine(t, WithGuard(noLatencyRule))
	h := e.Middleware(shopHandler)
	stable := cohortUsers(t, e, tenant.Stable, "s", 400)
	canaryUsers := cohortUsers(t, e, tenant.Canary, "c", 400)
	normalSecond(h, stable, canaryUsers, 0, 0)

	var started sync.WaitGroup
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		started.Done()
		h.ServeHTTP(w, r)
	}))
	defer srv.Close()
	for i := range 300 {
		ctx, cancel := context.WithCancel(context.Background())
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, srv.URL, nil)
		req.Header.Set("X-Tenant-ID", "shop")
		req.Header.Set("X-User-ID", canaryUsers[i%len(canaryUsers)])
		req.Header.Set("X-Wait", "1")
		started.Add(1)
		done := make(chan error, 1)
		go func() {
			resp, err := srv.Client().Do(req)
			if err == nil {
				resp.Body.Close()
			}
			done <- err
		}()
		started.Wait()
		cancel() // the client goes away: net/http closes the connection
		if err := <-done; !errors.Is(err, context.Canceled) {
			t.Fatalf("request %d: %v, want the client's cancellation", i, err)
		}
	}
	// The server notices each reset, cancels the request context, and the
	// handler answers 503 into the void: wait until all were recorded.
	deadline := time.Now().Add(10 * time.Second)
	for e.Status().Guard.Canary.Requests+e.Status().Guard.Canary.ClientCancelled < 320 {
		if time.Now().After(deadline) {
			t.Fatalf("the aborted requests were not all reported: %+v", e.Status().Guard.Canary)
		}
		time.Sleep(10 * time.Millisecond)
	}
	e.evaluateGuard()
	if s := e.Status(); s.Guard.Tripped || s.Guard.Canary.ClientCancelled != 300 {
		t.Fatalf("300 aborted canary requests: tripped %v, canary %+v; want no trip and 300 client-cancelled",
			s.Guard.Tripped, s.Guard.Canary)
	}
	_ = clk
}

// gRPC clients with their own 1 ms deadline, through a real server: 200
// calls do not trip the guard, and are counted client-cancelled.
func TestGuardGRPCClientDeadlinesDoNotTrip(t *testing.T) {
	e, _ := newGuardEngine(t, WithGuard(noLatencyRule))
	h := e.Middleware(shopHandler)
	stable := cohortUsers(t, e, tenant.Stable, "s", 400)
	canaryUsers := cohortUsers(t, e, tenant.Canary, "c", 400)
	normalSecond(h, stable, canaryUsers, 0, 0)

	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := grpc.NewServer(grpc.UnaryInterceptor(e.UnaryServerInterceptor), grpc.ForceServerCodec(rawCodec{}))
	srv.RegisterService(&grpc.ServiceDesc{
		ServiceName: "shop.Cart",
		HandlerType: (*any)(nil),
		Methods: []grpc.MethodDesc{{MethodName: "Add", Handler: func(_ any, ctx context.Context, dec func(any) error, in grpc.UnaryServerInterceptor) (any, error) {
			var req []byte
			_ = dec(&req)
			call := func(ctx context.Context, _ any) (any, error) {
				<-ctx.Done() // a slow query, cut off by the client's deadline
				return nil, status.FromContextError(ctx.Err()).Err()
			}
			return in(ctx, &req, &grpc.UnaryServerInfo{FullMethod: "/shop.Cart/Add"}, call)
		}}},
	}, nil)
	go func() { _ = srv.Serve(ln) }()
	defer srv.Stop()
	conn, err := grpc.NewClient(ln.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithDefaultCallOptions(grpc.ForceCodec(rawCodec{})))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	// Warm the connection, so that the calls reach the server.
	wctx, wcancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	_ = conn.Invoke(wctx, "/shop.Cart/Add", []byte{}, new([]byte))
	wcancel()

	for i := range 200 {
		ctx, cancel := context.WithTimeout(context.Background(), time.Millisecond)
		ctx = metadata.AppendToOutgoingContext(ctx, "x-tenant-id", "shop", "x-user-id", canaryUsers[i%len(canaryUsers)])
		_ = conn.Invoke(ctx, "/shop.Cart/Add", []byte{}, new([]byte))
		cancel()
	}
	srv.GracefulStop()
	e.evaluateGuard()
	s := e.Status()
	if s.Guard.Tripped {
		t.Fatalf("200 calls with the client's 1 ms deadline tripped the guard: %+v", s.Guard.Trip)
	}
	if s.Guard.Canary.ClientCancelled < 100 || s.Guard.Canary.Failures > 0 {
		t.Fatalf("canary figures %+v: want the calls that reached the server counted client-cancelled", s.Guard.Canary)
	}
}

// rawCodec sends []byte messages as they are.
type rawCodec struct{}

func (rawCodec) Marshal(v any) ([]byte, error) {
	switch m := v.(type) {
	case []byte:
		return m, nil
	case *[]byte:
		return *m, nil
	}
	return nil, errors.New("rawCodec: not bytes")
}

func (rawCodec) Unmarshal(data []byte, v any) error {
	m, ok := v.(*[]byte)
	if !ok {
		return errors.New("rawCodec: not *[]byte")
	}
	*m = append((*m)[:0], data...)
	return nil
}

func (rawCodec) Name() string { return "raw" }
