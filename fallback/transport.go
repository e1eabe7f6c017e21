package fallback

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptrace"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/failsafe-go/failsafe-go"
	"github.com/failsafe-go/failsafe-go/circuitbreaker"
	"github.com/failsafe-go/failsafe-go/failsafehttp"
	"github.com/failsafe-go/failsafe-go/fallback"
	"github.com/failsafe-go/failsafe-go/timeout"

	"github.com/reqcanary/canary/tenant"
)

// Headers set on answers and shadow requests.
const (
	// HeaderServedBy names who answered: "canary", "stable", "shadow" or
	// "cache". It is set on every answer the transport returns.
	HeaderServedBy = "X-Canary-Served-By"
	// HeaderFallbackReason is set when a fallback happened: the failed
	// steps, in order, as "endpoint:reason" separated by ", ", e.g.
	// "canary:timeout, stable:status-503". Reasons: timeout, connect,
	// circuit-open, deadline, error, status-NNN.
	HeaderFallbackReason = "X-Canary-Fallback-Reason"
	// HeaderShadow is "1" on the copies of requests sent to Canary for
	// shadow comparison, so that the canary can suppress side effects.
	HeaderShadow = "X-Canary-Shadow"
)

// role is a step of the chain.
type role uint8

const (
	roleCanary role = iota
	roleStable
	roleShadow
	numRoles
	roleCache = numRoles
)

var roleNames = [...]string{"canary", "stable", "shadow", "cache"}

func (r role) String() string { return roleNames[r] }

// Transport is the http.RoundTripper returned by [NewTransport].
//
// A Transport is safe for concurrent use.
type Transport interface {
	http.RoundTripper
	// Close stops the shadow comparisons in flight and waits for them,
	// and unregisters the metric callbacks. RoundTrip keeps working after
	// Close but no longer starts comparisons. Close is idempotent and
	// always returns nil.
	Close() error
	// CloseIdleConnections closes the idle connections of Config.Transport
	// when it has such a method (http.Client calls it).
	CloseIdleConnections()
}

// transport implements Transport.
type transport struct {
	cfg       *config
	base      http.RoundTripper // Config.Transport
	rec       http.RoundTripper // base, recording responses into the request state
	traceable bool              // base is an *http.Transport: httptrace.GotConn is reliable
	hops      [numRoles]*hop    // nil when the endpoint is not configured
	first     [2]role           // first endpoint, by cohort index
	chain     [2]failsafe.Executor[*http.Response]
	multi     [2]bool // more than one endpoint in the chain, by cohort index
	m         *instruments
	cmp       *comparer
	closeOnce sync.Once
}

var _ Transport = (*transport)(nil)

// hop is one endpoint: its base URL, its circuit breaker (shared by all
// requests) and an executor per cohort, which failsafehttp runs each
// attempt in: the breaker and the cohort's timeout.
type hop struct {
	role    role
	base    *url.URL
	prefix  string // base path without trailing slash, "" for none
	cb      circuitbreaker.CircuitBreaker[*http.Response]
	exec    [2]failsafe.Executor[*http.Response] // breaker + the cohort's timeout
	timeout [2]time.Duration
}

// NewTransport returns a Transport that sends each request to the first
// endpoint of its cohort's chain and falls back along it:
//
//	canary cohort (Config.Canary set): canary → stable → shadow → cache
//	otherwise:                                  stable → shadow → cache
//
// The cohort comes from tenant.FromContext(req.Context()); a request without
// labels is of the stable cohort. A step fails on a timeout, a transport
// error, an open circuit or a 5xx answer; shadow and cache are skipped when
// not configured. Requests that are not idempotent (see docs/fallback.md)
// go to the next endpoint only when they were certainly not sent. Every
// answer carries [HeaderServedBy], and [HeaderFallbackReason] when a fallback
// happened. When no step answers, RoundTrip returns an [*Error].
//
// Configuration errors name the field: "fallback: Config.Stable: missing".
func NewTransport(c Config) (Transport, error) {
	cfg, err := c.validate()
	if err != nil {
		return nil, err
	}
	t := &transport{cfg: cfg, base: cfg.Transport}
	_, t.traceable = cfg.Transport.(*http.Transport)
	t.rec = recorder{t.base}
	for r, u := range [numRoles]*url.URL{cfg.canary, cfg.stable, cfg.shadow} {
		if u != nil {
			t.hops[r] = t.newHop(role(r), u)
		}
	}
	var breakers [numRoles]stateful
	for r, h := range t.hops {
		if h != nil {
			breakers[r] = h.cb
		}
	}
	if t.m, err = newInstruments(cfg.MeterProvider, cfg.Name, breakers); err != nil {
		return nil, fmt.Errorf("fallback: Config.MeterProvider: %w", err)
	}
	for ci := range 2 {
		t.first[ci] = roleStable
		if ci == 1 && t.hops[roleCanary] != nil {
			t.first[ci] = roleCanary
		}
		// Policies outermost first: each fallback handles the failure of
		// everything inside it.
		var policies []failsafe.Policy[*http.Response]
		if cfg.Cache != nil {
			policies = append(policies, t.fallbackTo(roleCache))
		}
		if t.hops[roleShadow] != nil {
			policies = append(policies, t.fallbackTo(roleShadow))
			t.multi[ci] = true
		}
		if t.first[ci] == roleCanary {
			policies = append(policies, t.fallbackTo(roleStable))
			t.multi[ci] = true
		}
		if len(policies) > 0 {
			t.chain[ci] = failsafe.With(policies...)
		}
	}
	if cfg.Compare != nil {
		t.cmp = newComparer(t, cfg.Compare)
	}
	return t, nil
}

