package middleware

import (
	"net/http"
	"net/netip"

	"github.com/reqcanary/canary/tenant"
)

// IdentityFunc returns the tenant and user of an inbound request, as an
// authentication layer established them (for example the claims of a token
// that an earlier middleware verified and stored in r.Context()). ok=false
// means the function does not know the request's identity. Either id may be
// empty (no tenant, or no user). It runs on the request's goroutine, must be
// fast, and must be safe for concurrent use.
type IdentityFunc func(r *http.Request) (tenantID, userID string, ok bool)

// WithIdentity makes [New] take each request's tenant and user from fn
// instead of the X-Tenant-ID and X-User-ID headers: the Decider sees what fn
// returns under those names, checked against the same limits (a tenant or
// user id that breaks them is answered 400 naming identity.tenant or
// identity.user). When fn returns ok=false, the headers are believed only
// under [WithIdentityFromHeaders] and only from its trusted peers; otherwise
// the request has no identity (no tenant, no user: stable with reason
// no-key, or 400 under [WithRequireTenant]). Identity headers that were not
// believed are removed from the request the handler sees. A nil fn is
// ignored.
//
// Default: the identity is read from the headers of every request, which is
// right only for a service behind a gateway that sets (or removes) them on
// every request; any client that reaches the service directly could pick
// its tenant and user.
func WithIdentity(fn IdentityFunc) Option {
	return optionFunc(func(c *config) {
		if fn != nil {
			c.identity = fn
		}
	})
}

// WithIdentityFromHeaders makes [New] believe the X-Tenant-ID and X-User-ID
// headers only from the peers within trusted: the gateways or proxies that
// set them. The peer checked is the connection's remote address
// (Request.RemoteAddr), never a forwarded one, since the identity headers
// are written by the hop that connects. A request from any other peer has
// no header identity: it is decided as if it carried neither header (stable
// with reason no-key, unless [WithIdentity] knows better), its malformed
// identity headers are not an error, and the handler does not see them.
// With no prefixes, no peer is trusted. Repeated use adds prefixes; [New]
// panics on an invalid prefix.
//
// Default: the identity headers of every peer are believed (see
// [WithIdentity]).
func WithIdentityFromHeaders(trusted ...netip.Prefix) Option {
	ps := append([]netip.Prefix(nil), trusted...)
	return optionFunc(func(c *config) {
		c.idRestricted = true
		c.idPeers = append(c.idPeers, ps...)
	})
}

// source returns the Source the Decider reads for r, and whether r carries
// identity headers that were not believed (to be removed before the handler
// runs). The default is r's headers, with no allocation.
func (c *config) source(r *http.Request) (tenant.Source, bool, error) {
	hs := headerSource(r.Header)
	if c.identity == nil && !c.idRestricted {
		return hs, false, nil
	}
	if c.identity != nil {
		if t, u, ok := c.identity(r); ok {
			if err := tenant.CheckIdentity(t, u); err != nil {
				return nil, false, err
			}
			return tenant.NewIdentitySource(hs, tenant.HTTP, t, u), hasIdentityHeaders(r.Header), nil
		}
	}
	if c.idRestricted && inPrefixes(parseRemoteAddr(r.RemoteAddr), c.idPeers) {
		return hs, false, nil
	}
	return tenant.NewIdentitySource(hs, tenant.HTTP, "", ""), hasIdentityHeaders(r.Header), nil
}

func hasIdentityHeaders(h http.Header) bool {
	return len(h[canonTenant]) > 0 || len(h[canonUser]) > 0
}
