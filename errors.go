package canary

import (
	"errors"
	"strconv"
)

// ErrInvalidPlan is matched (with errors.Is) by every error about a plan's
// content: each [*PlanError], and the errors that join several of them.
var ErrInvalidPlan = errors.New("canary: invalid plan")

// ErrInvalidOption is matched by the errors [New] returns for a bad option or
// environment variable; the message names the option or variable.
var ErrInvalidOption = errors.New("canary: invalid option")

// ErrClosed is returned by [Engine.Start] after [Engine.Close].
var ErrClosed = errors.New("canary: engine closed")

// ErrNotStarted is matched by the error of a call that must write the
// fleet's kill switch ([Engine.TurnKillSwitch], and [Engine.RearmGuard] when
// the fleet's switch is held by a guard) on an engine made with
// [WithDeferredStart] and [WithFleetSwitch] before [Engine.Start].
var ErrNotStarted = errors.New("canary: engine not started")

// PlanError is one problem in a plan. ParsePlan and New return a PlanError,
// or several joined with errors.Join, each naming the key and the line; find
// the first with errors.As.
type PlanError struct {
	// Key is the dotted path of the offending key, with list indexes, e.g.
	// "canary_percent" or "tenants.canary[2]"; "" when the problem is the
	// document itself (a YAML syntax error, an empty plan).
	Key string
	// Line and Column locate the problem in the YAML text, from 1; both are 0
	// for a plan that did not come from YAML (WithPlan).
	Line, Column int
	// Reason says what is wrong.
	Reason string
	// File is the plan file's path when the plan came from a file
	// (WithPlanFile, CANARY_PLAN); "" otherwise.
	File string
	// Err is the underlying error, if any.
	Err error
}

// Error returns "canary: plan: line L: key: reason", or "canary: plan file
// PATH: line L: key: reason" for a plan read from a file, leaving out the
// parts that are unknown.
func (e *PlanError) Error() string {
	s := "canary: plan: "
	if e.File != "" {
		s = "canary: plan file " + e.File + ": "
	}
	if e.Line > 0 {
		s += "line " + strconv.Itoa(e.Line) + ": "
	}
	if e.Key != "" {
		s += e.Key + ": "
	}
	return s + e.Reason
}

// Unwrap returns the underlying error.
func (e *PlanError) Unwrap() error { return e.Err }

// Is reports whether target is [ErrInvalidPlan].
func (e *PlanError) Is(target error) bool { return target == ErrInvalidPlan }
