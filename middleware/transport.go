package middleware

import (
	"fmt"
	"net/http"

	"go.opentelemetry.io/otel/propagation"

	"github.com/reqcanary/canary/tenant"
)

// Transport returns an http.RoundTripper that writes the labels of the
// calling request (the [tenant.Labels] in the outgoing request's context)
// onto a copy of each outgoing request, as [tenant.Propagate] describes, and
// sends the copy through base:
//
//   - X-Tenant-ID, when the labels have a tenant;
//   - the cohort under X-Canary, which a downstream that trusts this peer
//     honours;
//   - the baggage members canary.cohort, canary.tenant and canary.bucket,
//     merged into any Baggage the request already has, within the W3C limits;
//   - with [WithSigner], the signed decision under X-Canary-Decision; without
//     it, any X-Canary-Decision the request carries is removed, so a stale
//     decision is never forwarded;
//   - with [WithPositionSigner], the signed write position of the calling
//     request's writes under X-Canary-Consistency, when it has one (see
//     [WithPositionSigner]); otherwise any X-Canary-Consistency the request
//     carries is removed;
//   - Traceparent (and Tracestate) from the span context in the request's
//     context, when the request has no Traceparent of its own: the next hop
//     continues the same trace even when no OpenTelemetry propagator is
//     registered. A Traceparent already set (by otelhttp, say) is kept.
//
// X-User-ID is always removed from a labelled request: the raw user id never
// leaves the edge. Headers the transport sets replace any values the request
// had, never repeat them.
//
// A request whose context carries no labels (a background job, a call made
// outside any labelled request) is passed to base unchanged: canary has no
// decision to propagate, and the headers the caller set are the caller's.
//
// The caller's request is never modified (the RoundTripper contract): the
// transport copies the request and its header map before writing. If the
// signer fails, the request is not sent; its body is closed and the error,
// which names X-Canary-Decision, is returned.
//
// A nil base means [http.DefaultTransport], resolved when Transport is
// called. CloseIdleConnections is forwarded to base when base has it. The
// returned RoundTripper is safe for concurrent use if base is. Options that
// concern only [New] are ignored.
func Transport(base http.RoundTripper, opts ...Option) http.RoundTripper {
	if base == nil {
		base = http.DefaultTransport
	}
	c := newConfig(opts)
	return &transport{base: base, sign: c.sign, signPos: c.signPos}
}

// WithSigner makes [Transport] send the signed decision that sign returns
// for the calling request's labels, under X-Canary-Decision
// (tenant.DecisionSigner.LabelSigner makes one). [New] ignores it.
//
// Default: nil, no decision is sent, and any X-Canary-Decision already on
// the outgoing request is removed. A nil sign keeps the default.
func WithSigner(sign tenant.SignFunc) Option {
	return optionFunc(func(c *config) {
		if sign != nil {
			c.sign = sign
		}
	})
}

// transport is the RoundTripper Transport returns.
type transport struct {
	base    http.RoundTripper
	sign    tenant.SignFunc
	signPos tenant.PositionSignFunc // consistency.go
}

var _ http.RoundTripper = (*transport)(nil)

// RoundTrip sends a labelled copy of req through the base transport.
func (t *transport) RoundTrip(req *http.Request) (*http.Response, error) {
	l, ok := tenant.FromContext(req.Context())
	if !ok {
		return t.base.RoundTrip(req)
	}
	out := new(http.Request)
	*out = *req
	out.Header = cloneHeader(req.Header)
	foldWireHeaders(out.Header) // headerfold.go: X-User-ID under any spelling
	sink := newHeaderSink(out.Header)
	err := tenant.Propagate(sink, tenant.HTTP, l, t.sign)
	if err == nil {
		err = t.propagatePosition(sink, req, l)
	}
	if err != nil {
		if req.Body != nil {
			_ = req.Body.Close()
		}
		return nil, fmt.Errorf("canary transport: %w", err)
	}
	if len(out.Header[tenant.HeaderTraceParent]) == 0 {
		propagation.TraceContext{}.Inject(req.Context(), propagation.HeaderCarrier(out.Header))
	}
	return t.base.RoundTrip(out)
}

// CloseIdleConnections closes the idle connections of the base transport,
// when it has such a method; http.Client.CloseIdleConnections calls it.
func (t *transport) CloseIdleConnections() {
	if c, ok := t.base.(interface{ CloseIdleConnections() }); ok {
		c.CloseIdleConnections()
	}
}

// cloneHeader returns a deep copy of h, with room for the headers the
// transport adds; never nil. All values share one backing array, as in
// http.Header.Clone.
func cloneHeader(h http.Header) http.Header {
	n := 0
	for _, vs := range h {
		n += len(vs)
	}
	out := make(http.Header, len(h)+5)
	all := make([]string, n)
	for k, vs := range h {
		if vs == nil {
			out[k] = nil
			continue
		}
		m := copy(all, vs)
		out[k] = all[:m:m]
		all = all[m:]
	}
	return out
}

// headerSink is an outgoing request's headers as a [tenant.Sink]. Like
// headerSource it answers the wire names under their canonical forms without
// canonicalizing on each call, and it takes the one-value slices it sets from
// one small array.
type headerSink struct {
	h    http.Header
	vals [5]string
	n    int
}

var _ tenant.Sink = (*headerSink)(nil)

func newHeaderSink(h http.Header) *headerSink { return &headerSink{h: h} }

// canon returns the canonical form of key.
func canon(key string) string {
	switch key {
	case tenant.HeaderTenant:
		return canonTenant
	case tenant.HeaderUser:
		return canonUser
	case tenant.HeaderOverride, tenant.HeaderDecision, tenant.HeaderTraceParent, tenant.HeaderBaggage:
		return key // canonical as written
	}
	return http.CanonicalHeaderKey(key)
}

// Values returns the values of key.
func (s *headerSink) Values(key string) []string { return s.h[canon(key)] }

// Set replaces the values of key by value.
func (s *headerSink) Set(key, value string) {
	if s.n == len(s.vals) {
		s.h[canon(key)] = []string{value}
		return
	}
	s.vals[s.n] = value
	s.h[canon(key)] = s.vals[s.n : s.n+1 : s.n+1]
	s.n++
}

// Del removes key.
func (s *headerSink) Del(key string) { delete(s.h, canon(key)) }
