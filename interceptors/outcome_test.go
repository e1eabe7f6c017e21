package interceptors_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/reqcanary/canary/interceptors"
	"github.com/reqcanary/canary/tenant"
)

// outcome is one report of WithOutcome.
type outcome struct {
	labels    tenant.Labels
	ctxLabels tenant.Labels
	code      codes.Code
	elapsed   time.Duration
}

type outcomes struct {
	mu   sync.Mutex
	list []outcome
}

func (o *outcomes) record(ctx context.Context, l tenant.Labels, code codes.Code, elapsed time.Duration) {
	cl, _ := tenant.FromContext(ctx)
	o.mu.Lock()
	o.list = append(o.list, outcome{labels: l, ctxLabels: cl, code: code, elapsed: elapsed})
	o.mu.Unlock()
}

func (o *outcomes) all() []outcome {
	o.mu.Lock()
	defer o.mu.Unlock()
	return append([]outcome(nil), o.list...)
}

func TestWithOutcomeOverGRPC(t *testing.T) {
	var got outcomes
	conn, _ := start(t, setup{interceptorOpts: []interceptors.Option{interceptors.WithOutcome(got.record)}})
	ctx := metadata.AppendToOutgoingContext(context.Background(), "x-tenant-id", "acme", "x-user-id", "alice")
	want := labelsFor("acme", "alice", "", false, "")

	// A unary call that succeeds.
	if err := check(ctx, conn); err != nil {
		t.Fatal(err)
	}
	// A unary call whose handler fails: the health server does not know the service.
	_, err := healthpb.NewHealthClient(conn).Check(ctx, &healthpb.HealthCheckRequest{Service: "nope"})
	if status.Code(err) != codes.NotFound {
		t.Fatalf("unknown service: err = %v, want NotFound", err)
	}
	// A server stream the client ends: the handler returns Canceled.
	if err := watch(ctx, conn); err != nil {
		t.Fatal(err)
	}
	// An invalid call never reaches the handler: no outcome.
	bad := metadata.AppendToOutgoingContext(context.Background(), "x-tenant-id", "ac/me")
	if err := check(bad, conn); status.Code(err) != codes.InvalidArgument {
		t.Fatalf("invalid tenant: err = %v, want InvalidArgument", err)
	}

	wantCodes := []codes.Code{codes.OK, codes.NotFound, codes.Canceled}
	var list []outcome
	deadline := time.Now().Add(5 * time.Second)
	for { // the stream handler returns after the client has gone
		if list = got.all(); len(list) >= len(wantCodes) || time.Now().After(deadline) {
			break
		}
		time.Sleep(5 * time.Millisecond)
	}
	time.Sleep(20 * time.Millisecond)
	list = got.all()
	if len(list) != len(wantCodes) {
		t.Fatalf("%d outcomes reported, want %d: %+v", len(list), len(wantCodes), list)
	}
	for i, o := range list {
		if o.code != wantCodes[i] {
			t.Errorf("outcome %d: code %v, want %v", i, o.code, wantCodes[i])
		}
		if o.labels != want || o.ctxLabels != want {
			t.Errorf("outcome %d: labels %+v (context %+v), want %+v", i, o.labels, o.ctxLabels, want)
		}
		if o.elapsed < 0 {
			t.Errorf("outcome %d: negative elapsed %v", i, o.elapsed)
		}
	}
}

