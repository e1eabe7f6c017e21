package middleware

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"sync"
	"testing"

	"go.opentelemetry.io/otel/attribute"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"

	"github.com/reqcanary/canary/tenant"
)

// recordingDecider decides canary for tenant "acme" and stable otherwise,
// validates like the engine, and records the last request it saw.
type recordingDecider struct {
	mu   sync.Mutex
	last tenant.Request
	ctx  context.Context
}

func (d *recordingDecider) Decide(ctx context.Context, req tenant.Request) (tenant.Labels, error) {
	d.mu.Lock()
	d.last, d.ctx = req, ctx
	d.mu.Unlock()
	t, err := tenant.ReadTenant(req.Source, req.Wire)
	if err != nil {
		return tenant.Labels{}, err
	}
	if _, err := tenant.ReadUser(req.Source, req.Wire); err != nil {
		return tenant.Labels{}, err
	}
	l := tenant.Labels{Tenant: t, Cohort: tenant.Stable, Reason: tenant.ReasonPercent, Bucket: 42, TraceID: req.TraceID, PlanVersion: 3}
	if t == "acme" {
		l.Cohort, l.Reason = tenant.Canary, tenant.ReasonTenantCanary
	}
	return l, nil
}

func (d *recordingDecider) request() tenant.Request {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.last
}

// serve runs one request through New(d, opts...) and returns the recorder
// and the labels the handler saw (ok=false when it was not called).
func serve(t *testing.T, d tenant.Decider, req *http.Request, opts ...Option) (*httptest.ResponseRecorder, tenant.Labels, bool) {
	t.Helper()
	var got tenant.Labels
	called := false
	h := New(d, opts...)(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got, called = tenant.FromContext(r.Context())
		if !called {
			t.Error("handler called without labels")
		}
		called = true
	}))
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	return rec, got, called
}

func newReq(remote string, kv ...string) *http.Request {
	r := httptest.NewRequest(http.MethodGet, "/", nil)
	r.RemoteAddr = remote
	for i := 0; i+1 < len(kv); i += 2 {
		r.Header.Add(kv[i], kv[i+1])
	}
	return r
}

func TestLabelsContextAndCohortHeader(t *testing.T) {
	t.Parallel()
	d := &recordingDecider{}
	for _, tc := range []struct {
		tenant string
		want   tenant.Cohort
	}{{"acme", tenant.Canary}, {"globex", tenant.Stable}, {"", tenant.Stable}} {
		req := newReq("192.0.2.1:1234")
		if tc.tenant != "" {
			req.Header.Set("X-Tenant-ID", tc.tenant)
		}
		rec, l, called := serve(t, d, req)
		if !called || l.Cohort != tc.want || l.Tenant != tc.tenant {
			t.Fatalf("tenant %q: called=%v labels %+v", tc.tenant, called, l)
		}
		if got := rec.Header().Values("X-Canary-Cohort"); len(got) != 1 || got[0] != string(tc.want) {
			t.Fatalf("tenant %q: X-Canary-Cohort = %q, want %q", tc.tenant, got, tc.want)
		}
		if r := d.request(); r.Wire != tenant.HTTP || r.Peer != netip.MustParseAddr("192.0.2.1") {
			t.Fatalf("Decider got wire %+v peer %v", r.Wire, r.Peer)
		}
	}
}

// TestCohortHeaderValuesAreNotShared: a handler that appends to the cohort
// header, or changes its value in place, must not change what the next
// request gets.
func TestCohortHeaderValuesAreNotShared(t *testing.T) {
	t.Parallel()
	h := New(&recordingDecider{})(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header()["X-Canary-Cohort"][0] = "tampered"
		w.Header().Add("X-Canary-Cohort", "added")
	}))
	for _, tn := range []string{"acme", "acme", "globex", "globex"} {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, newReq("192.0.2.1:1", "X-Tenant-ID", tn))
		if got := rec.Header().Values("X-Canary-Cohort"); len(got) != 2 || got[0] != "tampered" || got[1] != "added" {
			t.Fatalf("tenant %s: X-Canary-Cohort = %q, want the handler's changes", tn, got)
		}
	}
	for _, tc := range []struct{ tenant, want string }{{"acme", "canary"}, {"globex", "stable"}} {
		rec, _, _ := serve(t, &recordingDecider{}, newReq("192.0.2.1:1", "X-Tenant-ID", tc.tenant))
		if got := rec.Header().Values("X-Canary-Cohort"); len(got) != 1 || got[0] != tc.want {
			t.Fatalf("after handlers changed theirs, tenant %s: X-Canary-Cohort = %q, want %q", tc.tenant, got, tc.want)
		}
	}
}

