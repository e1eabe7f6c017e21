package middleware

import (
	"net/http"

	"github.com/reqcanary/canary/tenant"
)

// WithStripDecision makes [New] remove X-Canary-Decision from each request
// before calling the next handler, for services at the edge of the trust
// boundary: a decision sent by an outside client must neither decide (the
// edge's Decider ignores it) nor reach a handler that might copy inbound
// headers onto its own outgoing calls. The header map is copied before the
// header is removed, and only when the header is present. [Transport]
// ignores this option.
//
// Default: inbound headers are passed to the handler unchanged.
func WithStripDecision() Option {
	return optionFunc(func(c *config) { c.stripDecision = true })
}

// WithStripOverride makes [New] remove the override headers from each
// request once it is decided, before calling the next handler: X-Canary and
// the header that header returns (the plan's override header, read per
// request since a plan can change it; "" for none). It is for the edge: the
// cohort is in the labels, which [Transport] writes onto outgoing calls, so
// no handler needs the client's header, and a handler that copies inbound
// headers onto its own calls cannot hand a client's override to a downstream
// that trusts this service's network. A trusted peer's override still
// decides: the Decider sees the request as it arrived. The header map is
// copied only when one of the headers is present. A nil header removes
// X-Canary alone.
//
// Default: inbound headers are passed to the handler unchanged.
func WithStripOverride(header func() string) Option {
	return optionFunc(func(c *config) {
		if header == nil {
			header = func() string { return "" }
		}
		c.stripOverride = header
	})
}

// strip returns r without the headers the options remove, and without the
// identity headers when dropIdentity; r itself when it has none of them. The
// header map is copied before anything is removed.
func (c *config) strip(r *http.Request, dropIdentity bool) *http.Request {
	var keys [5]string
	n := 0
	add := func(k string) {
		if _, ok := r.Header[k]; ok && k != "" {
			keys[n] = k
			n++
		}
	}
	if c.stripDecision {
		add(tenant.HeaderDecision)
	}
	if c.stripOverride != nil {
		add(tenant.HeaderOverride)
		if k := http.CanonicalHeaderKey(c.stripOverride()); k != tenant.HeaderOverride {
			add(k)
		}
	}
	if dropIdentity {
		add(canonTenant)
		add(canonUser)
	}
	if n == 0 {
		return r
	}
	h := r.Header.Clone()
	for _, k := range keys[:n] {
		delete(h, k)
	}
	r2 := new(http.Request)
	*r2 = *r
	r2.Header = h
	return r2
}
