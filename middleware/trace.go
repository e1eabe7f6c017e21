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
	cfg, id, ok := parseTraceParent(vs[0])
	if !ok {
		return "", trace.SpanContext{}, false
	}
	cfg.Remote = true
	if ts := r.Header[headerTraceState]; len(ts) > 0 {
		// A tracestate that does not parse is dropped; it never invalidates
		// the traceparent (W3C Trace Context, section 3.3).
		cfg.TraceState, _ = trace.ParseTraceState(strings.Join(ts, ","))
	}
	return id, trace.NewSpanContext(cfg), true
}

// parseTraceParent parses a traceparent header value with the rules of
// tenant.ParseTraceParent (FuzzParseTraceParent checks that they agree),
// decoding the ids in the same pass that checks their digits. It returns
// the trace id, span id and the sampled and random flags, and the trace id
// as written.
func parseTraceParent(v string) (cfg trace.SpanContextConfig, traceID string, ok bool) {
	v = strings.TrimSpace(v)
	if len(v) < 55 || (len(v) > 55 && (v[:2] == "00" || v[55] != '-')) {
		return cfg, "", false
	}
	if v[2] != '-' || v[35] != '-' || v[52] != '-' || v[:2] == "ff" {
		return cfg, "", false
	}
	var version, flags [1]byte
	if !decodeLowerHex(version[:], v[0:2]) || !decodeLowerHex(cfg.TraceID[:], v[3:35]) ||
		!decodeLowerHex(cfg.SpanID[:], v[36:52]) || !decodeLowerHex(flags[:], v[53:55]) ||
		!cfg.TraceID.IsValid() || !cfg.SpanID.IsValid() {
		return trace.SpanContextConfig{}, "", false
	}
	cfg.TraceFlags = trace.TraceFlags(flags[0]) & (trace.FlagsSampled | trace.FlagsRandom)
	return cfg, v[3:35], true
}

// decodeLowerHex decodes the lowercase hex s into dst (len(s) ==
// 2*len(dst)) and reports whether every digit was lowercase hex.
func decodeLowerHex(dst []byte, s string) bool {
	_ = s[2*len(dst)-1]
	bad := byte(0)
	for i := range dst {
		hi, lo := hexVal[s[2*i]], hexVal[s[2*i+1]]
		bad |= hi | lo
		dst[i] = hi<<4 | lo&0x0f
	}
	return bad&0xf0 == 0
}

// hexVal maps a lowercase hex digit to its value and every other byte to
// 0xff.
var hexVal = func() (t [256]byte) {
	for i := range t {
		t[i] = 0xff
	}
	for c := '0'; c <= '9'; c++ {
		t[c] = byte(c - '0')
	}
	for c := 'a'; c <= 'f'; c++ {
		t[c] = byte(c - 'a' + 10)
	}
	return t
}()
