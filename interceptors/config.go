package interceptors

import (
	"context"
	"net/netip"
	"time"

	"google.golang.org/grpc/codes"

	"github.com/reqcanary/canary/tenant"
)

// Option configures the interceptors. Options that concern only one side
// (server or client) are ignored by the other.
type Option interface{ apply(*config) }

type optionFunc func(*config)

func (f optionFunc) apply(c *config) { f(c) }

type config struct {
	sign      tenant.SignFunc
	signPos   tenant.PositionSignFunc // consistency.go: WithPositionSigner
	outcome   OutcomeFunc
	outcomeOn func() bool // WithOutcomeSwitch
	strip     bool        // WithStripDecision

	identity      IdentityFunc   // identity.go: WithIdentity
	idRestricted  bool           // identity.go: WithIdentityFromHeaders given
	idPeers       []netip.Prefix // identity.go: WithIdentityFromHeaders
	stripOverride func() string  // identity.go: WithStripOverride
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

// OutcomeFunc receives the outcome of one labelled server call: the labelled
// context the handler ran with, the call's labels, the status code of the
// handler's error (codes.OK for nil) and how long the handler took.
type OutcomeFunc func(ctx context.Context, l tenant.Labels, code codes.Code, elapsed time.Duration)

// WithOutcome makes the server interceptors call fn after the handler of each
// labelled call returns, with the call's labels, the status code the client
// will see for the handler's error (a status error's code; codes.Canceled or
// codes.DeadlineExceeded for the context errors; codes.Unknown for any other
// error; codes.OK for nil) and the handler's duration, measured from just
// before the handler runs. For a stream, the handler returns when the stream
// ends. Calls rejected before the handler (invalid metadata, a failed
// decision) are not reported. fn runs on the call's goroutine, so it must be
// fast and safe for concurrent use.
//
// Default: nil, nothing is called and no clock is read. A nil fn keeps the
// default. The client interceptors ignore this option. [WithOutcomeSwitch]
// turns the reporting off while nobody needs it.
func WithOutcome(fn func(ctx context.Context, l tenant.Labels, code codes.Code, elapsed time.Duration)) Option {
	return optionFunc(func(c *config) {
		if fn != nil {
			c.outcome = fn
		}
	})
}

// WithOutcomeSwitch makes the server interceptors ask on, before each
// labelled call's handler runs, whether the call's outcome is wanted. While
// on returns false the call is served as without [WithOutcome]: no clock is
// read and the outcome function is not called. The engine uses it to skip
// the bookkeeping while no guard is configured. on must be fast (an atomic
// load) and safe for concurrent use.
//
// Default: nil, every labelled call is reported when WithOutcome is given. A
// nil on keeps the default. The client interceptors ignore this option.
func WithOutcomeSwitch(on func() bool) Option {
	return optionFunc(func(c *config) {
		if on != nil {
			c.outcomeOn = on
		}
	})
}

// wantOutcome reports whether the outcome of the call at hand is to be
// reported.
func (c *config) wantOutcome() bool {
	return c.outcome != nil && (c.outcomeOn == nil || c.outcomeOn())
}
