package canary

import (
	"context"
	"time"

	"google.golang.org/grpc/codes"

	"github.com/reqcanary/canary/interceptors"
	"github.com/reqcanary/canary/internal/guard"
	"github.com/reqcanary/canary/middleware"
	"github.com/reqcanary/canary/tenant"
)

// OutcomeKind is what became of one request, as the guard and the
// canary.outcomes metric (attribute canary.outcome) count it.
type OutcomeKind uint8

const (
	// OutcomeSuccess: the service answered, and not with a failure.
	OutcomeSuccess OutcomeKind = iota
	// OutcomeFailure: the service failed the request.
	OutcomeFailure
	// OutcomeClientCancelled: the client went away before the answer (it
	// closed or reset the connection, cancelled the call, or its own gRPC
	// deadline passed). It says nothing about the service: counted apart,
	// never a failure or a success in the guard's comparison.
	OutcomeClientCancelled
)

// String returns "success", "failure" or "client-cancelled", the values of
// the canary.outcome attribute.
func (k OutcomeKind) String() string { return guard.Kind(k).String() }

// Outcome is one request's outcome, for [Engine.Record].
type Outcome struct {
	// Cohort is the request's cohort; others than stable and canary are
	// ignored.
	Cohort tenant.Cohort
	// Kind is what became of the request.
	Kind OutcomeKind
	// Latency is how long the request took.
	Latency time.Duration
	// Unit is the request's randomisation unit, for a caller whose context
	// carries no labels (a queue consumer keyed by account, say). Empty: the
	// unit is taken from the labels in the context (the user hash, else the
	// tenant, else the shared unit of requests with neither); with no labels
	// either, the outcome is a unit of its own (not capped). See
	// docs/guard.md, "One client cannot decide".
	Unit string
}

// Unit spaces, so that a tenant named like a user hash is not that user.
const (
	spaceUser guard.UnitSpace = iota + 1
	spaceTenant
	spaceNoKey
	spaceCaller
)

// unitOf returns the randomisation unit of a labelled request: its user
// hash, else its tenant, else the one unit all requests with neither share.
func unitOf(l tenant.Labels) (string, guard.UnitSpace) {
	switch {
	case l.UserHash != "":
		return l.UserHash, spaceUser
	case l.Tenant != "":
		return l.Tenant, spaceTenant
	}
	return "-", spaceNoKey
}

// outcomeNoteKey is the tenant.Session key of a request's outcome note.
type outcomeNoteKey struct{}

// outcomeNote is what a handler said about its request's outcome.
type outcomeNote uint8

const (
	noteFailed   outcomeNote = 1 << iota // MarkFailed: count the request as failed
	noteRecorded                         // RecordOutcome or Record counted it already
)

func addNote(s *tenant.Session, n outcomeNote) {
	s.Update(outcomeNoteKey{}, func(old any, _ bool) any {
		o, _ := old.(outcomeNote)
		return o | n
	})
}

// MarkFailed makes the request whose context is ctx count as a failure when
// the engine's middleware or gRPC server interceptors report its outcome,
// even though it answers with a success (a 200 served from a fallback, a
// shadow comparison that differed): the request is counted once, by the
// adapter, with its latency and its cohort. A request whose client went
// away is still counted client-cancelled. MarkFailed returns false, and does
// nothing, when ctx is not a labelled request's context (no
// [tenant.Session]). Call it from the handler or anything it calls, with
// the request's context or one derived from it. Safe for concurrent use; it
// allocates the session's map the first time.
func MarkFailed(ctx context.Context) bool {
	s := tenant.SessionFromContext(ctx)
	if s == nil {
		return false
	}
	addNote(s, noteFailed)
	return true
}

