package fallback

import (
	"context"
	"errors"
	"io"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/failsafe-go/failsafe-go/circuitbreaker"
	"github.com/failsafe-go/failsafe-go/timeout"

	"github.com/reqcanary/canary/tenant"
)

func TestNewTransportConfigErrors(t *testing.T) {
	mem, _ := NewMemoryCache(1<<20, time.Minute)
	ok := "http://127.0.0.1:1"
	for _, tc := range []struct {
		name string
		cfg  Config
		want string
	}{
		{"missing stable", Config{}, "fallback: Config.Stable: missing"},
		{"bad url", Config{Stable: "http://[::1"}, "Config.Stable: \"http://[::1\" is not a URL"},
		{"bad scheme", Config{Stable: "ftp://x"}, "Config.Stable: \"ftp://x\": scheme must be http or https"},
		{"no host", Config{Stable: "http://"}, "Config.Stable: \"http://\": no host"},
		{"query", Config{Stable: ok + "/?a=1"}, "Config.Stable: \"http://127.0.0.1:1/?a=1\": a query is not allowed"},
		{"bad canary", Config{Stable: ok, Canary: "canary:8080"}, "Config.Canary: "},
		{"bad shadow", Config{Stable: ok, Shadow: "http://u:p@h"}, "Config.Shadow: \"http://u:p@h\": user info is not allowed"},
		{"negative timeout", Config{Stable: ok, Timeout: -time.Second}, "Config.Timeout: -1s is negative"},
		{"cohort key", Config{Stable: ok, CohortTimeout: map[tenant.Cohort]time.Duration{"blue": time.Second}}, "Config.CohortTimeout: key \"blue\" is not a cohort"},
		{"cohort value", Config{Stable: ok, CohortTimeout: map[tenant.Cohort]time.Duration{tenant.Canary: 0}}, "Config.CohortTimeout: canary: 0s is not positive"},
		{"negative budget", Config{Stable: ok, Budget: -1}, "Config.Budget: -1ns is negative"},
		{"negative cache timeout", Config{Stable: ok, CacheTimeout: -1}, "Config.CacheTimeout: -1ns is negative"},
		{"negative body", Config{Stable: ok, MaxCacheBodyBytes: -1}, "Config.MaxCacheBodyBytes: -1 is negative"},
		{"negative replay body", Config{Stable: ok, MaxReplayBodyBytes: -1}, "Config.MaxReplayBodyBytes: -1 is negative"},
		{"bad session header", Config{Stable: ok, SessionHeaders: []string{"X-Session", "bad header"}}, `Config.SessionHeaders[1]: "bad header" is not a header name`},
		{"breaker of", Config{Stable: ok, Breaker: BreakerConfig{Failures: 5, Of: 3}}, "Config.Breaker.Of: 3 is less than Breaker.Failures 5"},
		{"breaker delay", Config{Stable: ok, Breaker: BreakerConfig{Delay: -1}}, "Config.Breaker.Delay: -1ns is negative"},
		{"vary", Config{Stable: ok, CacheVary: []string{"Accept", "bad header"}}, "Config.CacheVary[1]: \"bad header\" is not a header name"},
		{"compare without canary", Config{Stable: ok, Compare: &CompareConfig{SampleRate: 1}}, "Config.Compare: shadow comparison needs Config.Canary"},
		{"sample rate", Config{Stable: ok, Canary: ok, Compare: &CompareConfig{SampleRate: 1.5}}, "Config.Compare.SampleRate: 1.5 is not in (0, 1]"},
		{"ignore path", Config{Stable: ok, Canary: ok, Compare: &CompareConfig{SampleRate: 1, IgnoreJSONFields: []string{"a."}}}, "Config.Compare.IgnoreJSONFields[0]: \"a.\" is not a dot-separated path"},
		{"budget too short", Config{Stable: ok, Canary: ok, Shadow: ok, Cache: mem, Timeout: 2 * time.Second},
			"Config.Budget: 5s is shorter than the longest chain, 6.02s for the canary cohort (canary 2s + stable 2s + shadow 2s + cache 20ms)"},
		{"budget per cohort", Config{Stable: ok, Canary: ok, Timeout: time.Second, Budget: 2500 * time.Millisecond,
			CohortTimeout: map[tenant.Cohort]time.Duration{tenant.Stable: 3 * time.Second}},
			"Config.Budget: 2.5s is shorter than the longest chain, 3s for the stable cohort (stable 3s)"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := NewTransport(tc.cfg)
			if err == nil {
				t.Fatal("NewTransport accepted the config")
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %q does not contain %q", err, tc.want)
			}
		})
	}
	if _, err := NewTransport(Config{}); !errors.Is(err, errMissing) {
		t.Errorf("missing Stable: %v does not wrap errMissing", err)
	}
}

