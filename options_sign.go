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
// decision exactly (see [Engine.Decide]). The same key signs and verifies
// consistency tokens: the outbound adapters send the write position of the
// calling request's writes (X-Canary-Consistency), and a non-edge engine
// hands a valid inbound one to dbwrap through Labels.Position, so that the
// called service reads what the caller wrote (docs/db-routing.md). Services
// that share the key trust each other's decisions and tokens; keep it secret
// like any credential.
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

// Environment variables of the default engine's signed decisions ([Default]
// and the package-level facade read them; [New] does not).
const (
	// EnvDecisionKey holds the default engine's signing key ([WithSigningKey]):
	// its bytes are the key, at least 16 of them.
	EnvDecisionKey = "CANARY_DECISION_KEY"
	// EnvDecisionKeyPrevious holds a previous signing key that still
	// verifies, during a key rotation; used only with EnvDecisionKey.
	EnvDecisionKeyPrevious = "CANARY_DECISION_KEY_PREVIOUS"
	// EnvEdge, set to "true" or "1", makes the default engine an edge
	// ([WithEdge]).
	EnvEdge = "CANARY_EDGE"
)

// signingFromEnv returns the default engine's signing options from the
// environment read by getenv. A key that is too short is logged and ignored
// (with its previous key): the default engine then neither signs nor adopts.
func signingFromEnv(getenv func(string) string, warn func(msg string, args ...any)) []Option {
	var opts []Option
	switch getenv(EnvEdge) {
	case "true", "1":
		opts = append(opts, WithEdge())
	}
	k := getenv(EnvDecisionKey)
	if k == "" {
		return opts
	}
	if len(k) < tenant.MinDecisionKeyLen {
		warn("canary: default engine: "+EnvDecisionKey+" is shorter than 16 bytes; decisions are neither signed nor adopted",
			"length", len(k))
		return opts
	}
	var prev [][]byte
	if p := getenv(EnvDecisionKeyPrevious); p != "" {
		if len(p) < tenant.MinDecisionKeyLen {
			warn("canary: default engine: "+EnvDecisionKeyPrevious+" is shorter than 16 bytes; ignored", "length", len(p))
		} else {
			prev = append(prev, []byte(p))
		}
	}
	return append(opts, WithSigningKey([]byte(k), prev...))
}
