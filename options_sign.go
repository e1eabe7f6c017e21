package canary

import (
	"time"

	"github.com/reqcanary/canary/tenant"
)

// signConfig is what the signed-decision options set.
type signConfig struct {
	keys [][]byte      // keys[0] signs; all verify; nil: no key
	edge bool          // WithEdge
	ttl  time.Duration // WithDecisionTTL; 0: tenant.DefaultDecisionTTL
}

// WithSigningKey sets the key that signs and verifies decisions
// (X-Canary-Decision, metadata x-canary-decision; see docs/propagation.md),
// and any previous keys that still verify, for rotation: deploy the new key
// with the old one as previous everywhere, then drop the old one. Every key
// must be at least 16 bytes ([tenant.MinDecisionKeyLen]); keys are copied.
//
// With a key, the engine's outbound adapters ([Engine.Transport], the client
// interceptors) send a signed decision with each labelled call, and an
// engine that is not an edge ([WithEdge]) adopts a valid, unexpired inbound
// decision exactly (see [Engine.Decide]). Services that share the key trust
// each other's decisions; keep it secret like any credential.
//
// Default: no key. No decision is sent, and inbound decisions are ignored.
func WithSigningKey(key []byte, previous ...[]byte) Option {
	keys := [][]byte{append([]byte(nil), key...)}
	for _, p := range previous {
		keys = append(keys, append([]byte(nil), p...))
	}
	return optionFunc(func(c *config) {
		if len(keys[0]) < tenant.MinDecisionKeyLen {
			c.errorf("WithSigningKey: key of %d bytes is shorter than %d bytes", len(keys[0]), tenant.MinDecisionKeyLen)
			return
		}
		for i, p := range keys[1:] {
			if len(p) < tenant.MinDecisionKeyLen {
				c.errorf("WithSigningKey: previous key %d of %d bytes is shorter than %d bytes", i, len(p), tenant.MinDecisionKeyLen)
				return
			}
		}
		c.sign.keys = keys
	})
}

// WithEdge marks the engine as an edge: the service where outside clients'
// requests enter. An edge never adopts an inbound decision, even one that
// verifies under its key, and its middleware and server interceptors remove
// X-Canary-Decision (x-canary-decision) before the handler runs, so a
// client's decision can neither decide nor be forwarded. It decides every
// request afresh from its plan, and, with [WithSigningKey], signs what it
// decided for the services it calls.
//
// Default: not an edge; with a signing key, valid inbound decisions are
// adopted.
func WithEdge() Option {
	return optionFunc(func(c *config) { c.sign.edge = true })
}

// WithDecisionTTL sets how long the decisions the engine signs stay valid:
// long enough for the slowest chain of calls a request makes, short enough
// that a captured header is soon useless. Hops must have clocks within a
// small fraction of it of each other. New fails when d is not positive.
//
// Default: [tenant.DefaultDecisionTTL] (60s).
func WithDecisionTTL(d time.Duration) Option {
	return optionFunc(func(c *config) {
		if d <= 0 {
			c.errorf("WithDecisionTTL: %v is not a positive duration", d)
			return
		}
		c.sign.ttl = d
	})
}