func TestCohortPicksFirstEndpoint(t *testing.T) {
	canary := newServer(t, "canary", nil)
	stable := newServer(t, "stable", nil)
	tr := mustTransport(t, Config{Canary: canary.URL + "/v2", Stable: stable.URL})
	for _, tc := range []struct {
		name string
		ctx  context.Context
		want string
	}{
		{"canary cohort", labelled(tenant.Canary, "acme", ""), "canary"},
		{"stable cohort", labelled(tenant.Stable, "acme", ""), "stable"},
		{"no labels", context.Background(), "stable"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := do(t, tr, tc.ctx, "GET", "http://inventory/items/7?color=red", "")
			if r.err != nil {
				t.Fatal(r.err)
			}
			if r.servedBy != tc.want || r.header.Get("X-Origin") != tc.want {
				t.Fatalf("served by %q (origin %q), want %q", r.servedBy, r.header.Get("X-Origin"), tc.want)
			}
			if r.reason != "" {
				t.Fatalf("no fallback happened but %s = %q", HeaderFallbackReason, r.reason)
			}
		})
	}
	// The canary's base path prefixes the request's; the query is kept.
	got := canary.requests()[0]
	if got.Path != "/v2/items/7" || got.Query != "color=red" {
		t.Fatalf("canary received %s?%s, want /v2/items/7?color=red", got.Path, got.Query)
	}
}

// TestFallbackChain covers each step of the chain with real loopback
// servers that are slow, fail or refuse connections.
func TestFallbackChain(t *testing.T) {
	for _, tc := range []struct {
		name                   string
		canary, stable, shadow http.HandlerFunc // nil: refused connection
		noCanary, noShadow     bool
		cohort                 tenant.Cohort
		wantBy, wantReason     string
	}{
		{name: "canary timeout to stable", canary: hang(5 * time.Second), stable: ok200, shadow: ok200,
			cohort: tenant.Canary, wantBy: "stable", wantReason: "canary:timeout"},
		{name: "canary 503 to stable", canary: httpStatus(503), stable: ok200, shadow: ok200,
			cohort: tenant.Canary, wantBy: "stable", wantReason: "canary:status-503"},
		{name: "canary refused to stable", canary: nil, stable: ok200, shadow: ok200,
			cohort: tenant.Canary, wantBy: "stable", wantReason: "canary:connect"},
		{name: "canary and stable fail to shadow", canary: nil, stable: httpStatus(500), shadow: ok200,
			cohort: tenant.Canary, wantBy: "shadow", wantReason: "canary:connect, stable:status-500"},
		{name: "stable cohort skips canary", canary: httpStatus(500), stable: hang(5 * time.Second), shadow: ok200,
			cohort: tenant.Stable, wantBy: "shadow", wantReason: "stable:timeout"},
		{name: "canary cohort without canary", noCanary: true, stable: httpStatus(502), shadow: ok200,
			cohort: tenant.Canary, wantBy: "shadow", wantReason: "stable:status-502"},
		{name: "4xx is an answer", canary: httpStatus(404), stable: ok200, shadow: ok200,
			cohort: tenant.Canary, wantBy: "canary"},
		{name: "last 5xx is returned, every hop's reason listed", canary: httpStatus(503), stable: httpStatus(500), noShadow: true,
			cohort: tenant.Canary, wantBy: "stable", wantReason: "canary:status-503, stable:status-500"},
		{name: "all three fail", canary: hang(5 * time.Second), stable: httpStatus(502), shadow: httpStatus(503),
			cohort: tenant.Canary, wantBy: "shadow", wantReason: "canary:timeout, stable:status-502, shadow:status-503"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			url := func(name string, h http.HandlerFunc, absent bool) string {
				if absent {
					return ""
				}
				if h == nil {
					return refusedURL(t)
				}
				return newServer(t, name, h).URL
			}
			tr := mustTransport(t, Config{
				Canary:  url("canary", tc.canary, tc.noCanary),
				Stable:  url("stable", tc.stable, false),
				Shadow:  url("shadow", tc.shadow, tc.noShadow),
				Timeout: 150 * time.Millisecond,
			})
			r := do(t, tr, labelled(tc.cohort, "acme", ""), "GET", "http://dep/x", "")
			if r.err != nil {
				t.Fatal(r.err)
			}
			if r.servedBy != tc.wantBy || r.reason != tc.wantReason {
				t.Fatalf("served by %q because %q, want %q because %q", r.servedBy, r.reason, tc.wantBy, tc.wantReason)
			}
			if tc.wantBy != "cache" && r.header.Get("X-Origin") != tc.wantBy {
				t.Fatalf("the answer came from %q but says %q", r.header.Get("X-Origin"), r.servedBy)
			}
		})
	}
}

