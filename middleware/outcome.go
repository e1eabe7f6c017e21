package middleware

import (
	"bufio"
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"os"
	"sync"
	"time"

	"github.com/reqcanary/canary/tenant"
)

// OutcomeFunc receives the outcome of one labelled request: its labels, the
// status code the handler answered with, and how long the handler took. The
// context is the request's, still as the handler left it: [ClientCancelled]
// tells whether the client went away.
type OutcomeFunc func(ctx context.Context, l tenant.Labels, status int, elapsed time.Duration)

// WithOutcome makes the middleware call fn after the handler of each
// labelled request returns, with the request's context and labels, the final
// status code and the handler's duration. The status is the first one of 200
// or more given to WriteHeader (informational 1xx responses are skipped), 200
// when the handler wrote a body, flushed or wrote nothing, 500 when the
// handler panicked (fn is called, then the panic goes on), and 0 when it
// hijacked the connection without writing a status. Requests answered 400 by
// the middleware itself (invalid headers) are not reported.
//
// To see the status, the handler gets a wrapped http.ResponseWriter that
// keeps http.Flusher, http.Hijacker and io.ReaderFrom when the original has
// them, and unwraps (Unwrap) for http.ResponseController. The wrappers are
// pooled: a handler must not use its ResponseWriter after it returns, as
// net/http requires anyway. fn runs on the request's goroutine, so it must
// be fast and safe for concurrent use.
//
// Default: nil; nothing is wrapped and no clock is read. A nil fn keeps the
// default. [WithOutcomeSwitch] turns the reporting off while nobody needs it.
func WithOutcome(fn OutcomeFunc) Option {
	return optionFunc(func(c *config) {
		if fn != nil {
			c.outcome = fn
		}
	})
}

// WithOutcomeSwitch makes the middleware ask on, before each labelled
// request, whether the request's outcome is wanted. While on returns false,
// the request is served as without [WithOutcome]: its ResponseWriter is not
// wrapped, no clock is read and the outcome function is not called. The
// engine uses it to skip the bookkeeping while no guard is configured. on runs
// on the request's goroutine, so it must be fast (an atomic load) and safe for
// concurrent use.
//
// Default: nil, every labelled request is reported when [WithOutcome] is
// given. A nil on keeps the default. Without WithOutcome it has no effect.
func WithOutcomeSwitch(on func() bool) Option {
	return optionFunc(func(c *config) {
		if on != nil {
			c.outcomeOn = on
		}
	})
}

// wantOutcome reports whether the outcome of the request at hand is to be
// reported.
func (c *config) wantOutcome() bool {
	return c.outcome != nil && (c.outcomeOn == nil || c.outcomeOn())
}

// serveOutcome calls next through a status-recording writer and reports the
// outcome.
func (h *handler) serveOutcome(w http.ResponseWriter, r *http.Request, l tenant.Labels) {
	sw := writerPool.Get().(*statusWriter)
	sw.w = w
	start := time.Now()
	done := false
	defer func() {
		if !done { // the handler panicked: the client sees a 500 or a reset
			h.cfg.outcome(r.Context(), l, http.StatusInternalServerError, time.Since(start))
		}
	}()
	h.next.ServeHTTP(sw.wrap(), r)
	done = true
	status := sw.status
	if status == 0 && !sw.hijacked {
		status = http.StatusOK
	}
	ctx := r.Context()
	if sw.writeTimedOut {
		// The server's own write deadline (http.Server.WriteTimeout) cut
		// the answer: net/http then cancels the request's context as if
		// the client had gone, but the server failed. Report it as what
		// the client got, with a context that is not cancelled.
		status = http.StatusServiceUnavailable
		ctx = context.WithoutCancel(ctx)
	}
	*sw = statusWriter{}
	writerPool.Put(sw)
	h.cfg.outcome(ctx, l, status, time.Since(start))
}

