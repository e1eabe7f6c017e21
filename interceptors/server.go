package interceptors

import (
	"context"
	"errors"
	"net"
	"net/netip"
	"time"

	"go.opentelemetry.io/otel/trace"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/peer"
	"google.golang.org/grpc/status"

	"github.com/reqcanary/canary/tenant"
)

// UnaryServer returns a unary server interceptor that labels each call: it
// hands d the call's metadata (under the [tenant.GRPC] names), its peer
// address and its trace id, and runs the handler with a context carrying the
// decided labels ([tenant.FromContext]).
//
// The trace id is that of the span in the call's context (otelgrpc's
// NewServerHandler starts it before interceptors run), or else that of a
// valid traceparent metadata value; if d leaves Labels.TraceID empty, the
// interceptor fills it in. The peer is the address of the connection's remote
// end; it is the zero netip.Addr when that is not an IP address (bufconn,
// Unix sockets), so no override is trusted from it.
//
// A call whose metadata breaks canary's limits fails with
// codes.InvalidArgument and a message naming the key; any other error from d
// fails it with codes.Internal (or the code the error carries). A nil d fails
// every call with codes.Internal. [WithOutcome] reports each labelled call's
// outcome; client-side options are ignored, so that one option list can serve
// both sides. The interceptor is safe for concurrent use if d is.
//
// Allocations: one per call of its own, the labels context the handler
// gets, which is also the Source that d reads the metadata from (never
// pooled: a Source that d keeps past Decide reads this call's metadata and
// no other's). Reading the metadata costs what grpc's
// metadata.ValueFromIncomingContext allocates, a copy of each value present
// that d reads (and of traceparent when there is no span). With
// [WithStripDecision], a call that carries x-canary-decision also costs the
// copy of its metadata and a second labels context.
func UnaryServer(d tenant.Decider, opts ...Option) grpc.UnaryServerInterceptor {
	c := newConfig(opts)
	return func(ctx context.Context, req any, _ *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
		ctx, err := labelUnary(ctx, d, &c)
		if err != nil {
			return nil, err
		}
		if !c.wantOutcome() {
			return handler(ctx, req)
		}
		start := time.Now()
		resp, err := handler(ctx, req)
		report(ctx, c.outcome, err, time.Since(start))
		return resp, err
	}
}

// StreamServer returns a stream server interceptor that labels each stream
// as [UnaryServer] labels a unary call: the handler's stream returns the
// labelled context from Context(). With [WithOutcome], the outcome is
// reported when the handler returns.
//
// Allocations: two per stream of its own, the handler's stream wrapper
// (which is also the Source that d reads the metadata from) and the labels
// context, plus grpc's copy of each metadata value read, as for UnaryServer.
func StreamServer(d tenant.Decider, opts ...Option) grpc.StreamServerInterceptor {
	c := newConfig(opts)
	return func(srv any, ss grpc.ServerStream, _ *grpc.StreamServerInfo, handler grpc.StreamHandler) error {
		// The wrapper the handler gets is also the Decider's Source: one
		// allocation for both.
		ctx := ss.Context()
		ls := &labelledStream{ServerStream: ss, src: streamSource{ctx}}
		src, dropIdentity, err := c.source(ctx, &ls.src)
		if err != nil {
			return statusError(err)
		}
		l, err := decide(ctx, d, src)
		if err != nil {
			return err
		}
		if c.wantStrip(dropIdentity) {
			ctx, _ = c.stripMD(ctx, dropIdentity)
		}
		ctx = tenant.NewContext(ctx, l)
		ls.ctx = ctx
		if !c.wantOutcome() {
			return handler(srv, ls)
		}
		start := time.Now()
		err = handler(srv, ls)
		report(ctx, c.outcome, err, time.Since(start))
		return err
	}
}

// report hands fn the outcome of a labelled call whose handler returned err.
func report(ctx context.Context, fn OutcomeFunc, err error, elapsed time.Duration) {
	l, _ := tenant.FromContext(ctx)
	fn(ctx, l, codeOf(err), elapsed)
}

// codeOf returns the status code the client sees for a handler error, as
// grpc's server derives it: the code of a status error, the context errors
// mapped to Canceled and DeadlineExceeded, Unknown otherwise.
func codeOf(err error) codes.Code {
	if err == nil {
		return codes.OK
	}
	if s, ok := status.FromError(err); ok {
		return s.Code()
	}
	return status.FromContextError(err).Code()
}

// labelledStream is a ServerStream whose context carries the labels. Its
// src is the Decider's Source, in the same allocation.
type labelledStream struct {
	grpc.ServerStream
	ctx context.Context
	src streamSource
}