func (t *transport) newHop(r role, u *url.URL) *hop {
	h := &hop{role: r, base: u, prefix: u.Path, timeout: t.cfg.timeout}
	b := t.cfg.Breaker
	h.cb = circuitbreaker.NewBuilder[*http.Response]().
		HandleIf(breakerFailure).
		WithFailureThresholdRatio(b.Failures, b.Of).
		WithSuccessThreshold(b.Successes).
		WithDelay(b.Delay).
		Build()
	for ci := range 2 {
		h.exec[ci] = failsafe.With[*http.Response](h.cb, timeout.New[*http.Response](h.timeout[ci]))
	}
	return h
}

// breakerFailure is what a circuit breaker counts as a failure: any error
// but the caller's own cancellation or deadline, and 5xx answers.
func breakerFailure(resp *http.Response, err error) bool {
	if err != nil {
		return !errors.Is(err, context.Canceled) && !errors.Is(err, context.DeadlineExceeded)
	}
	return resp != nil && resp.StatusCode >= 500
}

// failed is what makes a step of the chain fail.
func failed(resp *http.Response, err error) bool {
	return err != nil || resp != nil && resp.StatusCode >= 500
}

// fallbackTo returns the fallback policy whose function runs step to after
// the steps inside it failed.
func (t *transport) fallbackTo(to role) failsafe.Policy[*http.Response] {
	return fallback.NewBuilderWithFunc(func(exec failsafe.Execution[*http.Response]) (*http.Response, error) {
		st := stateOf(exec.Context())
		if st == nil {
			return exec.LastResult(), exec.LastError()
		}
		return t.next(st, to, exec.LastResult(), exec.LastError())
	}).HandleIf(failed).Build()
}

// RoundTrip sends req along its cohort's chain. It does not modify req.
func (t *transport) RoundTrip(req *http.Request) (*http.Response, error) {
	if req.URL == nil {
		closeRequestBody(req)
		return nil, errors.New("fallback: request has no URL")
	}
	l, _ := tenant.FromContext(req.Context())
	ci := cohortIndex(l.Cohort)
	st := &reqState{Context: req.Context(), t: t, req: req, labels: l, ci: ci}
	st.idempotent = idempotent(req)
	st.cacheable = t.cfg.Cache != nil && cacheableRequest(req)
	st.hopCtx = st
	var err error
	if st.body, err = newReqBody(req, t.cfg.MaxReplayBodyBytes, t.multi[ci]); err != nil {
		return nil, err
	}
	defer st.body.finish()
	if t.multi[ci] {
		if !st.idempotent && t.traceable {
			st.hopCtx = httptrace.WithClientTrace(st, &httptrace.ClientTrace{
				GotConn: func(httptrace.GotConnInfo) { st.gotConn.Store(true) },
			})
		}
	}
	var resp *http.Response
	if ex := t.chain[ci]; ex != nil {
		resp, err = ex.WithContext(st).GetWithExecution(runFirst)
	} else {
		resp, err = t.hops[t.first[ci]].do(st)
	}
	return t.finish(st, resp, err)
}

// runFirst runs the first step of the chain of the request whose state is
// the execution's context.
func runFirst(exec failsafe.Execution[*http.Response]) (*http.Response, error) {
	st := stateOf(exec.Context())
	return st.t.hops[st.t.first[st.ci]].do(st)
}

