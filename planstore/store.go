package planstore

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// AnyVersion, as the expected version of [Store.Apply] or [Store.Rollback],
// writes whatever version is current (still atomically: the new version is
// the current one plus one).
const AnyVersion int64 = -1

// Plan is a plan as the store holds it: its YAML text and the version it was
// written as. Version 0 with no Data means the store holds no plan yet.
type Plan struct {
	Version int64     // 1 for the first plan written, then +1 per write
	Data    []byte    // the plan's YAML text, as written
	Author  string    // who wrote it
	Note    string    // why
	Time    time.Time // when it was written (the writer's clock, UTC)
	Action  string    // ActionApply or ActionRollback
	From    int64     // the version it replaced (0 for the first)
	// RolledBackTo is the version whose text a rollback restored (0 for an apply).
	RolledBackTo int64
}

// The actions recorded in [Plan.Action] and [Entry.Action].
const (
	ActionApply    = "apply"
	ActionRollback = "rollback"
)

// Entry is one write in the history: the plan written, who, why, when, and
// the line diff from the plan it replaced.
type Entry struct {
	Plan
	Diff string // line diff (see [Diff]) from version From to this version
}

// Change says who makes a write and why; both go to the history.
type Change struct {
	Author string
	Note   string
}

// Store holds the current plan of a fleet. Implementations are safe for
// concurrent use.
type Store interface {
	// Get returns the current plan (Version 0 when none was written yet).
	Get(ctx context.Context) (Plan, error)
	// Apply validates data and, when it is valid and expect is the current
	// version (or AnyVersion), writes it as the next version with an
	// audit entry. An invalid plan returns the validation error (matched by
	// errors.Is(err, ErrInvalid)) and changes nothing; a stale expect
	// returns a *ConflictError (errors.Is(err, ErrVersionConflict)).
	Apply(ctx context.Context, data []byte, expect int64, c Change) (Plan, error)
	// Rollback writes the text of version to (0: the version before the
	// current one) as a new version, validated and audited like Apply.
	// A version no longer in the history returns ErrVersionNotFound.
	Rollback(ctx context.Context, to, expect int64, c Change) (Plan, error)
	// History returns the last writes, newest first, at most limit (all the
	// store keeps when limit <= 0).
	History(ctx context.Context, limit int) ([]Entry, error)
	// Watch delivers the current plan and then every plan written after it,
	// in order, until ctx ends; the channel is closed then. A watcher that
	// cannot reach the store keeps trying and, when the store returns,
	// delivers the current plan (versions written meanwhile may be skipped,
	// never delivered out of order).
	Watch(ctx context.Context) <-chan Plan
	// Close releases what the store opened.
	Close() error
}

// Errors of a Store, matched with errors.Is.
var (
	// ErrVersionConflict: the write was based on a version that is no longer
	// current. The error is a *ConflictError naming both versions.
	ErrVersionConflict = errors.New("planstore: version conflict")
	// ErrInvalid: the plan did not pass validation; nothing was written.
	ErrInvalid = errors.New("planstore: invalid plan")
	// ErrVersionNotFound: a rollback target is not (or no longer) in the history.
	ErrVersionNotFound = errors.New("planstore: version not in history")
	// ErrUnavailable: the store could not be reached or did not answer in time.
	ErrUnavailable = errors.New("planstore: store unavailable")
)

// ConflictError is the error of a write whose expected version is stale.
type ConflictError struct {
	Expected int64 // the version the write was based on
	Current  int64 // the version the store holds
}

func (e *ConflictError) Error() string {
	return fmt.Sprintf("planstore: version conflict: the write expected version %d but the current version is %d", e.Expected, e.Current)
}

// Is matches ErrVersionConflict.
func (e *ConflictError) Is(target error) bool { return target == ErrVersionConflict }

// invalidError wraps the validator's error so that errors.Is matches both
// ErrInvalid and whatever the validator's error matches.
type invalidError struct{ err error }

func (e *invalidError) Error() string { return "planstore: invalid plan: " + e.err.Error() }
func (e *invalidError) Unwrap() []error {
	return []error{ErrInvalid, e.err}
}
