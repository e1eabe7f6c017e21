package tenant

import (
	"context"
	"net/netip"
)

// Request is what an adapter hands a [Decider]: the request's headers or
// metadata, the names they use on this transport, the immediate peer and the
// trace id the adapter found.
type Request struct {
	// Source reads the request's headers (HTTP) or metadata (gRPC).
	Source Source
	// Wire names the keys on this transport: [HTTP] or [GRPC].
	Wire Wire
	// Peer is the address of the immediate peer (or of the client, when the
	// adapter was told which proxies to trust); the zero Addr when unknown.
	// Overrides are honoured only from trusted peers.
	Peer netip.Addr
	// TraceID is the W3C trace id of the request (32 lowercase hex), or "".
	TraceID string
}

// Decider turns what a request carries into its Labels. The root package's
// Engine is the Decider of the module; adapters depend only on this interface.
//
// Decide returns an error only for input that breaks the wire limits; such
// errors are (or wrap) a [*FieldError] naming the offending key. Input that is
// merely untrusted (an override from an untrusted peer) is ignored, never an
// error. Implementations must be safe for concurrent use.
type Decider interface {
	Decide(ctx context.Context, req Request) (Labels, error)
}

// DeciderFunc adapts a function to the [Decider] interface.
type DeciderFunc func(ctx context.Context, req Request) (Labels, error)

// Decide calls f(ctx, req).
func (f DeciderFunc) Decide(ctx context.Context, req Request) (Labels, error) { return f(ctx, req) }

// UserHashBuffer is an optional interface of a [Source]: memory that the
// request owns, in which a [Decider] may write the request's user hash with
// [UserHasher.HashInto] instead of allocating a string for it. It returns
// nil when it has no buffer to give (a buffer is given once: the string the
// Decider makes from it must never change). [PendingContext] implements it;
// an adapter whose Source is built on a PendingContext forwards it.
type UserHashBuffer interface {
	UserHashBuffer() *[UserHashLen]byte
}
