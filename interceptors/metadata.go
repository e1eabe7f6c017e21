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
	_ tenant.Source         = MD(nil)
	_ tenant.Sink           = MD(nil)
	_ tenant.Source         = (*incomingSource)(nil)
	_ tenant.UserHashBuffer = (*incomingSource)(nil)
	_ tenant.Source         = (*streamSource)(nil)
)

// Values returns the values of key.
func (md MD) Values(key string) []string { return metadata.MD(md).Get(key) }

// Set replaces the values of key by value.
func (md MD) Set(key, value string) { metadata.MD(md).Set(key, value) }

// Del removes key.
func (md MD) Del(key string) { metadata.MD(md).Delete(key) }

// incomingSource reads a unary call's incoming metadata one key at a time,
// without copying the whole of it as metadata.FromIncomingContext would. It
// is the labels context the handler will get, allocated before the decision
// ([tenant.NewPendingContext]): a pointer to it boxes into the Request's
// Source without allocating, so one allocation serves as both. It reads the
// metadata of the context the PendingContext was made from, the one grpc
// built, before any stripping ([WithStripDecision]); that never changes, so
// a Decider that keeps the Source past Decide reads this call's metadata and
// no other's (a pooled Source could read another call's, another tenant's).
// The distinct type keeps PendingContext's methods away from the Decider.
type incomingSource tenant.PendingContext

// Values returns the values of key in the call's incoming metadata, a copy.
func (s *incomingSource) Values(key string) []string {
	return metadata.ValueFromIncomingContext((*tenant.PendingContext)(s).Parent(), key)
}

// UserHashBuffer hands the Decider the labels context's memory for the
// call's user hash, so that an engine deciding the call allocates no string
// for it.
func (s *incomingSource) UserHashBuffer() *[tenant.UserHashLen]byte {
	return (*tenant.PendingContext)(s).UserHashBuffer()
}

// streamSource reads a stream's incoming metadata from the context of the
// stream that grpc handed the interceptor (the one grpc built, before any
// stripping), one key at a time. It is a field of the labelledStream that
// the stream interceptor allocates anyway, so a pointer to it boxes into the
// Request's Source without allocating: one allocation serves as both the
// Decider's Source and the handler's stream. Being a struct of its own
// rather than a type defined over labelledStream (which would inherit the
// methods of the embedded grpc.ServerStream), it keeps the stream's methods
// (SendMsg, SetHeader…) away from the Decider.
type streamSource struct{ ctx context.Context }

// Values returns the values of key in the stream's incoming metadata, a copy.
func (s *streamSource) Values(key string) []string {
	return metadata.ValueFromIncomingContext(s.ctx, key)
}
