package canary

import (
	"net/netip"
	"strings"

	"github.com/reqcanary/canary/tenant"
)

// compiledPlan is a validated Plan in the form Decide reads: it is immutable
// once built and shared by all requests through an atomic pointer.
type compiledPlan struct {
	plan      Plan
	threshold int                      // buckets below it are canary
	tenants   map[string]tenant.Cohort // the tenant lists
	headerHTTP,
	headerGRPC string // the override key on each wire
	// unusable marks the stand-in of a plan that could not be used at start
	// (compileUnusable): everyone stable with reason plan-error.
	unusable bool
}

// compileUnusable is the plan an engine serves when it has no usable plan at
// start (a plan file or store plan refused, the store unreachable without a
// cache): everyone stable, no override, and the reason plan-error, so that
// labels, headers and metrics tell it apart from a 0 % plan.
func compileUnusable() *compiledPlan {
	c, _ := compile(fallbackPlan())
	c.unusable = true
	return c
}

// compile validates p (a copy is kept) and builds its compiled form.
func compile(p Plan) (*compiledPlan, error) {
	p = p.clone()
	if err := joinPlanErrors(validatePlan(&p, nil)); err != nil {
		return nil, err
	}
	c := &compiledPlan{
		plan:       p,
		threshold:  percentBuckets(p.CanaryPercent),
		tenants:    make(map[string]tenant.Cohort, len(p.Tenants.Canary)+len(p.Tenants.Stable)),
		headerHTTP: p.Override.Header,
		headerGRPC: strings.ToLower(p.Override.Header),
	}
	for _, t := range p.Tenants.Canary {
		c.tenants[t] = tenant.Canary
	}
	for _, t := range p.Tenants.Stable {
		c.tenants[t] = tenant.Stable
	}
	return c, nil
}

// overrideKey returns the key of the override header on wire w.
func (c *compiledPlan) overrideKey(w tenant.Wire) string {
	switch w.Tenant {
	case tenant.HTTP.Tenant:
		return c.headerHTTP
	case tenant.GRPC.Tenant:
		return c.headerGRPC
	}
	return w.Key(c.headerHTTP)
}

// trusts reports whether the plan honours overrides from peer.
func (c *compiledPlan) trusts(peer netip.Addr) bool {
	if !peer.IsValid() {
		return false
	}
	peer = peer.Unmap()
	for _, p := range c.plan.Override.TrustedCIDRs {
		if p.Contains(peer) {
			return true
		}
	}
	return false
}
