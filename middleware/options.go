package middleware

import (
	"net/netip"

	"github.com/reqcanary/canary/tenant"
)

// DefaultFlagKey is the feature_flag.key attribute [New] records unless
// [WithFlagKey] names another.
const DefaultFlagKey = "canary"

// config is what the options set.
type config struct {
	proxies       []netip.Prefix
	requireTenant bool
	flagKey       string
	sign          tenant.SignFunc         // Transport: WithSigner
	signPos       tenant.PositionSignFunc // Transport: WithPositionSigner
	stripDecision bool                    // New: WithStripDecision
	outcome       OutcomeFunc             // outcome.go: WithOutcome
	outcomeOn     func() bool             // outcome.go: WithOutcomeSwitch
	identity      IdentityFunc            // identity.go: WithIdentity
	idRestricted  bool                    // identity.go: WithIdentityFromHeaders given
	idPeers       []netip.Prefix          // identity.go: WithIdentityFromHeaders
	stripOverride func() string           // strip.go: WithStripOverride
}

func newConfig(opts []Option) config {
	c := config{flagKey: DefaultFlagKey}
	for _, o := range opts {
		if o != nil {
			o.apply(&c)
		}
	}
	return c
}

// Option configures [New]. Options are applied in order; nil options are
// ignored.
type Option interface {
	apply(*config)
}

type optionFunc func(*config)

func (f optionFunc) apply(c *config) { f(c) }

// WithTrustedProxies names the reverse proxies whose X-Forwarded-For header
// is believed. When the request's RemoteAddr falls within one of prefixes,
// X-Forwarded-For is walked from right to left, skipping addresses within
// prefixes; the first address outside them is the peer handed to the Decider.
// An entry that does not parse makes the peer unknown (the zero netip.Addr),
// so no override is honoured for that request. When every hop is trusted, the
// leftmost one is the peer.
//
// Default: no proxy is trusted; the peer is always RemoteAddr and forwarded
// headers are ignored, since any client can send them. IPv4-mapped IPv6
// addresses are unmapped before matching, so give IPv4 prefixes for IPv4
// proxies. Repeated use adds prefixes. [New] panics on an invalid prefix
// (such as the zero netip.Prefix).
func WithTrustedProxies(prefixes ...netip.Prefix) Option {
	ps := append([]netip.Prefix(nil), prefixes...)
	return optionFunc(func(c *config) { c.proxies = append(c.proxies, ps...) })
}

// WithRequireTenant makes a request without a tenant an error: it is answered
// with 400 and the body {"error":"X-Tenant-ID: required","field":"X-Tenant-ID"}.
//
// Default: a missing tenant is allowed; such a request is bucketed on its
// user alone, or is stable with reason no-key when it names no user either.
func WithRequireTenant() Option {
	return optionFunc(func(c *config) { c.requireTenant = true })
}

// WithFlagKey sets the value of the feature_flag.key span attribute.
// Default: [DefaultFlagKey]. An empty key is ignored.
func WithFlagKey(key string) Option {
	return optionFunc(func(c *config) {
		if key != "" {
			c.flagKey = key
		}
	})
}
