package interceptors

import (
	"context"
	"errors"
)

// ClientCancelled reports whether the client of the call whose context is
// ctx (the context the outcome function of [WithOutcome] gets) went away
// before the answer, so that its outcome says nothing about the server:
//
//   - the context was cancelled: the client cancelled the call or its
//     connection closed (grpc-go cancels the stream's context then); or
//   - the context's deadline passed: that deadline is the client's, the
//     grpc-timeout it sent (grpc-go sets the server context's deadline from
//     it and has no server-side default).
//
// A timeout the server imposes itself, inside canary's interceptor (the
// handler's own context.WithTimeout, a timeout interceptor after canary's in
// the chain), does not end this context: the handler's DeadlineExceeded is
// then the server's failure. A deadline set by an interceptor placed before
// canary's cannot be told from the client's, so put canary's server
// interceptors first. A call cancelled with a cause other than
// context.Canceled (context.WithCancelCause, by server code) is not the
// client's. A server that stops (grpc.Server.Stop) cancels its calls too:
// they report as client-cancelled.
func ClientCancelled(ctx context.Context) bool {
	switch err := ctx.Err(); {
	case err == nil:
		return false
	case errors.Is(err, context.DeadlineExceeded):
		return true
	}
	return context.Cause(ctx) == context.Canceled
}
