package canary

import (
	"context"

	"github.com/reqcanary/canary/tenant"
)

// Decide labels one request: it reads the tenant, user and override from
// req.Source (under req.Wire's names, the override under the plan's
// override.header), and decides the cohort in this order of precedence, the
// first rule that applies giving the Labels.Reason:
//
//  1. kill switch on: stable, "guard" when only a tripped guard holds it
//     (this process's or, with a fleet switch, another's), otherwise
//     "kill-switch" (run-time, plan or the fleet's operator switch);
//  2. a signed upstream decision (X-Canary-Decision) that verifies under
//     the engine's key and has not expired, when the engine has a key
//     ([WithSigningKey]) and is not an edge ([WithEdge]): its cohort,
//     bucket, tenant, user hash and plan version exactly, "upstream" (the
//     override header is then not looked at);
//  3. an override ("canary" or "stable") from a peer in
//     override.trusted_cidrs: that cohort, "override";
//  4. tenant on tenants.stable: stable, "tenant-stable";
//  5. tenant on tenants.canary: canary, "tenant-canary";
//  6. neither tenant nor user: stable, "no-key";
//  7. otherwise the bucket: canary when below canary_percent*100, else
//     stable, "percent".
//
// An engine that has no usable plan (its plan file or store plan was
// refused at start, or the store was unreachable without a cache file)
// decides stable with "plan-error" in place of rules 3 to 7, until a good
// plan arrives ([Status].PlanUnusable).
//
// A decision that does not verify (forged, tampered, signed with another
// key, expired, malformed, repeated) is ignored and counted
// ([Engine.RejectedDecisions]), never an error. Inbound W3C baggage never
// decides anything.
//
// With a signing key, an engine that is not an edge also reads the
// request's consistency token (X-Canary-Consistency): when exactly one
// verifies, has not expired and was signed for the decided tenant and user
// hash, its write position becomes Labels.Position, which the request's
// context hands to dbwrap (reads then see the upstream service's writes).
// A token that does not verify is ignored and counted
// ([Engine.RejectedConsistencyTokens]), never an error.
//
// An override from an untrusted peer is ignored whatever its value, and
// counted ([Engine.UntrustedOverrides]). Decide returns a [*tenant.FieldError]
// for a tenant or user that breaks the limits, and for a trusted peer's
// override that is neither canary nor stable. It never blocks and is safe
// for concurrent use.
func (e *Engine) Decide(ctx context.Context, req tenant.Request) (tenant.Labels, error) {
	p := e.cur.Load()
	t, err := tenant.ReadTenant(req.Source, req.Wire)
	if err != nil {
		return tenant.Labels{}, err
	}
	u, err := tenant.ReadUser(req.Source, req.Wire)
	if err != nil {
		return tenant.Labels{}, err
	}

	var (
		up           tenant.Decision
		fromUpstream bool
	)
	if e.sig.signer != nil { // only an engine with a key adopts or reads tokens
		up, fromUpstream = e.upstream(ctx, &req)
	}

	var override tenant.Cohort
	if key := p.overrideKey(req.Wire); !fromUpstream && req.Source != nil && len(req.Source.Values(key)) > 0 {
		if p.trusts(req.Peer) {
			if override, err = tenant.ReadOverride(req.Source, key); err != nil {
				return tenant.Labels{}, err
			}
		} else {
			e.untrusted.Add(1)
			e.counter.Add(ctx, 1)
		}
	}

	killed := e.kill.Load() || p.plan.KillSwitch || e.g.kill.Load() != 0
	if fromUpstream && !killed {
		// Adopted exactly: the upstream's tenant, user hash and bucket, so
		// nothing is hashed here.
		l := up.Labels()
		l.Reason, l.TraceID = tenant.ReasonUpstream, req.TraceID
		l.Position = e.position(ctx, &req, &l)
		e.g.tel.decided(ctx, l)
		return l, nil
	}

	l := tenant.Labels{
		Tenant:      t,
		UserHash:    e.userHash(req.Source, t, u),
		Bucket:      tenant.BucketOf(p.plan.Salt, t, u),
		TraceID:     req.TraceID,
		PlanVersion: p.plan.Version,
	}

	switch {
	case killed:
		l.Cohort, l.Reason = tenant.Stable, e.killReason(p)
	case override != "":
		l.Cohort, l.Reason = override, tenant.ReasonOverride
	default:
		l.Cohort, l.Reason = p.rule(t, l.Bucket)
	}
	if e.sig.signer != nil {
		l.Position = e.position(ctx, &req, &l)
	}
	e.g.tel.decided(ctx, l)
	return l, nil
}

// userHash returns the user hash of u within t, written into the memory
// the request's Source offers ([tenant.UserHashBuffer]) when it offers
// some, so that nothing is allocated for it.
func (e *Engine) userHash(src tenant.Source, t, u string) string {
	if u == "" {
		return ""
	}
	if b, ok := src.(tenant.UserHashBuffer); ok {
		if buf := b.UserHashBuffer(); buf != nil {
			return e.hasher.HashInto(buf, t, u)
		}
	}
	return e.hasher.Hash(t, u)
}

// rule applies the plan's tenant lists and percentage.
func (p *compiledPlan) rule(t string, bucket int) (tenant.Cohort, string) {
	if p.unusable {
		return tenant.Stable, tenant.ReasonPlanError
	}
	if t != "" {
		switch p.tenants[t] {
		case tenant.Stable:
			return tenant.Stable, tenant.ReasonTenantStable
		case tenant.Canary:
			return tenant.Canary, tenant.ReasonTenantCanary
		}
	}
	switch {
	case bucket == tenant.NoBucket:
		return tenant.Stable, tenant.ReasonNoKey
	case bucket < p.threshold:
		return tenant.Canary, tenant.ReasonPercent
	}
	return tenant.Stable, tenant.ReasonPercent
}
