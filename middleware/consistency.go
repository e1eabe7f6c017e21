package middleware

import (
	"net/http"

	"github.com/reqcanary/canary/tenant"
)

// WithPositionSigner makes [Transport] send, with each call of a request
// that has written (the request's write position,
// [tenant.PositionFromContext], which dbwrap raises after each write), the
// consistency token that sign returns for the request's labels and that
// position, under X-Canary-Consistency
// (tenant.DecisionSigner.PositionSigner makes one). The called service's
// engine verifies it and its database reads then see those writes (see
// docs/db-routing.md). A request that has not written sends no token and
// costs nothing more. [New] ignores this option.
//
// Default: nil, no token is sent, and any X-Canary-Consistency already on
// the outgoing request is removed. A nil sign keeps the default.
func WithPositionSigner(sign tenant.PositionSignFunc) Option {
	return optionFunc(func(c *config) {
		if sign != nil {
			c.signPos = sign
		}
	})
}

// propagatePosition writes the consistency token of req's write position
// onto sink, or removes X-Canary-Consistency when there is none to send.
func (t *transport) propagatePosition(sink *headerSink, req *http.Request, l tenant.Labels) error {
	var pos uint64
	if t.signPos != nil {
		pos = tenant.PositionFromContext(req.Context())
	}
	return tenant.PropagatePosition(sink, tenant.HTTP, l, pos, t.signPos)
}
