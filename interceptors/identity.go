package interceptors

import (
	"context"
	"net/netip"

	"google.golang.org/grpc/metadata"

	"github.com/reqcanary/canary/tenant"
)

// IdentityFunc returns the tenant and user of an inbound call, as an
// authentication layer established them: typically an auth interceptor
// earlier in the chain (grpc.ChainUnaryInterceptor(auth, canary)) that
// verified the caller's token and stored its claims in ctx. ok=false means
// the function does not know the call's identity. Either id may be empty. It
// runs on the call's goroutine, must be fast, and must be safe for
// concurrent use.
type IdentityFunc func(ctx context.Context) (tenantID, userID string, ok bool)

// WithIdentity makes the server interceptors take each call's tenant and
// user from fn instead of the x-tenant-id and x-user-id metadata: the
// Decider sees what fn returns under those keys, checked against the same
// limits (a value that breaks them fails the call with
// codes.InvalidArgument naming identity.tenant or identity.user). When fn
// returns ok=false, the metadata is believed only under
// [WithIdentityFromHeaders] and only from its trusted peers; otherwise the
// call has no identity. Identity metadata that was not believed is removed
// from the incoming metadata the handler sees. A nil fn is ignored; the
// client interceptors ignore this option.
//
// Default: the identity is read from the metadata of every call, which is
// right only for a service behind a gateway that sets (or removes) it on
// every call.
func WithIdentity(fn IdentityFunc) Option {
	return optionFunc(func(c *config) {
		if fn != nil {
			c.identity = fn
		}
	})
}

// WithIdentityFromHeaders makes the server interceptors believe the
// x-tenant-id and x-user-id metadata only from peers within trusted (the
// gateways that set them), checked against the connection's remote address.
// A call from any other peer (or from a peer with no IP address, such as a
// Unix socket or bufconn) has no identity from its metadata: it is decided as
// if it carried neither key, malformed values are not an error, and the
// handler does not see them. Invalid prefixes match nothing. Repeated use
// adds prefixes. The client interceptors ignore this option.
//
// Default: the identity metadata of every peer is believed (see
// [WithIdentity]).
func WithIdentityFromHeaders(trusted ...netip.Prefix) Option {
	ps := make([]netip.Prefix, 0, len(trusted))
	for _, p := range trusted {
		if p.IsValid() {
			ps = append(ps, p.Masked())
		}
	}
	return optionFunc(func(c *config) {
		c.idRestricted = true
		c.idPeers = append(c.idPeers, ps...)
	})
}

// WithStripOverride makes the server interceptors remove the override keys
// from the incoming metadata the handler sees, once the call is decided:
// x-canary and the key that key returns (the plan's override key, read per
// call; "" for none). It is for the edge, so a handler that copies inbound
// metadata onto its own calls cannot hand a client's override to a
// downstream that trusts this service's network. The Decider still sees the
// metadata as it arrived. A nil key removes x-canary alone. The client
// interceptors ignore this option.
//
// Default: the incoming metadata is left unchanged.
func WithStripOverride(key func() string) Option {
	return optionFunc(func(c *config) {
		if key == nil {
			key = func() string { return "" }
		}
		c.stripOverride = key
	})
}

// source returns the Source the Decider reads for the call whose context is
// ctx and whose metadata src reads, and whether the call carries identity
// metadata that was not believed. The default is src itself.
func (c *config) source(ctx context.Context, src tenant.Source) (tenant.Source, bool, error) {
	if c.identity == nil && !c.idRestricted {
		return src, false, nil
	}
	w := tenant.GRPC
	if c.identity != nil {
		if t, u, ok := c.identity(ctx); ok {
			if err := tenant.CheckIdentity(t, u); err != nil {
				return nil, false, err
			}
			return tenant.NewIdentitySource(src, w, t, u), hasIdentity(ctx), nil
		}
	}
	if c.idRestricted && trusted(peerAddr(ctx), c.idPeers) {
		return src, false, nil
	}
	return tenant.NewIdentitySource(src, w, "", ""), hasIdentity(ctx), nil
}

func hasIdentity(ctx context.Context) bool {
	return len(metadata.ValueFromIncomingContext(ctx, tenant.GRPC.Tenant)) > 0 ||
		len(metadata.ValueFromIncomingContext(ctx, tenant.GRPC.User)) > 0
}

func trusted(a netip.Addr, ps []netip.Prefix) bool {
	if !a.IsValid() {
		return false
	}
	for _, p := range ps {
		if p.Contains(a) {
			return true
		}
	}
	return false
}