// next runs step to after the previous step returned (resp, err), when the
// request may switch; otherwise it passes (resp, err) through.
func (t *transport) next(st *reqState, to role, resp *http.Response, err error) (*http.Response, error) {
	if st.stopped {
		return resp, err
	}
	status := 0
	if resp != nil {
		status = resp.StatusCode
	}
	why, _ := classify(status, err)
	if why == reasonCanceled || st.Context.Err() != nil {
		st.stopped = true
		return resp, err
	}
	if st.sent && !st.idempotent {
		st.stopped, st.notReplayed = true, true
		return resp, err
	}
	if to != roleCache && st.body != nil && !st.body.reusable() {
		// A body larger than MaxReplayBodyBytes went to this attempt:
		// nothing is left to send to the next endpoint.
		st.stopped, st.notReplayed, st.bodyNotReplayed = true, true, true
		return resp, err
	}
	from := st.cur
	if to == roleCache {
		if !st.cacheable {
			return resp, err
		}
		t.m.fallback(st, from, roleCache, why)
		e := t.lookup(st)
		if e == nil {
			return resp, err
		}
		st.addTrail(from, why, status)
		discard(resp)
		st.cur = roleCache
		t.m.cacheHit(st, time.Since(e.Stored))
		return st.fromEntry(e), nil
	}
	t.m.fallback(st, from, to, why)
	st.addTrail(from, why, status)
	discard(resp)
	return t.hops[to].do(st)
}

// do runs one attempt of st's request on the endpoint.
func (h *hop) do(st *reqState) (*http.Response, error) {
	t := st.t
	st.cur, st.sent, st.last = h.role, false, nil
	st.gotConn.Store(false)
	ex := h.exec[st.ci]
	if st.cacheable {
		// Leave CacheTimeout before the request's deadline, so that a
		// stale answer can still be served when this attempt fails.
		if dl, ok := st.Context.Deadline(); ok {
			left := time.Until(dl) - t.cfg.CacheTimeout
			if left < h.timeout[st.ci] {
				if left < time.Millisecond {
					t.m.attempt(st, h.role, reasonDeadline)
					return nil, fmt.Errorf("%s: %w", h.role, ErrNoTime)
				}
				ex = failsafe.With[*http.Response](h.cb, timeout.New[*http.Response](left))
			}
		}
	}
	out, err := st.hopRequest(h)
	if err != nil {
		t.m.attempt(st, h.role, reasonError)
		return nil, err
	}
	// The request's context travels in the executor, and the attempt's
	// request has none of its own: failsafehttp then derives each attempt's
	// context from the executor's (values, deadline and cancellation of the
	// caller's request, plus the timeout) without merging two contexts,
	// which would cost a goroutine per attempt.
	resp, err := failsafehttp.NewRoundTripperWithExecutor(t.rec, ex.WithContext(st.hopCtx)).RoundTrip(out)
	if st.last != nil && st.last != resp {
		// The attempt's timeout fired just as the answer came: failsafe
		// dropped it, its body is ours to close.
		discard(st.last)
	}
	st.last = nil
	status := 0
	if resp != nil {
		status = resp.StatusCode
	}
	why, notSent := classify(status, err)
	if err != nil && st.traced() && !st.gotConn.Load() {
		notSent = true // no connection was obtained: nothing was sent
	}
	st.sent = why != reasonNone && !notSent
	t.m.attempt(st, h.role, why)
	return resp, err
}

