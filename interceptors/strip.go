package interceptors

import (
	"context"
	"strings"

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

// wantStrip reports whether the handler's metadata may need stripping.
func (c *config) wantStrip(dropIdentity bool) bool {
	return c.strip || c.stripOverride != nil || dropIdentity
}

// stripMD returns a child of ctx whose incoming metadata is a copy of ctx's
// without the keys the options remove (and the identity keys when
// dropIdentity), and true; ctx itself and false when none is present.
func (c *config) stripMD(ctx context.Context, dropIdentity bool) (context.Context, bool) {
	var keys [5]string
	n := 0
	add := func(k string) {
		if k != "" && len(metadata.ValueFromIncomingContext(ctx, k)) > 0 {
			keys[n] = k
			n++
		}
	}
	if c.strip {
		add(tenant.GRPC.Decision)
	}
	if c.stripOverride != nil {
		add(tenant.GRPC.Override)
		if k := strings.ToLower(c.stripOverride()); k != tenant.GRPC.Override {
			add(k)
		}
	}
	if dropIdentity {
		add(tenant.GRPC.Tenant)
		add(tenant.GRPC.User)
	}
	if n == 0 {
		return ctx, false
	}
	md, _ := metadata.FromIncomingContext(ctx) // a copy, keys lowercased
	for _, k := range keys[:n] {
		delete(md, k)
	}
	return metadata.NewIncomingContext(ctx, md), true
}
