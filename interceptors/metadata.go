package interceptors

import (
	"context"

	"google.golang.org/grpc/metadata"

	"github.com/reqcanary/canary/tenant"
)

// MD adapts gRPC metadata to [tenant.Source] and [tenant.Sink], so the tenant
// package's readers and [tenant.Propagate] work on it. Keys are lowercased,
// as metadata.MD's own methods do. Convert with MD(md); no copy is made.
//
// An MD is not safe for concurrent use if one goroutine writes to it.
type MD metadata.MD

var (
	_ tenant.Source = MD(nil)
	_ tenant.Sink   = MD(nil)
	_ tenant.Source = incoming{}
	_ tenant.Source = (*streamSource)(nil)
)

// Values returns the values of key.
func (md MD) Values(key string) []string { return metadata.MD(md).Get(key) }

// Set replaces the values of key by value.
func (md MD) Set(key, value string) { metadata.MD(md).Set(key, value) }

// Del removes key.
func (md MD) Del(key string) { metadata.MD(md).Delete(key) }

// incoming reads a server call's incoming metadata one key at a time, without
// copying the whole of it as metadata.FromIncomingContext would. Boxing it
// into the Request's Source costs a unary call one allocation; borrowing it
// from a pool would save that, but a Decider that kept the Source past
// Decide could then read another call's metadata, so it is not done.
type incoming struct{ ctx context.Context }

func (s incoming) Values(key string) []string { return metadata.ValueFromIncomingContext(s.ctx, key) }

// streamSource reads a stream's incoming metadata through the labelledStream
// that the stream interceptor allocates anyway, from the stream it wraps
// (whose context is the one grpc built, before any stripping): one
// allocation serves as both the Decider's Source and the handler's stream.
// The distinct type keeps the stream's methods away from the Decider.
type streamSource labelledStream

func (s *streamSource) Values(key string) []string {
	return metadata.ValueFromIncomingContext(s.ServerStream.Context(), key)
}
