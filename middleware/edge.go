package middleware

import (
	"context"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"
	"go.opentelemetry.io/otel/trace/embedded"

	"github.com/reqcanary/canary/tenant"
)

// edge is the middleware's state for one request, in one allocation: the
// labels context the handler gets (a tenant.PendingContext, which also holds
// the user hash's hex digits), the Source the Decider reads, and, when the
// request carries a traceparent and no span is active, the caller's span
// context as the context's remote parent.
type edge struct {
	p      tenant.PendingContext
	src    tenant.Source
	remote remoteSpanContext
}

var (
	_ tenant.Source         = (*edge)(nil)
	_ tenant.UserHashBuffer = (*edge)(nil)
)

// Values reads the request's headers (or identity) through the Source the
// configuration chose.
func (e *edge) Values(key string) []string { return e.src.Values(key) }

// UserHashBuffer hands the Decider the memory of the request's user hash.
func (e *edge) UserHashBuffer() *[tenant.UserHashLen]byte { return e.p.UserHashBuffer() }

// withRemote returns parent with sc as its remote parent span, as
// trace.ContextWithRemoteSpanContext does, but in e's memory: no allocation
// when the OpenTelemetry API's context key could be learnt at start-up.
func (e *edge) withRemote(parent context.Context, sc trace.SpanContext) context.Context {
	if spanKey == nil {
		return trace.ContextWithRemoteSpanContext(parent, sc)
	}
	e.remote.Context = parent
	e.remote.span.sc = sc
	return &e.remote
}

// remoteSpanContext is a context that carries a remote span context the way
// trace.ContextWithRemoteSpanContext does: trace.SpanFromContext finds
// span, a non-recording span whose SpanContext is the caller's.
type remoteSpanContext struct {
	context.Context
	span remoteSpan
}

// Value answers the OpenTelemetry API's span key with the remote span.
func (c *remoteSpanContext) Value(key any) any {
	if key == spanKey {
		return &c.span
	}
	return c.Context.Value(key)
}

// String names the context for debugging, like the standard library's.
func (c *remoteSpanContext) String() string { return "middleware.remoteSpanContext" }

// remoteSpan is a non-recording span that only carries a span context, as
// the one trace.ContextWithRemoteSpanContext stores: every method but
// SpanContext and TracerProvider does nothing.
type remoteSpan struct {
	embedded.Span
	sc trace.SpanContext
}

var _ trace.Span = (*remoteSpan)(nil)

func (s *remoteSpan) SpanContext() trace.SpanContext        { return s.sc }
func (*remoteSpan) IsRecording() bool                       { return false }
func (*remoteSpan) End(...trace.SpanEndOption)              {}
func (*remoteSpan) AddEvent(string, ...trace.EventOption)   {}
func (*remoteSpan) AddLink(trace.Link)                      {}
func (*remoteSpan) RecordError(error, ...trace.EventOption) {}
func (*remoteSpan) SetName(string)                          {}

// SetStatus does nothing.
func (*remoteSpan) SetStatus(codes.Code, string) {}

// SetAttributes does nothing.
func (*remoteSpan) SetAttributes(...attribute.KeyValue) {}

// TracerProvider returns the global tracer provider, as the API's own
// non-recording span does (otelhttp uses it when given none).
func (*remoteSpan) TracerProvider() trace.TracerProvider { return otel.GetTracerProvider() }

// spanKey is the context key under which the OpenTelemetry API stores the
// active span, learnt at start-up by watching what trace.SpanFromContext
// asks a context for; nil if that did not work, in which case withRemote
// falls back to trace.ContextWithRemoteSpanContext.
var spanKey = learnSpanKey()

// keyProbe is a context that records the key it is asked for.
type keyProbe struct {
	context.Context
	key any
}

func (p *keyProbe) Value(key any) any {
	p.key = key
	return nil
}

func learnSpanKey() any {
	probe := &keyProbe{Context: context.Background()}
	trace.SpanFromContext(probe)
	key := probe.key
	if key == nil {
		return nil
	}
	// Check that a context answering that key is what the API reads.
	sc := trace.NewSpanContext(trace.SpanContextConfig{TraceID: trace.TraceID{1}, SpanID: trace.SpanID{1},
		TraceFlags: trace.FlagsSampled, Remote: true})
	c := &remoteSpanContext{Context: context.Background(), span: remoteSpan{sc: sc}}
	c2 := &checkContext{remoteSpanContext: c, key: key}
	if !trace.SpanContextFromContext(c2).Equal(sc) {
		return nil
	}
	return key
}

// checkContext answers key with the span of its remoteSpanContext, for
// learnSpanKey's check (spanKey is not set yet when it runs).
type checkContext struct {
	*remoteSpanContext
	key any
}

func (c *checkContext) Value(key any) any {
	if key == c.key {
		return &c.remoteSpanContext.span
	}
	return nil
}