// ClientCancelled reports whether the client of the request whose context is
// ctx (the context an [OutcomeFunc] gets) went away while the handler ran,
// so that its outcome says nothing about the server: net/http cancels the
// request's context when the client closes or resets the connection
// (HTTP/1.x, noticed once the request body has been read) or resets the
// stream (HTTP/2).
//
// HTTP carries no client deadline, so a context that ended by its deadline
// was cut by the server (http.TimeoutHandler or a timeout middleware around
// this one, a deadline in the server's BaseContext): not the client's. A
// context cancelled with a cause other than context.Canceled
// (context.WithCancelCause, by server code) is not the client's either. A
// cancelled BaseContext (a server shutting its requests down) reports as
// client-cancelled. An answer whose write hit the server's own write
// deadline (http.Server.WriteTimeout), after which net/http cancels the
// context too, is reported by the middleware with status 503 and a context
// that is not cancelled: a server failure.
func ClientCancelled(ctx context.Context) bool {
	return ctx.Err() == context.Canceled && context.Cause(ctx) == context.Canceled
}

var writerPool = sync.Pool{New: func() any { return new(statusWriter) }}

// statusWriter records the status a handler answers with.
type statusWriter struct {
	w             http.ResponseWriter
	status        int
	hijacked      bool
	writeTimedOut bool // a write hit the connection's write deadline
}

// noteWriteErr records a write that failed on the server's write deadline.
func (s *statusWriter) noteWriteErr(err error) {
	if err != nil && errors.Is(err, os.ErrDeadlineExceeded) {
		s.writeTimedOut = true
	}
}

// The variants handed to handlers, by what the original writer implements.
// Each holds only a pointer, so converting it to an interface allocates
// nothing.
type (
	flushWriter       struct{ *statusWriter }
	hijackWriter      struct{ *statusWriter }
	flushHijackWriter struct{ *statusWriter }
	rwUnwrapper       interface{ Unwrap() http.ResponseWriter }
)

var (
	_ http.ResponseWriter = (*statusWriter)(nil)
	_ io.ReaderFrom       = (*statusWriter)(nil)
	_ rwUnwrapper         = (*statusWriter)(nil)
	_ http.Flusher        = flushWriter{}
	_ http.Hijacker       = hijackWriter{}
	_ http.Flusher        = flushHijackWriter{}
	_ http.Hijacker       = flushHijackWriter{}
)

func (s *statusWriter) wrap() http.ResponseWriter {
	_, fl := s.w.(http.Flusher)
	_, hj := s.w.(http.Hijacker)
	switch {
	case fl && hj:
		return flushHijackWriter{s}
	case fl:
		return flushWriter{s}
	case hj:
		return hijackWriter{s}
	}
	return s
}

func (s *statusWriter) Header() http.Header { return s.w.Header() }

func (s *statusWriter) WriteHeader(code int) {
	if s.status == 0 && (code >= 200 || code == http.StatusSwitchingProtocols) {
		s.status = code
	}
	s.w.WriteHeader(code)
}

func (s *statusWriter) Write(p []byte) (int, error) {
	if s.status == 0 {
		s.status = http.StatusOK
	}
	n, err := s.w.Write(p)
	s.noteWriteErr(err)
	return n, err
}

// ReadFrom uses the original writer's ReadFrom when it has one (net/http's
// does: sendfile), else copies.
func (s *statusWriter) ReadFrom(r io.Reader) (int64, error) {
	if s.status == 0 {
		s.status = http.StatusOK
	}
	var n int64
	var err error
	if rf, ok := s.w.(io.ReaderFrom); ok {
		n, err = rf.ReadFrom(r)
	} else {
		n, err = io.Copy(writerOnly{s.w}, r)
	}
	s.noteWriteErr(err)
	return n, err
}

// Unwrap returns the original writer, for http.ResponseController.
func (s *statusWriter) Unwrap() http.ResponseWriter { return s.w }

func (s *statusWriter) flush() {
	if s.status == 0 {
		s.status = http.StatusOK
	}
	s.w.(http.Flusher).Flush()
}

func (s *statusWriter) hijack() (net.Conn, *bufio.ReadWriter, error) {
	c, rw, err := s.w.(http.Hijacker).Hijack()
	if err == nil {
		s.hijacked = true
	}
	return c, rw, err
}

// writerOnly hides a writer's ReadFrom, so io.Copy does not recurse.
type writerOnly struct{ io.Writer }

func (w flushWriter) Flush() { w.flush() }

func (w hijackWriter) Hijack() (net.Conn, *bufio.ReadWriter, error) { return w.hijack() }

func (w flushHijackWriter) Flush() { w.flush() }

func (w flushHijackWriter) Hijack() (net.Conn, *bufio.ReadWriter, error) { return w.hijack() }
