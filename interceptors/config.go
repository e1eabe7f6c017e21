package interceptors

import "github.com/reqcanary/canary/tenant"

// Option configures the interceptors. Options that concern only one side
// (server or client) are ignored by the other.
type Option interface{ apply(*config) }

type optionFunc func(*config)

func (f optionFunc) apply(c *config) { f(c) }

type config struct {
	sign tenant.SignFunc
}

func newConfig(opts []Option) config {
	var c config
	for _, o := range opts {
		if o != nil {
			o.apply(&c)
		}
	}
	return c
}

// WithSigner makes the client interceptors send the signed decision that sign
// returns for the calling request's labels, under x-canary-decision
// ([tenant.DecisionSigner.LabelSigner] makes one). If sign fails, the call
// fails with codes.Internal and is not sent.
//
// Default: nil, no decision is sent, and any x-canary-decision already in the
// outgoing metadata is removed. A nil sign keeps the default.
func WithSigner(sign tenant.SignFunc) Option {
	return optionFunc(func(c *config) {
		if sign != nil {
			c.sign = sign
		}
	})
}
