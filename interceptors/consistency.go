package interceptors

import (
	"context"

	"github.com/reqcanary/canary/tenant"
)

// WithPositionSigner makes the client interceptors send, with each call of a
// request that has written (the request's write position,
// [tenant.PositionFromContext], which dbwrap raises after each write), the
// consistency token that sign returns for the request's labels and that
// position, under x-canary-consistency (tenant.DecisionSigner.PositionSigner
// makes one). The called service's engine verifies it and its database
// reads then see those writes (see docs/db-routing.md). If sign fails, the
// call fails with codes.Internal and is not sent. The server interceptors
// ignore this option.
//
// Default: nil, no token is sent, and any x-canary-consistency already in
// the outgoing metadata is removed. A nil sign keeps the default.
func WithPositionSigner(sign tenant.PositionSignFunc) Option {
	return optionFunc(func(c *config) {
		if sign != nil {
			c.signPos = sign
		}
	})
}

// position returns the write position to send with a call made with ctx: 0
// without a position signer or when the request has not written.
func (c config) position(ctx context.Context) uint64 {
	if c.signPos == nil {
		return 0
	}
	return tenant.PositionFromContext(ctx)
}
