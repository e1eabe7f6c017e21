package guard

import "google.golang.org/grpc/codes"

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
