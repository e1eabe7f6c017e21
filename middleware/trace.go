package middleware

import (
	"net/http"
	"strings"

	"go.opentelemetry.io/otel/trace"

	"github.com/reqcanary/canary/tenant"
)

// headerTraceState is the canonical name of the W3C tracestate header.
const headerTraceState = "Tracestate"

// traceOf returns the request's trace id and the context to continue with.
// An active span with a valid span context wins. Otherwise a valid
// traceparent header gives the id, and its span context is put into the
// returned context as the remote parent, so that a tracing handler mounted
// further in (otelhttp) continues the caller's trace even when no global
// propagator is registered.
func traceOf(r *http.Request, active trace.Span) (traceID string, sc trace.SpanContext, remote bool) {
	if cur := active.SpanContext(); cur.IsValid() {
		return cur.TraceID().String(), cur, false
	}
	vs := r.Header[tenant.HeaderTraceParent]
	if len(vs) != 1 {
		return "", trace.SpanContext{}, false // absent, or ambiguous: ignore
	}
	id, ok := tenant.ParseTraceParent(vs[0])
	if !ok {
		return "", trace.SpanContext{}, false
	}
	v := strings.TrimSpace(vs[0])
	var cfg trace.SpanContextConfig
	decodeHex(cfg.TraceID[:], id)
	decodeHex(cfg.SpanID[:], v[36:52])
	var flags [1]byte
	decodeHex(flags[:], v[53:55])
	cfg.TraceFlags = trace.TraceFlags(flags[0]) & (trace.FlagsSampled | trace.FlagsRandom)
	cfg.Remote = true
	if ts := r.Header[headerTraceState]; len(ts) > 0 {
		// A tracestate that does not parse is dropped; it never invalidates
		// the traceparent (W3C Trace Context, section 3.3).
		cfg.TraceState, _ = trace.ParseTraceState(strings.Join(ts, ","))
	}
	sc = trace.NewSpanContext(cfg)
	if !sc.IsValid() {
		return "", trace.SpanContext{}, false
	}
	return id, sc, true
}

// decodeHex decodes the lowercase hex s into dst; s has already been checked
// by tenant.ParseTraceParent, and len(s) == 2*len(dst).
func decodeHex(dst []byte, s string) {
	for i := range dst {
		dst[i] = unhex(s[2*i])<<4 | unhex(s[2*i+1])
	}
}

func unhex(c byte) byte {
	if c <= '9' {
		return c - '0'
	}
	return c - 'a' + 10
}
