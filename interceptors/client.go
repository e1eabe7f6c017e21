package interceptors

import (
	"context"

	"go.opentelemetry.io/otel/baggage"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/reqcanary/canary/tenant"
)

// UnaryClient returns a unary client interceptor that writes the labels of
// the calling request (the [tenant.Labels] in the call's context) onto the
// outgoing metadata, as [tenant.Propagate] describes: x-tenant-id, the cohort
// under x-canary, the baggage members canary.cohort, canary.tenant and
// canary.bucket merged into any baggage already there, and the signed
// decision under x-canary-decision when [WithSigner] is given, and the signed
// write position of the calling request's writes under x-canary-consistency
// when [WithPositionSigner] is given and the request has written. It removes
// x-user-id: the raw user id never leaves the edge. Keys it sets are
// replaced, never repeated.
//
// When the call's metadata has no traceparent and the context carries a
// valid span context (the HTTP middleware puts the caller's there), it also
// writes that span context's traceparent (and tracestate), so the trace
// continues without a registered propagator; a stats handler such as
// otelgrpc.NewClientHandler then replaces it with its client span's.
//
// When the context carries OpenTelemetry baggage, canary's members are also
// set there, so that an otelgrpc client handler propagating baggage writes
// the same members instead of stale ones.
//
// A context without labels passes through untouched. The interceptor is safe
// for concurrent use.
func UnaryClient(opts ...Option) grpc.UnaryClientInterceptor {
	c := newConfig(opts)
	return func(ctx context.Context, method string, req, reply any, cc *grpc.ClientConn, invoker grpc.UnaryInvoker, callOpts ...grpc.CallOption) error {
		ctx, err := c.outgoing(ctx)
		if err != nil {
			return err
		}
		return invoker(ctx, method, req, reply, cc, callOpts...)
	}
}

// StreamClient returns a stream client interceptor that writes the calling
// request's labels onto a new stream's metadata, as [UnaryClient] does.
func StreamClient(opts ...Option) grpc.StreamClientInterceptor {
	c := newConfig(opts)
	return func(ctx context.Context, desc *grpc.StreamDesc, cc *grpc.ClientConn, method string, streamer grpc.Streamer, callOpts ...grpc.CallOption) (grpc.ClientStream, error) {
		ctx, err := c.outgoing(ctx)
		if err != nil {
			return nil, err
		}
		return streamer(ctx, desc, cc, method, callOpts...)
	}
}

// outgoing returns ctx with the labels it carries written onto its outgoing
// metadata.
func (c config) outgoing(ctx context.Context) (context.Context, error) {
	l, ok := tenant.FromContext(ctx)
	if !ok {
		return ctx, nil
	}
	w := tenant.GRPC
	// Without an OpenTelemetry propagator (otelgrpc's client handler),
	// nothing else would carry the trace: write the span context's
	// traceparent unless the call already has one. A stats handler running
	// later replaces it with its own client span's.
	sc := trace.SpanContextFromContext(ctx)
	addTrace := sc.IsValid() && !present(ctx, w.TraceParent)
	pos := c.position(ctx)
	var err error
	if present(ctx, w.User) || present(ctx, w.Override) || present(ctx, w.Decision) || present(ctx, w.Baggage) ||
		(l.Tenant != "" && present(ctx, w.Tenant)) || present(ctx, w.Consistency) {
		// Keys to replace or remove: rewrite a copy of the metadata.
		md, _ := metadata.FromOutgoingContext(ctx)
		if md == nil {
			md = metadata.MD{}
		}
		err = tenant.Propagate(MD(md), w, l, c.sign)
		if err == nil {
			err = tenant.PropagatePosition(MD(md), w, l, pos, c.signPos)
		}
		if addTrace {
			propagation.TraceContext{}.Inject(ctx, mdCarrier(md))
		}
		ctx = metadata.NewOutgoingContext(ctx, md)
	} else {
		var buf [14]string
		var kv []string
		kv, err = tenant.AppendOutbound(buf[:0], w, l, c.sign)
		if err == nil {
			kv, err = tenant.AppendPosition(kv, w, l, pos, c.signPos)
		}
		if addTrace {
			tc := &kvCarrier{}
			propagation.TraceContext{}.Inject(ctx, tc)
			kv = append(kv, tc.kv...)
		}
		ctx = metadata.AppendToOutgoingContext(ctx, kv...)
	}
	if err != nil {
		return ctx, status.Error(codes.Internal, "canary: "+err.Error())
	}
	if bg := baggage.FromContext(ctx); bg.Len() > 0 {
		ctx = withBaggage(ctx, bg, l)
	}
	return ctx, nil
}

// present reports whether the outgoing metadata of ctx has key.
func present(ctx context.Context, key string) bool {
	return len(metadata.ValueFromOutgoingContext(ctx, key)) > 0
}

// withBaggage returns ctx with canary's members for l merged into its
// OpenTelemetry baggage bg, under the W3C limits of [tenant.MergeBaggage].
func withBaggage(ctx context.Context, bg baggage.Baggage, l tenant.Labels) context.Context {
	merged, _ := baggage.Parse(tenant.MergeBaggage(bg.String(), l))
	return baggage.ContextWithBaggage(ctx, merged)
}

// mdCarrier writes a propagator's keys into gRPC metadata.
type mdCarrier metadata.MD

func (c mdCarrier) Get(key string) string {
	if vs := metadata.MD(c).Get(key); len(vs) > 0 {
		return vs[0]
	}
	return ""
}
func (c mdCarrier) Set(key, value string) { metadata.MD(c).Set(key, value) }
func (c mdCarrier) Keys() []string {
	ks := make([]string, 0, len(c))
	for k := range c {
		ks = append(ks, k)
	}
	return ks
}

// kvCarrier collects a propagator's keys as metadata key, value pairs.
type kvCarrier struct{ kv []string }

func (c *kvCarrier) Get(string) string     { return "" }
func (c *kvCarrier) Set(key, value string) { c.kv = append(c.kv, key, value) }
func (c *kvCarrier) Keys() []string        { return nil }

var (
	_ propagation.TextMapCarrier = mdCarrier(nil)
	_ propagation.TextMapCarrier = (*kvCarrier)(nil)
)