// RecordOutcome feeds the guard one request of cohort c (stable or canary;
// others are ignored) that failed or not and took latency, and counts it in
// the canary.outcomes metric. It is [Engine.Record] with Kind
// OutcomeFailure or OutcomeSuccess and the unit taken from the labels in
// ctx.
//
// Each request counts once. While a guard is configured, the engine's HTTP
// middleware and gRPC server interceptors already report every labelled
// request they serve: to make such a request a failure (a fallback taken, a
// shadow response that differed), call [MarkFailed] instead. If you call
// RecordOutcome (or Record) with the context of a request they serve, your
// report is that request's outcome and the adapter does not count it again.
// Use RecordOutcome for work they do not see (a queue consumer, a batch
// job). Lock-free; it allocates only to note a labelled request as
// counted. Safe for concurrent use.
func (e *Engine) RecordOutcome(ctx context.Context, c tenant.Cohort, failed bool, latency time.Duration) {
	k := OutcomeSuccess
	if failed {
		k = OutcomeFailure
	}
	e.Record(ctx, Outcome{Cohort: c, Kind: k, Latency: latency})
}

// Record feeds the guard one outcome and counts it in the canary.outcomes
// metric (attribute canary.outcome: success, failure or client-cancelled);
// with the guard off only the metric is counted. See [Engine.RecordOutcome]
// for when to call it, and [Outcome] for the unit. Safe for concurrent use.
func (e *Engine) Record(ctx context.Context, o Outcome) {
	if o.Cohort != tenant.Stable && o.Cohort != tenant.Canary {
		return
	}
	space := spaceCaller
	if o.Unit == "" {
		if l, ok := tenant.FromContext(ctx); ok {
			o.Unit, space = unitOf(l)
		}
	}
	if s := tenant.SessionFromContext(ctx); s != nil {
		addNote(s, noteRecorded)
	}
	e.record(ctx, o.Cohort, o.Kind, o.Unit, space, o.Latency)
}

// record counts one outcome in the guard (when on) and the metric.
func (e *Engine) record(ctx context.Context, c tenant.Cohort, k OutcomeKind, unit string, space guard.UnitSpace, latency time.Duration) {
	if gs := e.g.state.Load(); gs != nil {
		gs.g.RecordOutcome(guard.Outcome{Cohort: c, Kind: guard.Kind(k), Latency: latency, Unit: unit, Space: space})
	}
	e.g.tel.outcome(ctx, c, k)
}

// recordServed counts the outcome k of a request an adapter served, once:
// not when the handler already recorded it, as a failure when the handler
// marked it failed.
func (e *Engine) recordServed(ctx context.Context, l tenant.Labels, k OutcomeKind, elapsed time.Duration) {
	if l.Cohort != tenant.Stable && l.Cohort != tenant.Canary {
		return
	}
	if s := tenant.SessionFromContext(ctx); s != nil {
		if v, ok := s.Load(outcomeNoteKey{}); ok {
			n, _ := v.(outcomeNote)
			if n&noteRecorded != 0 {
				return
			}
			if n&noteFailed != 0 && k == OutcomeSuccess {
				k = OutcomeFailure
			}
		}
	}
	unit, space := unitOf(l)
	e.record(ctx, l.Cohort, k, unit, space, elapsed)
}

// recordHTTP is the engine middleware's outcome hook: a request whose
// client went away is client-cancelled (middleware.ClientCancelled); a 5xx,
// or a request context that a server-side deadline ended, is a failure.
func (e *Engine) recordHTTP(ctx context.Context, l tenant.Labels, status int, elapsed time.Duration) {
	k := OutcomeSuccess
	switch {
	case middleware.ClientCancelled(ctx):
		k = OutcomeClientCancelled
	case guard.HTTPFailed(status) || ctx.Err() != nil:
		k = OutcomeFailure
	}
	e.recordServed(ctx, l, k, elapsed)
}

// recordGRPC is the gRPC server interceptors' outcome hook: a call whose
// client cancelled it or whose client's deadline passed is client-cancelled
// (interceptors.ClientCancelled); Unavailable, Internal, Unknown,
// DeadlineExceeded (a server-side timeout) and DataLoss are failures.
func (e *Engine) recordGRPC(ctx context.Context, l tenant.Labels, code codes.Code, elapsed time.Duration) {
	k := OutcomeSuccess
	switch {
	case interceptors.ClientCancelled(ctx):
		k = OutcomeClientCancelled
	case guard.GRPCFailed(code):
		k = OutcomeFailure
	}
	e.recordServed(ctx, l, k, elapsed)
}