// finish sets the headers of the answer, arranges for it to be cached and
// compared, or builds the error.
func (t *transport) finish(st *reqState, resp *http.Response, err error) (*http.Response, error) {
	if err != nil || resp == nil {
		if st.Context.Err() != nil && err != nil {
			return nil, err // the caller canceled or timed out: its own error
		}
		if err == nil {
			err = errors.New("fallback: no answer")
		}
		status := 0
		if resp != nil {
			status = resp.StatusCode
		}
		why, _ := classify(status, err)
		st.addTrail(st.cur, why, status)
		return nil, &Error{Attempts: st.trail, NotReplayed: st.notReplayed, BodyNotReplayed: st.bodyNotReplayed, Err: err}
	}
	if resp.Header == nil {
		resp.Header = make(http.Header)
	}
	if st.cur == roleCache {
		t.m.lookups.Add(st, 1, t.m.lookupOpts[lookupHit])
		resp.Header[HeaderFallbackReason] = []string{strings.Join(st.trail, ", ")}
		return resp, nil
	}
	resp.Header[HeaderServedBy] = []string{st.cur.String()}
	if resp.StatusCode >= 500 && len(st.trail) > 0 {
		// Every step failed and this is the last one's failing answer: its
		// reason belongs in the trail, or the answer would read as a good
		// fallback from the steps before it.
		st.addTrail(st.cur, reasonStatus, resp.StatusCode)
	}
	if len(st.trail) > 0 {
		resp.Header[HeaderFallbackReason] = []string{strings.Join(st.trail, ", ")}
	}
	if resp.StatusCode >= 500 {
		return resp, nil
	}
	var key string
	if st.cacheable && (st.cur == roleStable || st.cur == roleShadow) {
		key = t.storeKey(st.req, st.labels, resp)
	}
	var shadow chan captured
	if t.cmp != nil && st.ci == 0 && st.cur == roleStable && len(st.trail) == 0 {
		shadow = t.cmp.start(st, resp)
	}
	if key == "" && shadow == nil {
		return resp, nil
	}
	if st.req.Method == http.MethodHead || resp.ContentLength == 0 {
		t.store(st, key, resp, nil)
		if shadow != nil {
			shadow <- captured{complete: true}
		}
		return resp, nil
	}
	limit := int64(0)
	if key != "" {
		limit = t.cfg.MaxCacheBodyBytes
	}
	if shadow != nil {
		limit = max(limit, t.cfg.Compare.MaxBodyBytes)
	}
	resp.Body = newCaptureBody(resp.Body, limit, resp.ContentLength, func(body []byte, complete bool) {
		if complete && key != "" && int64(len(body)) <= t.cfg.MaxCacheBodyBytes {
			t.store(st, key, resp, body)
		}
		if shadow != nil {
			shadow <- captured{body: body, complete: complete}
		}
	})
	return resp, nil
}

// store writes an answer to the cache. It runs when the caller has read the
// whole body, bounded by CacheTimeout.
func (t *transport) store(st *reqState, key string, resp *http.Response, body []byte) {
	if key == "" {
		return
	}
	h := resp.Header.Clone()
	for _, k := range []string{HeaderServedBy, HeaderFallbackReason, "Connection", "Keep-Alive",
		"Proxy-Connection", "Transfer-Encoding", "Upgrade", "Trailer", "Te"} {
		delete(h, k)
	}
	e := &Entry{Status: resp.StatusCode, Header: h, Body: body, Stored: time.Now()}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(st.Context), t.cfg.CacheTimeout)
	defer cancel()
	if err := t.cfg.Cache.Set(ctx, key, e); err != nil {
		t.m.stores.Add(ctx, 1, t.m.storeOpts[1])
		return
	}
	t.m.stores.Add(ctx, 1, t.m.storeOpts[0])
}

// lookup reads the most specific cached answer of st's request, or nil.
func (t *transport) lookup(st *reqState) *Entry {
	ctx, cancel := context.WithTimeout(st, t.cfg.CacheTimeout)
	defer cancel()
	for _, key := range t.lookupKeys(st.req, st.labels) {
		e, ok, err := t.cfg.Cache.Get(ctx, key)
		if err != nil {
			t.m.lookups.Add(st, 1, t.m.lookupOpts[lookupError])
			return nil
		}
		if ok && e != nil {
			return e
		}
	}
	t.m.lookups.Add(st, 1, t.m.lookupOpts[lookupMiss])
	return nil
}

// Close stops the shadow comparisons and unregisters the metric callback.
func (t *transport) Close() error {
	t.closeOnce.Do(func() {
		if t.cmp != nil {
			t.cmp.close()
		}
		_ = t.m.close()
	})
	return nil
}

// CloseIdleConnections forwards to Config.Transport.
func (t *transport) CloseIdleConnections() {
	if c, ok := t.base.(interface{ CloseIdleConnections() }); ok {
		c.CloseIdleConnections()
	}
}

// stateKey is the context key under which a reqState finds itself.
type stateKey struct{}

// reqState is the state of one RoundTrip. It is itself the context of the
// chain's execution (the request's context, plus itself as a value), so the
// shared fallback policies find it without a closure per request.
type reqState struct {
	context.Context // the request's context
	t               *transport
	req             *http.Request // the caller's request; its body is in body
	body            *reqBody      // nil without a body
	hopCtx          context.Context
	labels          tenant.Labels
	ci              int
	idempotent      bool
	cacheable       bool
	cur             role // the step that produced the current result
	sent            bool // the last attempt failed after it may have been sent
	stopped         bool // a fallback passed the failure through: the chain is over
	notReplayed     bool
	bodyNotReplayed bool // notReplayed because the body was sent once
	gotConn         atomic.Bool
	last            *http.Response // last answer of the base transport in this attempt
	trail           []string       // failed steps, "endpoint:reason"
}

