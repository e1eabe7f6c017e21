package interceptors

import (
	"context"

	"google.golang.org/grpc/metadata"

	"github.com/reqcanary/canary/tenant"
)

// WithStripDecision makes the server interceptors remove x-canary-decision
// from the incoming metadata the handler sees, for services at the edge of
// the trust boundary: a decision sent by an outside client must neither
// decide (the edge's Decider ignores it) nor reach a handler that might copy
// inbound metadata onto its own outgoing calls. The Decider still sees the
// call's metadata as it arrived. The metadata is copied only when the key is
// present. The client interceptors ignore this option.
//
// Default: the incoming metadata is left unchanged.
func WithStripDecision() Option {
	return optionFunc(func(c *config) { c.strip = true })
}

// stripDecision returns a child of ctx whose incoming metadata is a copy of
// ctx's without x-canary-decision, and true; ctx itself and false when the
// key is absent.
func stripDecision(ctx context.Context) (context.Context, bool) {
	if len(metadata.ValueFromIncomingContext(ctx, tenant.GRPC.Decision)) == 0 {
		return ctx, false
	}
	md, _ := metadata.FromIncomingContext(ctx) // a copy
	delete(md, tenant.GRPC.Decision)
	return metadata.NewIncomingContext(ctx, md), true
}
