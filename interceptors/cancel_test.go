package interceptors_test

import (
	"context"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/reqcanary/canary/interceptors"
	"github.com/reqcanary/canary/tenant"
)

// cancelOutcomes records each reported call's code and whether its client
// had gone away.
type cancelOutcomes struct {
	mu        sync.Mutex
	codes     []codes.Code
	cancelled []bool
}

func (c *cancelOutcomes) record(ctx context.Context, _ tenant.Labels, code codes.Code, _ time.Duration) {
	c.mu.Lock()
	c.codes = append(c.codes, code)
	c.cancelled = append(c.cancelled, interceptors.ClientCancelled(ctx))
	c.mu.Unlock()
}

func (c *cancelOutcomes) snapshot() ([]codes.Code, []bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]codes.Code(nil), c.codes...), append([]bool(nil), c.cancelled...)
}

// slowHandler plays the service behind canary's interceptor, by the call's
// x-mode metadata: "slow" waits for the call's context to end (a query the
// client's deadline cuts); "own-timeout" gives up after its own 5 ms
// server-side timeout.
func slowHandler(ctx context.Context, req any, _ *grpc.UnaryServerInfo, h grpc.UnaryHandler) (any, error) {
	md, _ := metadata.FromIncomingContext(ctx)
	switch mode := md.Get("x-mode"); {
	case len(mode) == 0:
	case mode[0] == "slow":
		<-ctx.Done()
		return nil, status.FromContextError(ctx.Err()).Err()
	case mode[0] == "own-timeout":
		tctx, cancel := context.WithTimeout(ctx, 5*time.Millisecond)
		defer cancel()
		<-tctx.Done()
		return nil, status.Error(codes.DeadlineExceeded, "server-side timeout")
	}
	return h(ctx, req)
}

// Issue 12: 200 calls with the client's own 1 ms deadline were counted as
// server failures of their cohort. Every such call that reaches the server
// is reported client-cancelled, over real TCP; a call the client cancels
// too; a handler's own server-side timeout is not (it is a failure).
func TestClientCancelledOverGRPC(t *testing.T) {
	var got cancelOutcomes
	conn, _ := start(t, setup{tcp: true,
		interceptorOpts: []interceptors.Option{interceptors.WithOutcome(got.record)},
		serverOpts:      []grpc.ServerOption{grpc.ChainUnaryInterceptor(slowHandler)}})
	md := func(mode string) context.Context {
		return metadata.AppendToOutgoingContext(context.Background(), "x-tenant-id", "acme", "x-user-id", "mallory", "x-mode", mode)
	}
	if err := check(md("none"), conn); err != nil { // warm the connection
		t.Fatal(err)
	}
	for range 200 {
		ctx, cancel := context.WithTimeout(md("slow"), time.Millisecond)
		_ = check(ctx, conn)
		cancel()
	}
	ctx, cancel := context.WithCancel(md("slow"))
	go func() { time.Sleep(20 * time.Millisecond); cancel() }()
	if err := check(ctx, conn); status.Code(err) != codes.Canceled {
		t.Fatalf("cancelled call: %v", err)
	}
	ctx, cancel = context.WithTimeout(md("own-timeout"), 5*time.Second)
	defer cancel()
	if err := check(ctx, conn); status.Code(err) != codes.DeadlineExceeded {
		t.Fatalf("server-side timeout: %v, want DeadlineExceeded", err)
	}
	var cs []codes.Code
	var cancelled []bool
	deadline := time.Now().Add(5 * time.Second)
	for {
		cs, cancelled = got.snapshot()
		if (len(cs) > 0 && cs[len(cs)-1] == codes.DeadlineExceeded && !cancelled[len(cs)-1]) || time.Now().After(deadline) {
			break
		}
		time.Sleep(5 * time.Millisecond)
	}
	if len(cs) < 50 {
		t.Fatalf("only %d calls reported; want most of the 200 short-deadline calls", len(cs))
	}
	n := len(cs)
	if cs[0] != codes.OK || cancelled[0] {
		t.Errorf("the warm-up call: %v cancelled %v", cs[0], cancelled[0])
	}
	if cs[n-1] != codes.DeadlineExceeded || cancelled[n-1] {
		t.Errorf("server-side timeout: %v cancelled %v, want DeadlineExceeded, not client-cancelled", cs[n-1], cancelled[n-1])
	}
	for i := 1; i < n-1; i++ {
		if !cancelled[i] {
			t.Fatalf("call %d (code %v) not reported client-cancelled", i, cs[i])
		}
	}
}
