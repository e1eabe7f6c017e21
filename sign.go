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

// signing is the engine's signed-decision state.
type signing struct {
	signer   *tenant.DecisionSigner // nil without WithSigningKey
	sign     tenant.SignFunc        // nil without WithSigningKey
	edge     bool
	rejected atomic.Uint64
	counter  metric.Int64Counter
}

// Values of the reason attribute of canary.decision.rejected.
const (
	rejectMalformed = "malformed" // not the v1 format, or a field out of range
	rejectVersion   = "version"   // a version this engine does not read
	rejectSignature = "signature" // no key verifies: forged, tampered or another key
	rejectExpired   = "expired"   // verified, but past its expiry
	rejectRepeated  = "repeated"  // more than one decision header
)

// rejectedAttrs are the attribute sets of canary.decision.rejected, made once.
var rejectedAttrs = func() map[string]metric.AddOption {
	m := map[string]metric.AddOption{}
	for _, r := range []string{rejectMalformed, rejectVersion, rejectSignature, rejectExpired, rejectRepeated} {
		m[r] = metric.WithAttributeSet(attribute.NewSet(attribute.String("reason", r)))
	}
	return m
}()

// initSigning sets up signing and verification from cfg (already checked).
func (e *Engine) initSigning(cfg *config) {
	e.sig.edge = cfg.sign.edge
	if cfg.sign.keys == nil {
		return
	}
	s, err := tenant.NewDecisionSigner(cfg.sign.keys[0], cfg.sign.keys[1:]...)
	if err != nil { // the option checked the lengths
		e.log.Error("canary: decision signing disabled", "error", err)
		return
	}
	e.sig.signer = s
	e.sig.sign = s.LabelSigner(cfg.sign.ttl, nil)
	e.initConsistency(cfg, s)
	e.sig.counter, err = cfg.meter.Meter(instrumentationName).Int64Counter("canary.decision.rejected",
		metric.WithUnit("{request}"),
		metric.WithDescription("Inbound signed decisions ignored because they did not verify, by reason"))
	if err != nil {
		e.log.Warn("canary: cannot create the canary.decision.rejected counter", "error", err)
		e.sig.counter, _ = noop.NewMeterProvider().Meter(instrumentationName).Int64Counter("canary.decision.rejected")
	}
}

// upstream returns the decision req carries when the engine should adopt it:
// the engine has a signing key, is not an edge, and the request carries
// exactly one decision that verifies and has not expired. A decision that
// does not pass is counted and ignored.
func (e *Engine) upstream(ctx context.Context, req *tenant.Request) (tenant.Decision, bool) {
	s := &e.sig
	if s.signer == nil || s.edge || req.Source == nil {
		return tenant.Decision{}, false
	}
	vs := req.Source.Values(req.Wire.Decision)
	switch len(vs) {
	case 0:
		return tenant.Decision{}, false
	case 1:
	default:
		e.reject(ctx, rejectRepeated)
		return tenant.Decision{}, false
	}
	d, err := s.signer.Verify(vs[0], time.Now())
	switch {
	case err == nil:
		return d, true
	case errors.Is(err, tenant.ErrDecisionSignature):
		e.reject(ctx, rejectSignature)
	case errors.Is(err, tenant.ErrDecisionExpired):
		e.reject(ctx, rejectExpired)
	case errors.Is(err, tenant.ErrDecisionVersion):
		e.reject(ctx, rejectVersion)
	default:
		e.reject(ctx, rejectMalformed)
	}
	return tenant.Decision{}, false
}

func (e *Engine) reject(ctx context.Context, reason string) {
	e.sig.rejected.Add(1)
	e.sig.counter.Add(ctx, 1, rejectedAttrs[reason])
}

// RejectedDecisions returns how many inbound signed decisions
// (X-Canary-Decision) the engine ignored since it was made because they did
// not verify: forged or tampered (no key verifies), expired, malformed, of
// an unknown version, or repeated. Such requests are decided afresh from
// the plan; a rejected decision is never an error. The same count is
// exported as the OpenTelemetry counter canary.decision.rejected, with a
// reason attribute (signature, expired, malformed, version, repeated).
// Engines without a signing key, and edges, ignore decisions without
// verifying them and count nothing.
func (e *Engine) RejectedDecisions() uint64 { return e.sig.rejected.Load() }