func TestEveryStepFailedError(t *testing.T) {
	tr := mustTransport(t, Config{
		Canary: refusedURL(t), Stable: newServer(t, "stable", hang(5*time.Second)).URL,
		Timeout: 100 * time.Millisecond,
	})
	r := do(t, tr, labelled(tenant.Canary, "acme", ""), "GET", "http://dep/x", "")
	var fe *Error
	if !errors.As(r.err, &fe) {
		t.Fatalf("error %v is not a *fallback.Error", r.err)
	}
	if !errors.Is(r.err, ErrExhausted) || errors.Is(r.err, ErrNotReplayed) {
		t.Fatalf("error %v: want ErrExhausted, not ErrNotReplayed", r.err)
	}
	if !errors.Is(r.err, timeout.ErrExceeded) {
		t.Fatalf("error %v does not wrap the last attempt's timeout", r.err)
	}
	if got := strings.Join(fe.Attempts, ", "); got != "canary:connect, stable:timeout" {
		t.Fatalf("attempts %q", got)
	}
}

// TestTimeoutFiresBeforeTheRequestDeadline: the per-attempt timeout cuts the
// canary off although the request's own deadline is much later.
func TestTimeoutFiresBeforeTheRequestDeadline(t *testing.T) {
	canary := newServer(t, "canary", hang(10*time.Second))
	stable := newServer(t, "stable", nil)
	tr := mustTransport(t, Config{Canary: canary.URL, Stable: stable.URL, Timeout: 100 * time.Millisecond})
	ctx, cancel := context.WithTimeout(labelled(tenant.Canary, "acme", ""), 8*time.Second)
	defer cancel()
	start := time.Now()
	r := do(t, tr, ctx, "GET", "http://dep/x", "")
	if r.err != nil || r.servedBy != "stable" || r.reason != "canary:timeout" {
		t.Fatalf("got %+v, want stable after canary:timeout", r)
	}
	if time.Since(start) > 7*time.Second {
		t.Fatal("the request waited for its own deadline: the attempt timeout did not fire")
	}
}

// TestDeadlineSlightlyLongerThanOneAttempt: a request whose deadline is only
// a little longer than one attempt's timeout still falls back, because the
// fallback runs while the request's context is alive.
func TestDeadlineSlightlyLongerThanOneAttempt(t *testing.T) {
	canary := newServer(t, "canary", hang(10*time.Second))
	stable := newServer(t, "stable", nil)
	tr := mustTransport(t, Config{Canary: canary.URL, Stable: stable.URL, Timeout: 200 * time.Millisecond})
	ctx, cancel := context.WithTimeout(labelled(tenant.Canary, "acme", ""), 300*time.Millisecond)
	defer cancel()
	r := do(t, tr, ctx, "GET", "http://dep/x", "")
	if r.err != nil || r.servedBy != "stable" || r.reason != "canary:timeout" {
		t.Fatalf("got %+v, want stable after canary:timeout", r)
	}
}

