package interceptors_test

import (
	"context"
	"net"
	"sync"
	"testing"

	"go.uber.org/goleak"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/test/bufconn"

	"github.com/reqcanary/canary/interceptors"
	"github.com/reqcanary/canary/tenant"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

const testSalt = "interceptors-test"

var testHasher, _ = tenant.NewUserHasher([]byte("interceptors-test-user-hash-key"))

// seen is what a handler behind the interceptors observed.
type seen struct {
	labels tenant.Labels
	ok     bool
	md     metadata.MD
}

// recorder keeps what handlers observed and what the decider was asked.
type recorder struct {
	mu    sync.Mutex
	calls []seen
	reqs  []tenant.Request
}

func (r *recorder) add(ctx context.Context) {
	l, ok := tenant.FromContext(ctx)
	md, _ := metadata.FromIncomingContext(ctx)
	r.mu.Lock()
	r.calls = append(r.calls, seen{labels: l, ok: ok, md: md})
	r.mu.Unlock()
}

func (r *recorder) last(t *testing.T) seen {
	t.Helper()
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.calls) == 0 {
		t.Fatal("no call reached the handler")
	}
	return r.calls[len(r.calls)-1]
}

func (r *recorder) lastReq(t *testing.T) tenant.Request {
	t.Helper()
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.reqs) == 0 {
		t.Fatal("the decider was not called")
	}
	return r.reqs[len(r.reqs)-1]
}

func (r *recorder) count() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.calls)
}

// unaryRecorder and streamRecorder run after canary's server interceptors and
// record the context the service handler gets.
func (r *recorder) unary(ctx context.Context, req any, _ *grpc.UnaryServerInfo, h grpc.UnaryHandler) (any, error) {
	r.add(ctx)
	return h(ctx, req)
}

func (r *recorder) stream(srv any, ss grpc.ServerStream, _ *grpc.StreamServerInfo, h grpc.StreamHandler) error {
	r.add(ss.Context())
	return h(srv, ss)
}

// decider is a small stand-in for the engine: tenant/user bucketing at 50 %,
// overrides honoured from loopback peers only.
func (r *recorder) decider() tenant.Decider {
	return tenant.DeciderFunc(func(_ context.Context, req tenant.Request) (tenant.Labels, error) {
		r.mu.Lock()
		r.reqs = append(r.reqs, req)
		r.mu.Unlock()
		return decide(req)
	})
}

func decide(req tenant.Request) (tenant.Labels, error) {
	tn, err := tenant.ReadTenant(req.Source, req.Wire)
	if err != nil {
		return tenant.Labels{}, err
	}
	u, err := tenant.ReadUser(req.Source, req.Wire)
	if err != nil {
		return tenant.Labels{}, err
	}
	o, err := tenant.ReadOverride(req.Source, req.Wire.Override)
	if err != nil {
		return tenant.Labels{}, err
	}
	return labelsFor(tn, u, o, req.Peer.IsLoopback(), req.TraceID), nil
}

func labelsFor(tn, user string, override tenant.Cohort, trusted bool, trace string) tenant.Labels {
	l := tenant.Labels{Tenant: tn, UserHash: testHasher.Hash(tn, user), Bucket: tenant.BucketOf(testSalt, tn, user),
		PlanVersion: 3, TraceID: trace}
	switch {
	case override != "" && trusted:
		l.Cohort, l.Reason = override, tenant.ReasonOverride
	case l.Bucket == tenant.NoBucket:
		l.Cohort, l.Reason = tenant.Stable, tenant.ReasonNoKey
	case l.Bucket < 5000:
		l.Cohort, l.Reason = tenant.Canary, tenant.ReasonPercent
	default:
		l.Cohort, l.Reason = tenant.Stable, tenant.ReasonPercent
	}
	return l
}

// setup configures one test server and its client connection.
type setup struct {
	decider         tenant.Decider // nil: the recorder's decider
	noDecider       bool           // build the server interceptors with a nil Decider
	tcp             bool           // real loopback TCP instead of bufconn
	serverOpts      []grpc.ServerOption
	dialOpts        []grpc.DialOption
	clientOpts      []interceptors.Option
	interceptorOpts []interceptors.Option // options of canary's server interceptors
}

// start runs a gRPC server with the health service behind canary's server
// interceptors and the recorder, and returns a client connection through
// canary's client interceptors. Everything is stopped at cleanup.
func start(t *testing.T, s setup) (*grpc.ClientConn, *recorder) {
	t.Helper()
	rec := &recorder{}
	d := s.decider
	if d == nil && !s.noDecider {
		d = rec.decider()
	}
	opts := append([]grpc.ServerOption{
		grpc.ChainUnaryInterceptor(interceptors.UnaryServer(d, s.interceptorOpts...), rec.unary),
		grpc.ChainStreamInterceptor(interceptors.StreamServer(d, s.interceptorOpts...), rec.stream),
	}, s.serverOpts...)
	srv := grpc.NewServer(opts...)
	hs := health.NewServer()
	healthpb.RegisterHealthServer(srv, hs)

	var lis net.Listener
	dial := append([]grpc.DialOption{
		grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithChainUnaryInterceptor(interceptors.UnaryClient(s.clientOpts...)),
		grpc.WithChainStreamInterceptor(interceptors.StreamClient(s.clientOpts...)),
	}, s.dialOpts...)
	target := "passthrough:///bufnet"
	if s.tcp {
		var err error
		if lis, err = net.Listen("tcp", "127.0.0.1:0"); err != nil {
			t.Fatal(err)
		}
		target = lis.Addr().String()
	} else {
		bl := bufconn.Listen(1 << 20)
		lis = bl
		dial = append(dial, grpc.WithContextDialer(func(ctx context.Context, _ string) (net.Conn, error) { return bl.DialContext(ctx) }))
	}
	go func() { _ = srv.Serve(lis) }()
	conn, err := grpc.NewClient(target, dial...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = conn.Close()
		hs.Shutdown()
		srv.Stop()
	})
	return conn, rec
}

// check makes a unary call (health Check).
func check(ctx context.Context, conn *grpc.ClientConn) error {
	_, err := healthpb.NewHealthClient(conn).Check(ctx, &healthpb.HealthCheckRequest{})
	return err
}

// watch opens a server stream (health Watch), reads its first message and
// closes it.
func watch(ctx context.Context, conn *grpc.ClientConn) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	st, err := healthpb.NewHealthClient(conn).Watch(ctx, &healthpb.HealthCheckRequest{})
	if err != nil {
		return err
	}
	_, err = st.Recv()
	return err
}

// calls names the two kinds of call each behaviour is checked with.
var calls = []struct {
	name string
	do   func(context.Context, *grpc.ClientConn) error
}{{"unary", check}, {"stream", watch}}
