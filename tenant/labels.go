package tenant

import "fmt"

// Cohort is the group a request belongs to for a rollout: [Stable] or [Canary].
type Cohort string

const (
	// Stable is the cohort of requests served by the current version. It is
	// the default whenever nothing decides otherwise.
	Stable Cohort = "stable"
	// Canary is the cohort of requests served by the version being rolled out.
	Canary Cohort = "canary"
)

// ParseCohort returns the Cohort named by s, which must be exactly "stable" or
// "canary".
func ParseCohort(s string) (Cohort, error) {
	switch Cohort(s) {
	case Stable, Canary:
		return Cohort(s), nil
	}
	return "", fmt.Errorf("%w: cohort %q is neither %q nor %q", ErrInvalidField, s, Stable, Canary)
}

// IsCanary reports whether c is the canary cohort.
func (c Cohort) IsCanary() bool { return c == Canary }

// Reasons recorded in [Labels.Reason] by the engine, in the order of
// precedence in which they are evaluated.
const (
	ReasonKillSwitch   = "kill-switch"   // the kill switch is on: everyone is stable
	ReasonGuard        = "guard"         // the guard tripped the kill switch
	ReasonOverride     = "override"      // a trusted peer's override header decided
	ReasonTenantStable = "tenant-stable" // the tenant is on the plan's stable list
	ReasonTenantCanary = "tenant-canary" // the tenant is on the plan's canary list
	ReasonPercent      = "percent"       // the bucket decided against canary_percent
	ReasonNoKey        = "no-key"        // neither tenant nor user: stable
	ReasonUpstream     = "upstream"      // adopted from a signed upstream decision
	ReasonPlanError    = "plan-error"    // no usable plan (the plan file or store's plan was refused at start): everyone stable
)

// FlagReason maps a canary reason (one of the Reason constants) to the
// well-known value of OpenTelemetry's feature_flag.result.reason that fits
// it: kill switch and guard → "disabled", override → "static", the tenant
// lists → "targeting_match", percent → "split", no-key → "default", upstream
// → "cached"; any other string → "unknown". Adapters record the exact
// canary reason beside it (canary.reason).
func FlagReason(reason string) string {
	switch reason {
	case ReasonKillSwitch, ReasonGuard:
		return "disabled"
	case ReasonOverride:
		return "static"
	case ReasonTenantStable, ReasonTenantCanary:
		return "targeting_match"
	case ReasonPercent:
		return "split"
	case ReasonNoKey:
		return "default"
	case ReasonUpstream:
		return "cached"
	case ReasonPlanError:
		return "error"
	}
	return "unknown"
}

// NoBucket is the [Labels.Bucket] of a request that has no bucketing key
// (neither tenant nor user).
const NoBucket = -1

// Labels are what canary knows about one request. They are decided once, at
// the edge, and travel with the request in its context and across services.
//
// Labels are a plain value; copies are independent. Their JSON form uses
// snake_case keys (tenant, user_hash, bucket, cohort, reason, trace_id,
// plan_version, position), leaving out an empty tenant, user hash, trace id
// and a zero position.
type Labels struct {
	// Tenant is the tenant id as the request carried it ("" when none).
	Tenant string `json:"tenant,omitempty"`
	// UserHash is the lowercase hex of a keyed hash of the tenant and the user
	// id (see [UserHasher]); "" when the request named no user. The raw user id
	// is never stored in Labels. Like Tenant and TraceID, which are the
	// request's header values, it may share the request's memory (the HTTP
	// middleware writes it into its per-request object): a program that
	// keeps it long after the request, as a map key say, should keep
	// strings.Clone(UserHash).
	UserHash string `json:"user_hash,omitempty"`
	// Bucket is the request's bucket, 0..9999 (see [Bucket]), or [NoBucket].
	Bucket int `json:"bucket"`
	// Cohort is the decided cohort.
	Cohort Cohort `json:"cohort"`
	// Reason says which rule decided the cohort (one of the Reason constants).
	Reason string `json:"reason"`
	// TraceID is the W3C trace id, 32 lowercase hex digits, or "" when none.
	TraceID string `json:"trace_id,omitempty"`
	// PlanVersion is the version of the rollout plan that decided.
	PlanVersion int `json:"plan_version"`
	// Position is the write position that the request's reads must see
	// because an upstream service wrote it for this same request: an
	// ordered 64-bit value the database layer defines (a PostgreSQL LSN for
	// dbwrap), taken from a verified consistency token
	// ([DecisionSigner.VerifyPosition]); 0 when none. It is this hop's
	// floor, not part of the decision: a context made by [NewContext] raises
	// its [Session]'s position to it ([PositionFromContext]).
	Position uint64 `json:"position,omitempty"`
}