var _ grpc.ServerStream = (*labelledStream)(nil)

// Context returns the labelled context.
func (s *labelledStream) Context() context.Context { return s.ctx }

// errNilDecider is the error of every call through an interceptor built
// without a Decider.
var errNilDecider = status.Error(codes.Internal, "canary interceptors: built with a nil tenant.Decider")

// labelUnary decides the labels of the unary call whose context grpc built
// is ctx, and returns the context its handler runs with: ctx (with the keys
// c's options remove stripped from its metadata: x-canary-decision, the
// override keys, untrusted identity keys) carrying the labels. The Decider
// reads the identity source of c (identity.go). The labels context is allocated first and serves as the Decider's
// Source; only a stripped call, whose labels context must be a child of the
// stripped one, allocates another (besides the copy the stripping makes).
func labelUnary(ctx context.Context, d tenant.Decider, c *config) (context.Context, error) {
	if d == nil {
		return ctx, errNilDecider
	}
	p := tenant.NewPendingContext(ctx)
	src, dropIdentity, err := c.source(ctx, (*incomingSource)(p))
	if err != nil {
		return ctx, statusError(err)
	}
	l, err := decide(ctx, d, src)
	if err != nil {
		return ctx, err
	}
	if c.wantStrip(dropIdentity) {
		if stripped, ok := c.stripMD(ctx, dropIdentity); ok {
			return tenant.NewContext(stripped, l), nil
		}
	}
	return p.Label(l), nil
}

// decide asks d for the labels of the call whose context grpc built is ctx,
// handing it src to read the call's metadata from. It fills in the trace id
// d left empty, and maps d's errors to gRPC status errors.
func decide(ctx context.Context, d tenant.Decider, src tenant.Source) (tenant.Labels, error) {
	if d == nil {
		return tenant.Labels{}, errNilDecider
	}
	req := tenant.Request{Source: src, Wire: tenant.GRPC, Peer: peerAddr(ctx), TraceID: traceID(ctx)}
	l, err := d.Decide(ctx, req)
	if err != nil {
		return tenant.Labels{}, statusError(err)
	}
	if l.TraceID == "" {
		l.TraceID = req.TraceID
	}
	return l, nil
}

// statusError maps an error from a Decider to the gRPC status the call fails
// with. It is the one place where that mapping lives.
func statusError(err error) error {
	var fe *tenant.FieldError
	switch {
	case errors.As(err, &fe):
		return status.Error(codes.InvalidArgument, fe.Error())
	case errors.Is(err, tenant.ErrInvalidField):
		return status.Error(codes.InvalidArgument, err.Error())
	case errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		return status.FromContextError(err).Err()
	}
	if s, ok := status.FromError(err); ok {
		return s.Err() // already a status: keep its code
	}
	return status.Error(codes.Internal, "canary: deciding the call's cohort: "+err.Error())
}

// peerAddr returns the IP address of the call's peer, or the zero Addr.
func peerAddr(ctx context.Context) netip.Addr {
	p, ok := peer.FromContext(ctx)
	if !ok || p.Addr == nil {
		return netip.Addr{}
	}
	switch a := p.Addr.(type) {
	case *net.TCPAddr:
		return a.AddrPort().Addr().Unmap()
	case *net.UDPAddr:
		return a.AddrPort().Addr().Unmap()
	}
	switch p.Addr.Network() {
	case "tcp", "tcp4", "tcp6", "udp", "udp4", "udp6", "ip", "ip4", "ip6":
	default:
		return netip.Addr{} // bufconn, unix sockets, pipes: no IP address
	}
	s := p.Addr.String()
	if ap, err := netip.ParseAddrPort(s); err == nil {
		return ap.Addr().Unmap()
	}
	if ip, err := netip.ParseAddr(s); err == nil {
		return ip.Unmap()
	}
	return netip.Addr{}
}

// traceID returns the trace id of the span in ctx, or else that of the call's
// traceparent metadata, or "".
func traceID(ctx context.Context) string {
	if sc := trace.SpanContextFromContext(ctx); sc.HasTraceID() {
		var buf [32]byte
		id := sc.TraceID()
		const digits = "0123456789abcdef"
		for i, b := range id {
			buf[2*i], buf[2*i+1] = digits[b>>4], digits[b&0x0f]
		}
		return string(buf[:])
	}
	if vs := metadata.ValueFromIncomingContext(ctx, tenant.GRPC.TraceParent); len(vs) == 1 {
		if id, ok := tenant.ParseTraceParent(vs[0]); ok {
			return id
		}
	}
	return ""
}
