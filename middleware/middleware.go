package middleware

import (
	"net/http"

	"go.opentelemetry.io/otel/trace"

	"github.com/reqcanary/canary/tenant"
)

// New returns a middleware (the shape chi's Router.Use takes) that labels
// every request through d.
//
// For each request it:
//
//  1. finds the peer: RemoteAddr, or a forwarded address when RemoteAddr is
//     a proxy named by [WithTrustedProxies];
//  2. finds the trace id: the active span's when the context has a valid
//     span, else that of a valid traceparent header, whose span context then
//     also becomes the context's remote parent (so otelhttp mounted further
//     in continues the caller's trace with no global propagator set);
//  3. calls d.Decide with the request's headers, [tenant.HTTP], the peer and
//     the trace id;
//  4. on success stores the labels with [tenant.NewContext], sets the
//     X-Canary-Cohort response header, records the feature-flag attributes on
//     the active span when it is recording, and calls next;
//  5. on error answers 400 with a JSON body naming the header for a
//     [*tenant.FieldError] (500 for other errors) and does not call next.
//
// New panics if d is nil or an option is invalid (such as a zero
// netip.Prefix given to [WithTrustedProxies]): like http.Handle's panic on a
// nil handler, these are programming errors found at start-up. The returned
// middleware and its handlers are safe for concurrent use.
func New(d tenant.Decider, opts ...Option) func(http.Handler) http.Handler {
	if d == nil {
		panic("middleware.New: nil tenant.Decider")
	}
	c := newConfig(opts)
	for i, p := range c.proxies {
		if !p.IsValid() {
			panic("middleware.WithTrustedProxies: invalid prefix " + p.String())
		}
		c.proxies[i] = p.Masked()
	}
	for i, p := range c.idPeers {
		if !p.IsValid() {
			panic("middleware.WithIdentityFromHeaders: invalid prefix " + p.String())
		}
		c.idPeers[i] = p.Masked()
	}
	return func(next http.Handler) http.Handler {
		if next == nil {
			panic("middleware: nil next handler")
		}
		return &handler{decider: d, cfg: c, next: next}
	}
}

// handler is one middleware instance around next.
type handler struct {
	decider tenant.Decider
	cfg     config
	next    http.Handler
}

var _ http.Handler = (*handler)(nil)

func (h *handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	span := trace.SpanFromContext(ctx)
	traceID, sc, remote := traceOf(r, span)
	src, dropIdentity, err := h.cfg.source(r)
	if err != nil {
		writeError(w, err)
		return
	}
	// One allocation for the request's state: the labels context, the
	// user hash's digits, the Source and the remote parent span.
	e := &edge{src: src}
	if remote {
		ctx = e.withRemote(ctx, sc)
	}
	e.p.Init(ctx)
	l, err := h.decider.Decide(ctx, tenant.Request{
		Source:  e,
		Wire:    tenant.HTTP,
		Peer:    peerOf(r, h.cfg.proxies),
		TraceID: traceID,
	})
	if err == nil && h.cfg.requireTenant && l.Tenant == "" {
		err = &tenant.FieldError{Field: tenant.HeaderTenant, Reason: "required"}
	}
	if err != nil {
		writeError(w, err)
		return
	}
	// The header value shares the labels context's allocation and is this
	// request's own (a handler may modify it); HeaderCohort is canonical.
	ctx, cohort := e.p.LabelWithCohortHeader(l)
	w.Header()[tenant.HeaderCohort] = cohort
	annotate(span, h.cfg.flagKey, l) // a remote parent never records: the active span is the one to annotate
	if h.cfg.stripDecision || h.cfg.stripOverride != nil || dropIdentity {
		r = h.cfg.strip(r, dropIdentity)
	}
	if h.cfg.wantOutcome() {
		h.serveOutcome(w, r.WithContext(ctx), l)
		return
	}
	h.next.ServeHTTP(w, r.WithContext(ctx))
}
