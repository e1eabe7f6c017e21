package fallback

import (
	"context"
	"errors"
	"net"
	"strconv"
	"strings"

	"github.com/failsafe-go/failsafe-go/circuitbreaker"
	"github.com/failsafe-go/failsafe-go/timeout"
)

// Sentinel errors, matched with errors.Is on the error RoundTrip (or the
// gRPC interceptor) returns.
var (
	// ErrNotReplayed: the request failed on an endpoint after it may have
	// been sent, and it is not idempotent, so it was not sent to another
	// endpoint.
	ErrNotReplayed = errors.New("fallback: not replayed: the request is not idempotent and may have been sent")
	// ErrExhausted: every endpoint of the chain failed and no cached answer
	// was found (or the request is not cacheable).
	ErrExhausted = errors.New("fallback: every endpoint failed")
	// ErrBodyNotReplayed: the request's body is larger than
	// Config.MaxReplayBodyBytes (or of unknown length and turned out larger),
	// so it was streamed to one endpoint and, that attempt having failed,
	// could not be sent to another. Errors matching it match ErrNotReplayed
	// too.
	ErrBodyNotReplayed = errors.New("fallback: not replayed: the request body is larger than Config.MaxReplayBodyBytes and was sent once")
	// ErrNoTime: an attempt was skipped because the request's deadline left
	// no time for it after the cache reserve (Config.CacheTimeout).
	ErrNoTime = errors.New("fallback: no time left before the request's deadline")
)

// Error is the error of a request that no endpoint answered. It wraps the
// error of the last attempt, so errors.Is(err, timeout.ErrExceeded) and
// errors.Is(err, circuitbreaker.ErrOpen) work, and it matches
// [ErrNotReplayed] or [ErrExhausted].
type Error struct {
	// Attempts lists the failed attempts in order, as in the
	// X-Canary-Fallback-Reason header: "canary:timeout", "stable:connect".
	Attempts []string
	// NotReplayed is true when the chain stopped because the request is not
	// idempotent and may have been sent.
	NotReplayed bool
	// BodyNotReplayed is true when the chain stopped because the request's
	// body was larger than Config.MaxReplayBodyBytes and had been handed to
	// the failed attempt (NotReplayed is true too).
	BodyNotReplayed bool
	// Err is the error of the last attempt.
	Err error
}

// Error describes the attempts and the last error.
func (e *Error) Error() string {
	var b strings.Builder
	switch {
	case e.BodyNotReplayed:
		b.WriteString(ErrBodyNotReplayed.Error())
	case e.NotReplayed:
		b.WriteString(ErrNotReplayed.Error())
	default:
		b.WriteString(ErrExhausted.Error())
	}
	b.WriteString(" (")
	b.WriteString(strings.Join(e.Attempts, ", "))
	b.WriteString(")")
	if e.Err != nil {
		b.WriteString(": ")
		b.WriteString(e.Err.Error())
	}
	return b.String()
}

// Unwrap returns the error of the last attempt.
func (e *Error) Unwrap() error { return e.Err }

// Is matches ErrNotReplayed (and ErrBodyNotReplayed when the body was the
// reason) or ErrExhausted, whichever applies.
func (e *Error) Is(target error) bool {
	return target == ErrNotReplayed && e.NotReplayed || target == ErrExhausted && !e.NotReplayed ||
		target == ErrBodyNotReplayed && e.BodyNotReplayed
}

// reason says why an attempt failed. Its text is the token used in the
// X-Canary-Fallback-Reason header and the metrics.
type reason uint8

const (
	reasonNone        reason = iota
	reasonTimeout            // the attempt's timeout fired
	reasonConnect            // no connection could be made: nothing was sent
	reasonCircuitOpen        // the endpoint's circuit is open: nothing was sent
	reasonDeadline           // the request's own deadline fired or left no time
	reasonError              // a transport error after the request may have been sent
	reasonStatus             // a 5xx answer
	reasonCanceled           // the caller canceled the request
)

var reasonNames = [...]string{"", "timeout", "connect", "circuit-open", "deadline", "error", "5xx", "canceled"}

func (r reason) String() string { return reasonNames[r] }

// token returns the header token of a failure: the reason, with the status
// code for 5xx answers ("status-503").
func (r reason) token(status int) string {
	if r == reasonStatus {
		return "status-" + strconv.Itoa(status)
	}
	return r.String()
}

// classify returns why an attempt that returned (status, err) failed, and
// whether the request certainly was not sent (switching endpoint is then safe
// for any method).
func classify(status int, err error) (reason, bool) {
	if err == nil {
		if status >= 500 {
			return reasonStatus, false
		}
		return reasonNone, false
	}
	switch {
	case errors.Is(err, circuitbreaker.ErrOpen):
		return reasonCircuitOpen, true
	case errors.Is(err, ErrNoTime):
		return reasonDeadline, true
	case errors.Is(err, timeout.ErrExceeded):
		return reasonTimeout, false
	case isDialError(err):
		return reasonConnect, true
	case errors.Is(err, context.DeadlineExceeded):
		return reasonDeadline, false
	case errors.Is(err, context.Canceled):
		return reasonCanceled, false
	}
	return reasonError, false
}

// isDialError reports whether err says that no connection to the endpoint
// could be made (refused, unreachable, DNS failure, proxy connect): the
// request was not sent.
func isDialError(err error) bool {
	var op *net.OpError
	if errors.As(err, &op) {
		return op.Op == "dial" || op.Op == "proxyconnect"
	}
	var dns *net.DNSError
	return errors.As(err, &dns)
}
