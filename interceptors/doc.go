// Package interceptors labels gRPC calls with canary's request labels: server
// interceptors decide once per call, through a [tenant.Decider], and put the
// [tenant.Labels] into the call's context; client interceptors write the
// labels of the calling request onto outgoing metadata, so the next hop sees
// the same tenant, cohort and (when a signer is configured) the exact signed
// decision, and never the raw user id.
//
// They come in unary and stream pairs, server and client:
//
//	d := engine // any tenant.Decider
//	srv := grpc.NewServer(
//		grpc.StatsHandler(otelgrpc.NewServerHandler()),
//		grpc.ChainUnaryInterceptor(interceptors.UnaryServer(d)),
//		grpc.ChainStreamInterceptor(interceptors.StreamServer(d)),
//	)
//	conn, err := grpc.NewClient(target,
//		grpc.WithStatsHandler(otelgrpc.NewClientHandler()),
//		grpc.WithChainUnaryInterceptor(interceptors.UnaryClient()),
//		grpc.WithChainStreamInterceptor(interceptors.StreamClient()),
//	)
//
// Metadata keys are the HTTP header names in lowercase ([tenant.GRPC]):
// x-tenant-id, x-user-id, x-canary, x-canary-decision, traceparent, baggage.
// Metadata that breaks canary's limits fails the call with
// codes.InvalidArgument and a message that starts with the key, such as
// "x-tenant-id: longer than 64 bytes".
//
// The interceptors work beside otelgrpc's stats handlers: a stats handler
// starts its span before any interceptor runs, so the trace id in the labels
// is the trace of that span. Without one, the trace id comes from a valid
// traceparent metadata value.
package interceptors
