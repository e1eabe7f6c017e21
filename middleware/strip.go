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

// stripDecision returns r without X-Canary-Decision, sharing nothing with r
// that it changes; r itself when r has no such header.
func stripDecision(r *http.Request) *http.Request {
	if _, ok := r.Header[tenant.HeaderDecision]; !ok {
		return r
	}
	h := r.Header.Clone()
	delete(h, tenant.HeaderDecision)
	r2 := new(http.Request)
	*r2 = *r
	r2.Header = h
	return r2
}
