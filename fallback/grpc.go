package fallback

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/failsafe-go/failsafe-go"
	"github.com/failsafe-go/failsafe-go/circuitbreaker"
	"github.com/failsafe-go/failsafe-go/failsafegrpc"
	"github.com/failsafe-go/failsafe-go/fallback"
	"github.com/failsafe-go/failsafe-go/timeout"
	"go.opentelemetry.io/otel/metric"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/peer"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	"github.com/reqcanary/canary/tenant"
)

// GRPCConfig configures [NewUnaryClientInterceptor].
type GRPCConfig struct {
	// Name is the canary.dependency attribute of the metrics. Default: the
	// canary connection's target.
	Name string
	// Canary is the connection to the canary version (required). Do not
	// install this interceptor on it.
	Canary *grpc.ClientConn
	// Timeout bounds each call on Canary; it fires even when the call's own
	// deadline is later. Default: [DefaultTimeout].
	Timeout time.Duration
	// Breaker configures the canary connection's circuit breaker, shared by
	// all calls. Unavailable, DeadlineExceeded, Internal, Unknown, DataLoss
	// and timeouts are failures; other codes are the application's answers.
	Breaker BreakerConfig
	// IdempotentMethods lists the full method names
	// ("/package.Service/Method") that may be sent to the stable
	// connection after the canary call may have reached the server. Other
	// methods switch only when the canary call was certainly not sent
	// (no connection, open circuit).
	IdempotentMethods []string
	// MeterProvider provides the meter. Default: otel.GetMeterProvider().
	MeterProvider metric.MeterProvider
}

// grpcFallback is the state of one interceptor.
type grpcFallback struct {
	canary     *grpc.ClientConn
	cb         circuitbreaker.CircuitBreaker[any]
	call       grpc.UnaryClientInterceptor // failsafegrpc: breaker + timeout around one canary call
	idempotent map[string]bool
	m          *instruments
}

// canaryCallKey marks the context of a call made on the canary connection,
// so that the interceptor, if installed there by mistake, passes it through.
type canaryCallKey struct{}

// NewUnaryClientInterceptor returns a unary client interceptor, to install
// on the stable connection (grpc.WithUnaryInterceptor), that sends the calls
// of the canary cohort (tenant.FromContext) to GRPCConfig.Canary and, when
// that call times out, fails with Unavailable or meets an open circuit,
// sends it to the stable connection, following the idempotency rule of
// GRPCConfig.IdempotentMethods. Calls of the stable cohort, or without
// labels, go to the stable connection untouched.
//
// The canary call runs through failsafe-go's failsafegrpc interceptor with
// the canary circuit breaker and timeout. Errors of our policies are mapped
// to status errors (timeout: DeadlineExceeded; open circuit: Unavailable);
// the stable connection's errors pass through untouched.
//
// Configuration errors name the field: "fallback: GRPCConfig.Canary: missing".
func NewUnaryClientInterceptor(c GRPCConfig) (grpc.UnaryClientInterceptor, error) {
	if c.Canary == nil {
		return nil, fmt.Errorf("fallback: GRPCConfig.Canary: %w", errMissing)
	}
	if c.Name == "" {
		c.Name = c.Canary.Target()
	}
	if err := positiveIn("GRPCConfig", "Timeout", &c.Timeout, DefaultTimeout); err != nil {
		return nil, err
	}
	if err := positiveIn("GRPCConfig", "Breaker.Delay", &c.Breaker.Delay, DefaultBreakerDelay); err != nil {
		return nil, err
	}
	b := c.Breaker
	if b.Failures == 0 {
		b.Failures = DefaultBreakerFailures
	}
	if b.Of == 0 {
		b.Of = b.Failures
	}
	if b.Of < b.Failures {
		return nil, fmt.Errorf("fallback: GRPCConfig.Breaker.Of: %d is less than Breaker.Failures %d", b.Of, b.Failures)
	}
	if b.Successes == 0 {
		b.Successes = 1
	}
	g := &grpcFallback{canary: c.Canary, idempotent: make(map[string]bool, len(c.IdempotentMethods))}
	for i, m := range c.IdempotentMethods {
		if len(m) < 3 || m[0] != '/' {
			return nil, fmt.Errorf("fallback: GRPCConfig.IdempotentMethods[%d]: %q is not a full method name (\"/package.Service/Method\")", i, m)
		}
		g.idempotent[m] = true
	}
	g.cb = circuitbreaker.NewBuilder[any]().
		HandleIf(func(_ any, err error) bool { return grpcBreakerFailure(err) }).
		WithFailureThresholdRatio(b.Failures, b.Of).
		WithSuccessThreshold(b.Successes).
		WithDelay(b.Delay).
		Build()
	g.call = failsafegrpc.NewUnaryClientInterceptorWithExecutor(
		failsafe.With[any](g.cb, timeout.New[any](c.Timeout)))
	var breakers [numRoles]stateful
	breakers[roleCanary] = g.cb
	var err error
	if g.m, err = newInstruments(c.MeterProvider, c.Name, breakers); err != nil {
		return nil, fmt.Errorf("fallback: GRPCConfig.MeterProvider: %w", err)
	}
	return g.intercept, nil
}