func TestWithOutcomeCodesAndElapsed(t *testing.T) {
	d := tenant.DeciderFunc(func(context.Context, tenant.Request) (tenant.Labels, error) {
		return tenant.Labels{Tenant: "acme", Cohort: tenant.Canary, Reason: tenant.ReasonPercent, Bucket: 12}, nil
	})
	var got outcomes
	unary := interceptors.UnaryServer(d, interceptors.WithOutcome(got.record))
	stream := interceptors.StreamServer(d, interceptors.WithOutcome(got.record))
	ctx := metadata.NewIncomingContext(context.Background(), metadata.MD{})
	for _, tc := range []struct {
		err  error
		want codes.Code
	}{
		{nil, codes.OK},
		{status.Error(codes.FailedPrecondition, "no"), codes.FailedPrecondition},
		{fmt.Errorf("wrapped: %w", status.Error(codes.Unavailable, "down")), codes.Unavailable},
		{context.Canceled, codes.Canceled},
		{context.DeadlineExceeded, codes.DeadlineExceeded},
		{errors.New("plain"), codes.Unknown},
	} {
		before := len(got.all())
		const nap = 2 * time.Millisecond
		_, err := unary(ctx, nil, &grpc.UnaryServerInfo{}, func(context.Context, any) (any, error) {
			time.Sleep(nap)
			return nil, tc.err
		})
		if err != tc.err {
			t.Fatalf("the interceptor returned %v, want the handler's %v", err, tc.err)
		}
		err = stream(nil, fakeStream{ctx: ctx}, &grpc.StreamServerInfo{}, func(any, grpc.ServerStream) error {
			time.Sleep(nap)
			return tc.err
		})
		if err != tc.err {
			t.Fatalf("the stream interceptor returned %v, want the handler's %v", err, tc.err)
		}
		list := got.all()[before:]
		if len(list) != 2 {
			t.Fatalf("%v: %d outcomes, want 2", tc.err, len(list))
		}
		for _, o := range list {
			if o.code != tc.want {
				t.Errorf("%v: code %v, want %v", tc.err, o.code, tc.want)
			}
			if o.elapsed < nap {
				t.Errorf("%v: elapsed %v, shorter than the handler's %v", tc.err, o.elapsed, nap)
			}
			if o.labels.Tenant != "acme" || o.labels.Bucket != 12 {
				t.Errorf("%v: labels %+v", tc.err, o.labels)
			}
		}
	}
}

func TestWithOutcomeNilIsIgnored(t *testing.T) {
	d := tenant.DeciderFunc(func(context.Context, tenant.Request) (tenant.Labels, error) { return tenant.Labels{}, nil })
	var got outcomes
	in := interceptors.UnaryServer(d, interceptors.WithOutcome(got.record), interceptors.WithOutcome(nil))
	ctx := metadata.NewIncomingContext(context.Background(), metadata.MD{})
	if _, err := in(ctx, nil, &grpc.UnaryServerInfo{}, func(context.Context, any) (any, error) { return nil, nil }); err != nil {
		t.Fatal(err)
	}
	if len(got.all()) != 1 {
		t.Fatal("WithOutcome(nil) replaced the earlier function")
	}
	in = interceptors.UnaryServer(d, interceptors.WithOutcome(nil))
	if _, err := in(ctx, nil, &grpc.UnaryServerInfo{}, func(context.Context, any) (any, error) { return nil, nil }); err != nil {
		t.Fatal(err)
	}
}

// fakeStream is a ServerStream with only a context.
type fakeStream struct {
	grpc.ServerStream
	ctx context.Context
}

func (s fakeStream) Context() context.Context { return s.ctx }

// TestWithOutcomeSwitch: a call or stream whose handler starts while the
// switch is off is never reported; once on, both are again.
func TestWithOutcomeSwitch(t *testing.T) {
	var got outcomes
	var on atomic.Bool
	conn, _ := start(t, setup{interceptorOpts: []interceptors.Option{
		interceptors.WithOutcome(got.record), interceptors.WithOutcomeSwitch(on.Load), interceptors.WithOutcomeSwitch(nil)}})
	ctx := metadata.AppendToOutgoingContext(context.Background(), "x-tenant-id", "acme", "x-user-id", "alice")
	calls := func() {
		t.Helper()
		if err := check(ctx, conn); err != nil {
			t.Fatal(err)
		}
		if err := watch(ctx, conn); err != nil {
			t.Fatal(err)
		}
	}
	calls() // switch off
	on.Store(true)
	calls()
	// The switch is read before a handler runs, so the first two can never
	// report, however late their handlers return; wait for the second two.
	deadline := time.Now().Add(5 * time.Second)
	for len(got.all()) < 2 && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	time.Sleep(50 * time.Millisecond) // room for a wrong extra report to arrive
	list := got.all()
	if len(list) != 2 {
		t.Fatalf("%d outcomes reported, want 2 (the unary call and the stream made with the switch on): %+v", len(list), list)
	}
	if list[0].code != codes.OK || list[1].code != codes.Canceled || list[0].labels.Tenant != "acme" || list[1].labels.Tenant != "acme" {
		t.Fatalf("outcomes %+v, want OK then Canceled, for acme", list)
	}
}
