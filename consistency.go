package canary

import (
	"context"
	"errors"
	"sync/atomic"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/metric/noop"

	"github.com/reqcanary/canary/tenant"
)

// consistency is the engine's state for consistency tokens: the signed write
// positions that travel with a request's outgoing calls so that the called
// services read what it wrote (X-Canary-Consistency; see
// docs/db-routing.md). It uses the decision signing key.
type consistency struct {
	sign     tenant.PositionSignFunc // nil without WithSigningKey
	rejected atomic.Uint64
	counter  metric.Int64Counter
}

// Values of the reason attribute of canary.consistency.rejected, besides
// those shared with canary.decision.rejected (malformed, signature, expired,
// repeated).
const rejectUser = "user" // verified, but signed for another tenant or user

// positionRejectedAttrs are the attribute sets of
// canary.consistency.rejected, made once.
var positionRejectedAttrs = func() map[string]metric.AddOption {
	m := map[string]metric.AddOption{}
	for _, r := range []string{rejectMalformed, rejectSignature, rejectExpired, rejectRepeated, rejectUser} {
		m[r] = metric.WithAttributeSet(attribute.NewSet(attribute.String("reason", r)))
	}
	return m
}()

// initConsistency sets up signing and verifying consistency tokens with the
// decision signer (nil: no key, no tokens).
func (e *Engine) initConsistency(cfg *config, s *tenant.DecisionSigner) {
	if s == nil {
		return
	}
	e.cons.sign = s.PositionSigner(cfg.sign.ttl, nil)
	var err error
	e.cons.counter, err = cfg.meter.Meter(instrumentationName).Int64Counter("canary.consistency.rejected",
		metric.WithUnit("{request}"),
		metric.WithDescription("Inbound consistency tokens ignored because they did not verify, by reason"))
	if err != nil {
		e.log.Warn("canary: cannot create the canary.consistency.rejected counter", "error", err)
		e.cons.counter, _ = noop.NewMeterProvider().Meter(instrumentationName).Int64Counter("canary.consistency.rejected")
	}
}

// position returns the write position of the consistency token req carries
// for a request labelled l, when the engine has a signing key, is not an
// edge, and the request carries exactly one token that verifies, has not
// expired and was signed for l's tenant and user hash; else 0. A token that
// does not pass is counted and ignored. A request without the key costs one
// lookup.
func (e *Engine) position(ctx context.Context, req *tenant.Request, l *tenant.Labels) uint64 {
	s := e.sig.signer
	if s == nil || e.sig.edge || req.Source == nil || req.Wire.Consistency == "" {
		return 0
	}
	vs := req.Source.Values(req.Wire.Consistency)
	switch len(vs) {
	case 0:
		return 0
	case 1:
	default:
		e.rejectPosition(ctx, rejectRepeated)
		return 0
	}
	p, err := s.VerifyPosition(vs[0], l.Tenant, l.UserHash, time.Now())
	switch {
	case err == nil:
		return p
	case errors.Is(err, tenant.ErrConsistencySignature):
		e.rejectPosition(ctx, rejectSignature)
	case errors.Is(err, tenant.ErrConsistencyExpired):
		e.rejectPosition(ctx, rejectExpired)
	case errors.Is(err, tenant.ErrConsistencyUser):
		e.rejectPosition(ctx, rejectUser)
	default:
		e.rejectPosition(ctx, rejectMalformed)
	}
	return 0
}

func (e *Engine) rejectPosition(ctx context.Context, reason string) {
	e.cons.rejected.Add(1)
	e.cons.counter.Add(ctx, 1, positionRejectedAttrs[reason])
}

// RejectedConsistencyTokens returns how many inbound consistency tokens
// (X-Canary-Consistency, metadata x-canary-consistency) the engine ignored
// since it was made because they did not verify: forged or tampered (no key
// verifies), expired, malformed or oversized, repeated, or signed for
// another tenant or user than the request's (copied from another request).
// Such a request's reads are routed as if no upstream service had written
// for it; a rejected token is never an error. The same count is exported as
// the OpenTelemetry counter canary.consistency.rejected, with a reason
// attribute (signature, expired, malformed, repeated, user). Engines without
// a signing key, and edges, ignore tokens without verifying them and count
// nothing.
func (e *Engine) RejectedConsistencyTokens() uint64 { return e.cons.rejected.Load() }