func invokeOn(ctx context.Context, method string, req, reply any, cc *grpc.ClientConn, opts ...grpc.CallOption) error {
	return cc.Invoke(ctx, method, req, reply, opts...)
}

func (g *grpcFallback) intercept(ctx context.Context, method string, req, reply any, cc *grpc.ClientConn, invoker grpc.UnaryInvoker, opts ...grpc.CallOption) error {
	if ctx.Value(canaryCallKey{}) != nil || cc == g.canary {
		return invoker(ctx, method, req, reply, cc, opts...)
	}
	if l, _ := tenant.FromContext(ctx); l.Cohort != tenant.Canary {
		return invoker(ctx, method, req, reply, cc, opts...)
	}
	var p peer.Peer
	canaryOpts := append(opts[:len(opts):len(opts)], grpc.Peer(&p))
	canaryCtx := context.WithValue(ctx, canaryCallKey{}, true)
	var why reason
	notReplayed := false
	fb := fallback.NewBuilderWithFunc(func(exec failsafe.Execution[any]) (any, error) {
		err := exec.LastError()
		if ctx.Err() != nil {
			return nil, err
		}
		sent := p.Addr != nil
		if why == reasonError && !sent {
			why = reasonConnect // Unavailable before any connection carried the call
		}
		if sent && !g.idempotent[method] {
			notReplayed = true
			return nil, err
		}
		g.m.fallback(ctx, roleCanary, roleStable, why)
		if m, ok := reply.(proto.Message); ok {
			proto.Reset(m) // a failed canary call may have filled part of it
		}
		serr := invoker(ctx, method, req, reply, cc, opts...)
		g.m.attempt(ctx, roleStable, grpcReason(serr))
		return nil, serr
	}).HandleIf(func(_ any, err error) bool {
		why = grpcReason(err)
		return why == reasonTimeout || why == reasonCircuitOpen || why == reasonConnect || why == reasonError
	}).Build()
	_, err := failsafe.With[any](fb).WithContext(ctx).Get(func() (any, error) {
		err := g.call(canaryCtx, method, req, reply, g.canary, invokeOn, canaryOpts...)
		g.m.attempt(ctx, roleCanary, grpcReason(err))
		return nil, err
	})
	if err == nil {
		return nil
	}
	if notReplayed {
		return grpcStatus(fmt.Errorf("%w: canary: %w", ErrNotReplayed, err))
	}
	return grpcStatus(err)
}

// grpcReason classifies the error of a call: reasonTimeout, reasonCircuitOpen,
// reasonError for Unavailable (whether it was sent is told by the peer),
// reasonCanceled for the caller's cancellation, reasonNone for success and
// for the application's own status codes.
func grpcReason(err error) reason {
	switch {
	case err == nil:
		return reasonNone
	case errors.Is(err, circuitbreaker.ErrOpen):
		return reasonCircuitOpen
	case errors.Is(err, timeout.ErrExceeded):
		return reasonTimeout
	}
	switch status.Code(err) {
	case codes.Unavailable:
		return reasonError
	case codes.Canceled:
		return reasonCanceled
	case codes.DeadlineExceeded:
		return reasonDeadline
	}
	return reasonNone
}

// grpcBreakerFailure is what the canary circuit breaker counts as a failure.
func grpcBreakerFailure(err error) bool {
	if err == nil {
		return false
	}
	if errors.Is(err, timeout.ErrExceeded) {
		return true
	}
	switch status.Code(err) {
	case codes.Unavailable, codes.DeadlineExceeded, codes.Internal, codes.Unknown, codes.DataLoss:
		return true
	}
	return false
}

// grpcStatus maps the errors of our policies to gRPC status errors that
// still wrap them (errors.Is(err, ErrNotReplayed), timeout.ErrExceeded…);
// status errors pass through untouched. It is the one place where this
// mapping happens.
func grpcStatus(err error) error {
	if _, ok := status.FromError(err); ok {
		return err
	}
	code := codes.Unknown
	switch {
	case errors.Is(err, timeout.ErrExceeded):
		code = codes.DeadlineExceeded
	case errors.Is(err, circuitbreaker.ErrOpen):
		code = codes.Unavailable
	case errors.Is(err, context.Canceled):
		code = codes.Canceled
	case errors.Is(err, context.DeadlineExceeded):
		code = codes.DeadlineExceeded
	}
	return &statusError{st: status.New(code, err.Error()), err: err}
}

// statusError is a gRPC status error that wraps the error it reports.
type statusError struct {
	st  *status.Status
	err error
}

func (e *statusError) Error() string {
	return "rpc error: code = " + e.st.Code().String() + " desc = " + e.st.Message()
}
func (e *statusError) GRPCStatus() *status.Status { return e.st }
func (e *statusError) Unwrap() error              { return e.err }