// TestDeadlineShorterThanTimeoutLeavesRoomForTheCache: when the request's
// deadline is shorter than the attempt timeout, the attempt is shortened so
// that the cached answer can still be served before the deadline.
func TestDeadlineShorterThanTimeoutLeavesRoomForTheCache(t *testing.T) {
	var slow atomic.Bool
	stable := newServer(t, "stable", func(w http.ResponseWriter, r *http.Request) {
		if slow.Load() {
			hang(10*time.Second)(w, r)
			return
		}
		ok200(w, r)
	})
	cache, _ := NewMemoryCache(1<<20, time.Minute)
	tr := mustTransport(t, Config{Stable: stable.URL, Cache: cache, Timeout: 2 * time.Second, CacheTimeout: 50 * time.Millisecond})
	ctx := labelled(tenant.Stable, "acme", "")
	if r := do(t, tr, ctx, "GET", "http://dep/x", ""); r.servedBy != "stable" {
		t.Fatalf("warm-up: %+v", r)
	}
	slow.Store(true)
	dctx, cancel := context.WithTimeout(ctx, 300*time.Millisecond)
	defer cancel()
	r := do(t, tr, dctx, "GET", "http://dep/x", "")
	if r.err != nil || r.servedBy != "cache" || r.reason != "stable:timeout" {
		t.Fatalf("got %+v, want the cached answer after stable:timeout", r)
	}
	if r.body != "hello from stable /x" {
		t.Fatalf("cached body %q", r.body)
	}
	// A deadline that leaves less than CacheTimeout skips the attempt.
	dctx2, cancel2 := context.WithTimeout(ctx, 40*time.Millisecond)
	defer cancel2()
	before := stable.hits.Load()
	r = do(t, tr, dctx2, "GET", "http://dep/x", "")
	if r.err != nil || r.servedBy != "cache" || r.reason != "stable:deadline" {
		t.Fatalf("got %+v, want the cached answer after stable:deadline", r)
	}
	if stable.hits.Load() != before {
		t.Fatal("an attempt without time left was sent")
	}
}

func TestCallerCancellationIsNotAFallback(t *testing.T) {
	canary := newServer(t, "canary", hang(10*time.Second))
	stable := newServer(t, "stable", nil)
	tr := mustTransport(t, Config{Canary: canary.URL, Stable: stable.URL, Timeout: 5 * time.Second, Budget: 10 * time.Second})
	ctx, cancel := context.WithCancel(labelled(tenant.Canary, "acme", ""))
	time.AfterFunc(100*time.Millisecond, cancel)
	r := do(t, tr, ctx, "GET", "http://dep/x", "")
	if !errors.Is(r.err, context.Canceled) {
		t.Fatalf("error %v, want context.Canceled", r.err)
	}
	if stable.hits.Load() != 0 {
		t.Fatal("a canceled request was sent to stable")
	}
}

// TestCircuitOpensAndCloses: after Failures failures the canary is no longer
// called (circuit-open, nothing sent); after Delay a trial request goes
// through and closes it.
func TestCircuitOpensAndCloses(t *testing.T) {
	var broken atomic.Bool
	broken.Store(true)
	canary := newServer(t, "canary", func(w http.ResponseWriter, r *http.Request) {
		if broken.Load() {
			httpStatus(503)(w, r)
			return
		}
		ok200(w, r)
	})
	stable := newServer(t, "stable", nil)
	tr := mustTransport(t, Config{Canary: canary.URL, Stable: stable.URL,
		Breaker: BreakerConfig{Failures: 2, Delay: 300 * time.Millisecond}})
	ctx := labelled(tenant.Canary, "acme", "")
	for i := range 2 {
		if r := do(t, tr, ctx, "GET", "http://dep/x", ""); r.reason != "canary:status-503" {
			t.Fatalf("request %d: %+v", i, r)
		}
	}
	hits := canary.hits.Load()
	r := do(t, tr, ctx, "POST", "http://dep/orders", `{"n":1}`)
	if r.servedBy != "stable" || r.reason != "canary:circuit-open" {
		t.Fatalf("with the circuit open: %+v, want stable after canary:circuit-open", r)
	}
	if canary.hits.Load() != hits {
		t.Fatal("the canary was called with its circuit open")
	}
	if got := stable.requests(); got[len(got)-1].Body != `{"n":1}` {
		t.Fatalf("stable received body %q", got[len(got)-1].Body)
	}
	broken.Store(false)
	eventually(t, "the circuit to close", func() bool {
		return do(t, tr, ctx, "GET", "http://dep/x", "").servedBy == "canary"
	})
	if r := do(t, tr, ctx, "GET", "http://dep/x", ""); r.servedBy != "canary" || r.reason != "" {
		t.Fatalf("after closing: %+v", r)
	}
}