func TestBadInputIs400WithJSON(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		req  *http.Request
		opts []Option
		body string
	}{
		{"tenant too long", newReq("192.0.2.1:1", "X-Tenant-ID", strings.Repeat("a", 65)), nil,
			`{"error":"X-Tenant-ID: longer than 64 bytes","field":"X-Tenant-ID"}`},
		{"tenant bad byte", newReq("192.0.2.1:1", "X-Tenant-ID", "a/b"), nil,
			`{"error":"X-Tenant-ID: byte 1 is not one of [A-Za-z0-9._:-]","field":"X-Tenant-ID"}`},
		{"user control character", newReq("192.0.2.1:1", "X-User-ID", "a\x01"), nil,
			`{"error":"X-User-ID: contains a control character at byte 1","field":"X-User-ID"}`},
		{"tenant required", newReq("192.0.2.1:1", "X-User-ID", "bob"), []Option{WithRequireTenant()},
			`{"error":"X-Tenant-ID: required","field":"X-Tenant-ID"}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rec, _, called := serve(t, &recordingDecider{}, tt.req, tt.opts...)
			if called {
				t.Fatal("the handler ran for a bad request")
			}
			if rec.Code != http.StatusBadRequest {
				t.Fatalf("status %d, want 400", rec.Code)
			}
			if ct := rec.Header().Get("Content-Type"); ct != "application/json" {
				t.Errorf("Content-Type %q", ct)
			}
			if got := strings.TrimSpace(rec.Body.String()); got != tt.body {
				t.Fatalf("body %s\nwant %s", got, tt.body)
			}
			if rec.Header().Get("X-Canary-Cohort") != "" {
				t.Error("a rejected request has a cohort header")
			}
		})
	}
}

func TestWrappedFieldErrorAndOtherErrors(t *testing.T) {
	t.Parallel()
	wrapped := tenant.DeciderFunc(func(context.Context, tenant.Request) (tenant.Labels, error) {
		return tenant.Labels{}, errors.Join(errors.New("context"), &tenant.FieldError{Field: "X-User-ID", Reason: "empty"})
	})
	rec, _, called := serve(t, wrapped, newReq("192.0.2.1:1"))
	if called || rec.Code != 400 || strings.TrimSpace(rec.Body.String()) != `{"error":"X-User-ID: empty","field":"X-User-ID"}` {
		t.Fatalf("wrapped FieldError: %d %s", rec.Code, rec.Body)
	}
	internal := tenant.DeciderFunc(func(context.Context, tenant.Request) (tenant.Labels, error) {
		return tenant.Labels{}, errors.New("secret database password in message")
	})
	rec, _, called = serve(t, internal, newReq("192.0.2.1:1"))
	if called || rec.Code != 500 || strings.Contains(rec.Body.String(), "secret") {
		t.Fatalf("internal error: %d %s", rec.Code, rec.Body)
	}
	var body map[string]string
	if err := json.Unmarshal(rec.Body.Bytes(), &body); err != nil || body["error"] == "" {
		t.Fatalf("500 body %q is not the JSON error shape: %v", rec.Body, err)
	}
}

func TestNewPanicsOnProgrammingErrors(t *testing.T) {
	t.Parallel()
	for name, f := range map[string]func(){
		"nil decider": func() { New(nil) },
		"zero prefix": func() { New(&recordingDecider{}, WithTrustedProxies(netip.Prefix{})) },
		"nil next":    func() { New(&recordingDecider{})(nil) },
	} {
		func() {
			defer func() {
				if recover() == nil {
					t.Errorf("%s: no panic", name)
				}
			}()
			f()
		}()
	}
}

func TestSpanAttributes(t *testing.T) {
	t.Parallel()
	sr := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(sr))
	t.Cleanup(func() { _ = tp.Shutdown(context.Background()) })

	req := newReq("192.0.2.1:1", "X-Tenant-ID", "acme")
	ctx, span := tp.Tracer("test").Start(req.Context(), "server")
	_, l, _ := serve(t, &recordingDecider{}, req.WithContext(ctx), WithFlagKey("checkout-v2"))
	span.End()
	if l.TraceID != span.SpanContext().TraceID().String() {
		t.Fatalf("TraceID %q, want the active span's %s", l.TraceID, span.SpanContext().TraceID())
	}
	spans := sr.Ended()
	if len(spans) != 1 {
		t.Fatalf("%d spans", len(spans))
	}
	got := map[attribute.Key]attribute.Value{}
	for _, kv := range spans[0].Attributes() {
		got[kv.Key] = kv.Value
	}
	want := map[attribute.Key]string{
		"feature_flag.key":            "checkout-v2",
		"feature_flag.result.variant": "canary",
		"feature_flag.result.reason":  "targeting_match",
		"feature_flag.version":        "3",
		"feature_flag.provider.name":  "canary",
		"canary.reason":               "tenant-canary",
		"tenant.id":                   "acme",
	}
	for k, v := range want {
		if got[k].AsString() != v {
			t.Errorf("attribute %s = %q, want %q", k, got[k].AsString(), v)
		}
	}
	if got["canary.bucket"].AsInt64() != 42 {
		t.Errorf("canary.bucket = %v", got["canary.bucket"])
	}
}

func TestTraceParent(t *testing.T) {
	t.Parallel()
	const tp = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
	d := &recordingDecider{}
	_, l, _ := serve(t, d, newReq("192.0.2.1:1", "Traceparent", tp, "Tracestate", "vendor=x"))
	if l.TraceID != "4bf92f3577b34da6a3ce929d0e0e4736" || d.request().TraceID != l.TraceID {
		t.Fatalf("TraceID %q (decider saw %q)", l.TraceID, d.request().TraceID)
	}
	d.mu.Lock()
	sc := trace.SpanContextFromContext(d.ctx)
	d.mu.Unlock()
	if !sc.IsRemote() || sc.SpanID().String() != "00f067aa0ba902b7" || !sc.IsSampled() || sc.TraceState().Get("vendor") != "x" {
		t.Fatalf("remote parent in context = %+v", sc)
	}
	for _, bad := range [][]string{
		{"Traceparent", "00-00000000000000000000000000000000-00f067aa0ba902b7-01"},
		{"Traceparent", "garbage"},
		{"Traceparent", tp, "Traceparent", tp},
	} {
		_, l, called := serve(t, d, newReq("192.0.2.1:1", bad...))
		if !called || l.TraceID != "" {
			t.Fatalf("%q: called=%v TraceID %q, want the request served without a trace id", bad, called, l.TraceID)
		}
	}
}

func TestHeaderSourceMatchesHTTPHeader(t *testing.T) {
	t.Parallel()
	h := http.Header{}
	for _, k := range []string{"x-tenant-id", "X-USER-ID", "x-canary", "X-Canary-Decision", "traceparent", "baggage", "x-rollout"} {
		h.Add(k, "v-"+k)
	}
	src := headerSource(h)
	for _, k := range []string{tenant.HeaderTenant, tenant.HeaderUser, tenant.HeaderOverride, tenant.HeaderDecision,
		tenant.HeaderTraceParent, tenant.HeaderBaggage, "X-Rollout", "x-rollout", "X-Absent"} {
		if got, want := src.Values(k), h.Values(k); strings.Join(got, ",") != strings.Join(want, ",") {
			t.Errorf("Values(%q) = %q, want %q", k, got, want)
		}
	}
}
