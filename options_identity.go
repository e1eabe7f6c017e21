package canary

import (
	"context"
	"net/http"
	"net/netip"

	"github.com/reqcanary/canary/interceptors"
	"github.com/reqcanary/canary/middleware"
)

// identityConfig is what the identity options set.
type identityConfig struct {
	http       func(*http.Request) (string, string, bool)
	grpc       func(context.Context) (string, string, bool)
	restricted bool
	peers      []netip.Prefix
}

// WithIdentity makes the engine's middleware take each request's tenant and
// user from fn (typically the claims an earlier authentication middleware
// verified and put in r.Context()) instead of the X-Tenant-ID and X-User-ID
// headers; see middleware.WithIdentity. When fn returns ok=false the headers
// count only from the peers of [WithIdentityFromHeaders]; without that option
// the request then has no identity (stable, reason no-key). A nil fn is
// ignored.
//
// Default: the identity headers of every request are believed, which is
// right only behind a gateway that sets them on every request. A service
// that clients reach directly must use WithIdentity or
// WithIdentityFromHeaders, or any client can put itself into a canary tenant.
func WithIdentity(fn func(r *http.Request) (tenantID, userID string, ok bool)) Option {
	return optionFunc(func(c *config) {
		if fn != nil {
			c.identity.http = fn
		}
	})
}

// WithGRPCIdentity makes the engine's server interceptors take each call's
// tenant and user from fn (typically the claims an auth interceptor earlier
// in the chain stored in ctx) instead of the x-tenant-id and x-user-id
// metadata; see interceptors.WithIdentity and [WithIdentity], which it
// mirrors for gRPC. A nil fn is ignored.
//
// Default: the identity metadata of every call is believed.
func WithGRPCIdentity(fn func(ctx context.Context) (tenantID, userID string, ok bool)) Option {
	return optionFunc(func(c *config) {
		if fn != nil {
			c.identity.grpc = fn
		}
	})
}

// WithIdentityFromHeaders makes the engine's middleware and server
// interceptors believe the identity headers (X-Tenant-ID, X-User-ID; gRPC
// x-tenant-id, x-user-id) only from peers within trusted: the gateways that
// set them. The peer is the connection's remote address, never a forwarded
// one. A request from any other peer carries no identity (it is decided as
// anonymous: stable with reason no-key, or 400 under [WithRequireTenant]),
// and its handler does not see the headers. With no prefixes no peer is
// trusted. Repeated use adds prefixes; New fails on an invalid prefix.
//
// Default: the identity headers of every peer are believed.
func WithIdentityFromHeaders(trusted ...netip.Prefix) Option {
	ps := append([]netip.Prefix(nil), trusted...)
	return optionFunc(func(c *config) {
		for _, p := range ps {
			if !p.IsValid() {
				c.errorf("WithIdentityFromHeaders: invalid prefix %s", p)
				return
			}
		}
		c.identity.restricted = true
		c.identity.peers = append(c.identity.peers, ps...)
	})
}

// middlewareIdentityOptions are the middleware options of the identity and
// edge configuration.
func (e *Engine) middlewareIdentityOptions(c *config) []middleware.Option {
	var opts []middleware.Option
	if c.identity.http != nil {
		opts = append(opts, middleware.WithIdentity(c.identity.http))
	}
	if c.identity.restricted {
		opts = append(opts, middleware.WithIdentityFromHeaders(c.identity.peers...))
	}
	if c.sign.edge {
		opts = append(opts, middleware.WithStripOverride(func() string { return e.cur.Load().headerHTTP }))
	}
	return opts
}

// interceptorIdentityOptions are the server interceptor options of the
// identity and edge configuration.
func (e *Engine) interceptorIdentityOptions() []interceptors.Option {
	c := e.idCfg
	var opts []interceptors.Option
	if c.grpc != nil {
		opts = append(opts, interceptors.WithIdentity(c.grpc))
	}
	if c.restricted {
		opts = append(opts, interceptors.WithIdentityFromHeaders(c.peers...))
	}
	if e.sig.edge {
		opts = append(opts, interceptors.WithStripOverride(func() string { return e.cur.Load().headerGRPC }))
	}
	return opts
}