// trackedBodies wraps a base transport and records whether each body it
// returned was closed.
type trackedBodies struct {
	base   http.RoundTripper
	delay  time.Duration // wait this long after the answer of lateHost, ignoring the context
	late   string
	opened atomic.Int64
	closed atomic.Int64
}

type trackedBody struct {
	io.ReadCloser
	tb   *trackedBodies
	done atomic.Bool
}

func (b *trackedBody) Close() error {
	if b.done.CompareAndSwap(false, true) {
		b.tb.closed.Add(1)
	}
	return b.ReadCloser.Close()
}

func (tb *trackedBodies) RoundTrip(r *http.Request) (*http.Response, error) {
	resp, err := tb.base.RoundTrip(r)
	if err != nil {
		return nil, err
	}
	if tb.delay > 0 && r.URL.Host == tb.late {
		time.Sleep(tb.delay)
	}
	tb.opened.Add(1)
	resp.Body = &trackedBody{ReadCloser: resp.Body, tb: tb}
	return resp, nil
}

func TestAbandonedBodiesAreClosed(t *testing.T) {
	t.Run("5xx before a fallback", func(t *testing.T) {
		tb := &trackedBodies{base: newBase(t)}
		tr := mustTransport(t, Config{Transport: tb,
			Canary: newServer(t, "canary", httpStatus(503)).URL, Stable: newServer(t, "stable", httpStatus(500)).URL,
			Shadow: newServer(t, "shadow", nil).URL})
		r := do(t, tr, labelled(tenant.Canary, "acme", ""), "GET", "http://dep/x", "")
		if r.servedBy != "shadow" {
			t.Fatalf("%+v", r)
		}
		if tb.opened.Load() != 3 || tb.closed.Load() != 3 {
			t.Fatalf("opened %d bodies, closed %d", tb.opened.Load(), tb.closed.Load())
		}
	})
	t.Run("answer dropped by the timeout", func(t *testing.T) {
		// The base transport returns the answer after the attempt's timeout
		// fired (it ignores the context): failsafe keeps the timeout, and
		// the dropped answer's body must still be closed.
		canary := newServer(t, "canary", nil)
		tb := &trackedBodies{base: newBase(t), delay: 300 * time.Millisecond, late: canary.Listener.Addr().String()}
		tr := mustTransport(t, Config{Transport: tb, Timeout: 100 * time.Millisecond,
			Canary: canary.URL, Stable: newServer(t, "stable", nil).URL})
		r := do(t, tr, labelled(tenant.Canary, "acme", ""), "GET", "http://dep/late", "")
		if r.err != nil || r.servedBy != "stable" || r.reason != "canary:timeout" {
			t.Fatalf("%+v (%v)", r, r.err)
		}
		if tb.opened.Load() != 2 || tb.closed.Load() != 2 {
			t.Fatalf("opened %d bodies, closed %d", tb.opened.Load(), tb.closed.Load())
		}
	})
}

func TestCircuitOpenErrorIsMatchable(t *testing.T) {
	tr := mustTransport(t, Config{Stable: newServer(t, "stable", httpStatus(503)).URL,
		Breaker: BreakerConfig{Failures: 1, Delay: time.Minute}})
	do(t, tr, context.Background(), "GET", "http://dep/x", "")
	r := do(t, tr, context.Background(), "GET", "http://dep/x", "")
	if !errors.Is(r.err, circuitbreaker.ErrOpen) || !errors.Is(r.err, ErrExhausted) {
		t.Fatalf("error %v, want circuitbreaker.ErrOpen and ErrExhausted", r.err)
	}
}

func TestRequestIsNotModified(t *testing.T) {
	tr := mustTransport(t, Config{Canary: refusedURL(t), Stable: newServer(t, "stable", nil).URL})
	req, _ := http.NewRequestWithContext(labelled(tenant.Canary, "acme", ""), "PUT", "http://dep/x", strings.NewReader("body"))
	req.Header.Set("A", "1")
	resp, err := tr.RoundTrip(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if req.URL.Host != "dep" || req.Host != "dep" || len(req.Header) != 1 {
		t.Fatalf("request modified: %s %s %v", req.URL, req.Host, req.Header)
	}
}
