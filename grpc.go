package canary

import (
	"context"

	"google.golang.org/grpc"

	"github.com/reqcanary/canary/interceptors"
)

// rpcAdapters are the engine's gRPC interceptors, built once by New.
type rpcAdapters struct {
	unaryServer  grpc.UnaryServerInterceptor
	streamServer grpc.StreamServerInterceptor
	unaryClient  grpc.UnaryClientInterceptor
	streamClient grpc.StreamClientInterceptor
}

// initRPC builds the engine's interceptors.
func (e *Engine) initRPC() {
	srv := e.serverInterceptorOptions()
	e.rpc.unaryServer = interceptors.UnaryServer(e, srv...)
	e.rpc.streamServer = interceptors.StreamServer(e, srv...)
	cli := e.clientInterceptorOptions()
	e.rpc.unaryClient = interceptors.UnaryClient(cli...)
	e.rpc.streamClient = interceptors.StreamClient(cli...)
}

// serverInterceptorOptions are the options of the engine's server
// interceptors.
func (e *Engine) serverInterceptorOptions() []interceptors.Option {
	// While a guard is configured, every call's outcome feeds it and the
	// outcomes metric; otherwise no clock is read.
	opts := []interceptors.Option{interceptors.WithOutcome(e.recordGRPC), interceptors.WithOutcomeSwitch(e.guardOn)}
	if e.sig.edge {
		opts = append(opts, interceptors.WithStripDecision())
	}
	return append(opts, e.interceptorIdentityOptions()...)
}

// clientInterceptorOptions are the options of the engine's client
// interceptors.
func (e *Engine) clientInterceptorOptions() []interceptors.Option {
	var opts []interceptors.Option
	if e.sig.sign != nil {
		opts = append(opts, interceptors.WithSigner(e.sig.sign), interceptors.WithPositionSigner(e.cons.sign))
	}
	return opts
}

// UnaryServerInterceptor labels each unary call through the engine (see
// interceptors.UnaryServer): it decides from the call's metadata
// (x-tenant-id, x-user-id, the override key, x-canary-decision), its peer
// and its trace, and runs the handler with the labels in its context
// (tenant.FromContext). Metadata that breaks canary's limits fails the call
// with codes.InvalidArgument and a message naming the key. On an edge
// ([WithEdge]) the handler does not see x-canary-decision.
//
// Its signature is grpc.UnaryServerInterceptor's, so the method value is the
// interceptor: grpc.NewServer(grpc.UnaryInterceptor(eng.UnaryServerInterceptor)).
func (e *Engine) UnaryServerInterceptor(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
	return e.rpc.unaryServer(ctx, req, info, handler)
}

// StreamServerInterceptor labels each stream as
// [Engine.UnaryServerInterceptor] labels a unary call; the handler's
// stream.Context() carries the labels. Use the method value:
// grpc.StreamInterceptor(eng.StreamServerInterceptor).
func (e *Engine) StreamServerInterceptor(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, handler grpc.StreamHandler) error {
	return e.rpc.streamServer(srv, ss, info, handler)
}

// UnaryClientInterceptor writes the calling request's labels (the
// tenant.Labels in the call's context) onto the outgoing metadata (see
// interceptors.UnaryClient): x-tenant-id, the cohort under x-canary, the
// canary baggage members, the traceparent of the context's span when the
// call has none, and, when the engine has a signing key ([WithSigningKey]),
// the signed decision under x-canary-decision and, once the calling request
// has written through dbwrap, the signed write position of its writes under
// x-canary-consistency. It removes x-user-id: the raw user id never leaves
// the edge. A context without labels passes through.
// Use the method value: grpc.WithUnaryInterceptor(eng.UnaryClientInterceptor).
func (e *Engine) UnaryClientInterceptor(ctx context.Context, method string, req, reply any, cc *grpc.ClientConn, invoker grpc.UnaryInvoker, opts ...grpc.CallOption) error {
	return e.rpc.unaryClient(ctx, method, req, reply, cc, invoker, opts...)
}

// StreamClientInterceptor writes the calling request's labels onto a new
// stream's metadata, as [Engine.UnaryClientInterceptor] does. Use the method
// value: grpc.WithStreamInterceptor(eng.StreamClientInterceptor).
func (e *Engine) StreamClientInterceptor(ctx context.Context, desc *grpc.StreamDesc, cc *grpc.ClientConn, method string, streamer grpc.Streamer, opts ...grpc.CallOption) (grpc.ClientStream, error) {
	return e.rpc.streamClient(ctx, desc, cc, method, streamer, opts...)
}

// UnaryServerInterceptor is [Engine.UnaryServerInterceptor] of the [Default]
// engine: grpc.NewServer(grpc.UnaryInterceptor(canary.UnaryServerInterceptor)).
func UnaryServerInterceptor(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
	return Default().UnaryServerInterceptor(ctx, req, info, handler)
}

// StreamServerInterceptor is [Engine.StreamServerInterceptor] of the
// [Default] engine: grpc.StreamInterceptor(canary.StreamServerInterceptor).
func StreamServerInterceptor(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, handler grpc.StreamHandler) error {
	return Default().StreamServerInterceptor(srv, ss, info, handler)
}

// UnaryClientInterceptor is [Engine.UnaryClientInterceptor] of the [Default]
// engine: grpc.WithUnaryInterceptor(canary.UnaryClientInterceptor).
func UnaryClientInterceptor(ctx context.Context, method string, req, reply any, cc *grpc.ClientConn, invoker grpc.UnaryInvoker, opts ...grpc.CallOption) error {
	return Default().UnaryClientInterceptor(ctx, method, req, reply, cc, invoker, opts...)
}

// StreamClientInterceptor is [Engine.StreamClientInterceptor] of the
// [Default] engine: grpc.WithStreamInterceptor(canary.StreamClientInterceptor).
func StreamClientInterceptor(ctx context.Context, desc *grpc.StreamDesc, cc *grpc.ClientConn, method string, streamer grpc.Streamer, opts ...grpc.CallOption) (grpc.ClientStream, error) {
	return Default().StreamClientInterceptor(ctx, desc, cc, method, streamer, opts...)
}

// Compile-time checks that the facade has grpc's interceptor types.
var (
	_ grpc.UnaryServerInterceptor  = UnaryServerInterceptor
	_ grpc.StreamServerInterceptor = StreamServerInterceptor
	_ grpc.UnaryClientInterceptor  = UnaryClientInterceptor
	_ grpc.StreamClientInterceptor = StreamClientInterceptor
)
