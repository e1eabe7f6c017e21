package guard

import (
	"time"

	"google.golang.org/grpc/codes"

	"github.com/reqcanary/canary/tenant"
)

// HTTPFailed reports whether an HTTP response status counts as a failure for
// the guard: any 5xx. A 4xx is the client's fault and counts as a success.
// Statuses outside 100..599 (for instance 0, a handler that never wrote) are
// not failures.
func HTTPFailed(status int) bool { return status >= 500 && status <= 599 }

// GRPCFailed reports whether a gRPC status code counts as a failure for the
// guard: Unavailable, Internal, Unknown, DeadlineExceeded and DataLoss, the
// codes that say the server (not the caller) went wrong.
func GRPCFailed(code codes.Code) bool {
	switch code {
	case codes.Unavailable, codes.Internal, codes.Unknown, codes.DeadlineExceeded, codes.DataLoss:
		return true
	}
	return false
}

// Kind is what became of one request, as the guard counts it.
type Kind uint8

const (
	// Success: the service answered, and not with a failure.
	Success Kind = iota
	// Failure: the service failed the request (a 5xx, a server-side gRPC
	// code, or what a caller reports as failed).
	Failure
	// ClientCancelled: the client went away before the answer (it closed or
	// reset the connection, cancelled the call, or its own deadline passed).
	// Such a request says nothing about the service: it is counted apart and
	// is neither a failure nor a success in the comparison.
	ClientCancelled
)

// String returns "success", "failure" or "client-cancelled".
func (k Kind) String() string {
	switch k {
	case Success:
		return "success"
	case Failure:
		return "failure"
	case ClientCancelled:
		return "client-cancelled"
	}
	return "unknown"
}

// UnitSpace separates kinds of randomisation units: equal [Outcome.Unit]
// strings in different spaces are different units (a tenant named like a
// user hash is not that user).
type UnitSpace uint8

// Outcome is one request's outcome, for [Guard.RecordOutcome].
type Outcome struct {
	// Cohort is the request's cohort; outcomes of cohorts other than stable
	// and canary are ignored.
	Cohort tenant.Cohort
	// Kind is what became of the request.
	Kind Kind
	// Latency is how long the request took.
	Latency time.Duration
	// Unit is the request's randomisation unit (a user hash, a tenant): one
	// unit's outcomes count at most [Config.UnitSamples] per bucket. "" means
	// none: the outcome counts as a unit of its own, without a cap.
	Unit string
	// Space is the unit's kind; see [UnitSpace].
	Space UnitSpace
}