// Value returns the state itself for stateKey.
func (st *reqState) Value(key any) any {
	if key == (stateKey{}) {
		return st
	}
	return st.Context.Value(key)
}

func stateOf(ctx context.Context) *reqState {
	if st, ok := ctx.(*reqState); ok {
		return st
	}
	st, _ := ctx.Value(stateKey{}).(*reqState)
	return st
}

func (st *reqState) traced() bool { return st.hopCtx != context.Context(st) }

func (st *reqState) addTrail(r role, why reason, status int) {
	st.trail = append(st.trail, r.String()+":"+why.token(status))
}

// hopRequest returns the request for one attempt on h: a shallow copy of
// the caller's request with the endpoint's URL, no body (the recorder adds
// it, so that failsafehttp never buffers it), and context.Background() as
// its context (see do).
func (st *reqState) hopRequest(h *hop) (*http.Request, error) {
	r := st.req
	out := r.WithContext(context.Background())
	u := *r.URL
	u.Scheme, u.Host = h.base.Scheme, h.base.Host
	if h.prefix != "" {
		p := u.Path
		if p == "" || p[0] != '/' {
			p = "/" + p
		}
		u.Path = h.prefix + p
		if u.RawPath != "" {
			u.RawPath = h.base.EscapedPath() + u.RawPath
		}
	}
	out.URL = &u
	out.Host = ""
	out.Body, out.GetBody, out.ContentLength = nil, nil, 0
	return out, nil
}

// fromEntry builds the answer served from a cache entry.
func (st *reqState) fromEntry(e *Entry) *http.Response {
	h := e.Header.Clone()
	if h == nil {
		h = make(http.Header)
	}
	h[HeaderServedBy] = []string{roleCache.String()}
	age := max(time.Since(e.Stored), 0)
	h["Age"] = []string{strconv.FormatInt(int64(age/time.Second), 10)}
	resp := &http.Response{
		Status:        strconv.Itoa(e.Status) + " " + http.StatusText(e.Status),
		StatusCode:    e.Status,
		Proto:         "HTTP/1.1",
		ProtoMajor:    1,
		ProtoMinor:    1,
		Header:        h,
		Body:          http.NoBody,
		ContentLength: int64(len(e.Body)),
		Request:       st.req,
	}
	if st.req.Method != http.MethodHead && len(e.Body) > 0 {
		resp.Body = io.NopCloser(bytes.NewReader(e.Body))
	}
	return resp
}

// recorder passes requests to the base transport: it gives each attempt the
// request's body (see reqBody), and records the answer in the request's
// state, so that an answer failsafe drops (its timeout fired at the same
// moment) is still closed.
type recorder struct{ base http.RoundTripper }

func (r recorder) RoundTrip(req *http.Request) (*http.Response, error) {
	st := stateOf(req.Context())
	if st != nil && st.body != nil {
		body, getBody, n, err := st.body.attempt()
		if err != nil {
			return nil, err
		}
		req = req.WithContext(req.Context()) // a shallow copy
		req.Body, req.GetBody, req.ContentLength = body, getBody, n
	}
	resp, err := r.base.RoundTrip(req)
	if resp != nil && st != nil {
		st.last = resp
	}
	return resp, err
}

// idempotent reports whether req may be sent again after it may have been
// sent: its method is idempotent (RFC 9110 §9.2.2: GET, HEAD, OPTIONS,
// TRACE, PUT, DELETE), or it carries an Idempotency-Key (or
// X-Idempotency-Key) header.
func idempotent(req *http.Request) bool {
	switch req.Method {
	case "", http.MethodGet, http.MethodHead, http.MethodOptions, http.MethodTrace, http.MethodPut, http.MethodDelete:
		return true
	}
	if len(req.Header["Idempotency-Key"]) > 0 || len(req.Header["X-Idempotency-Key"]) > 0 {
		return true
	}
	return false
}

func closeRequestBody(req *http.Request) {
	if req.Body != nil {
		req.Body.Close()
	}
}

// discard closes the body of an answer that is not returned. It does not
// drain it: a slow body must not delay the fallback.
func discard(resp *http.Response) {
	if resp != nil && resp.Body != nil {
		resp.Body.Close()
	}
}
