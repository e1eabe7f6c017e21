package middleware

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strings"
	"testing"
	"time"

	"go.opentelemetry.io/otel/trace"

	"github.com/reqcanary/canary/tenant"
)

// roundTripFunc is a base transport that records what it was sent.
type roundTripFunc func(*http.Request) (*http.Response, error)

func (f roundTripFunc) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

// capture returns a base transport that stores the request it receives.
func capture(got **http.Request) roundTripFunc {
	return func(r *http.Request) (*http.Response, error) {
		*got = r
		return &http.Response{StatusCode: http.StatusNoContent, Body: http.NoBody, Request: r}, nil
	}
}

var transportLabels = tenant.Labels{
	Tenant: "acme", UserHash: "0f1e2d3c4b5a69788796a5b4c3d2e1f0", Bucket: 1234,
	Cohort: tenant.Canary, Reason: tenant.ReasonPercent, TraceID: "4bf92f3577b34da6a3ce929d0e0e4736", PlanVersion: 7,
}

var transportKey = []byte("0123456789abcdef-decision-key")

// outgoing returns a request carrying labels l, with the headers a handler
// might have copied from its own inbound request.
func outgoing(t *testing.T, ctx context.Context, kv ...string) *http.Request {
	t.Helper()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://internal.example/orders", nil)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i+1 < len(kv); i += 2 {
		req.Header.Add(kv[i], kv[i+1])
	}
	return req
}

func TestTransportWritesLabelsOnACopy(t *testing.T) {
	t.Parallel()
	var sent *http.Request
	rt := Transport(capture(&sent))
	ctx := tenant.NewContext(context.Background(), transportLabels)
	req := outgoing(t, ctx,
		tenant.HeaderUser, "alice@example.com",
		tenant.HeaderTenant, "other",
		tenant.HeaderOverride, "stable",
		tenant.HeaderDecision, "v1;stale",
		tenant.HeaderBaggage, "userId=42,canary.cohort=stable",
		"Accept", "application/json")
	before := req.Header.Clone()

	resp, err := rt.RoundTrip(req)
	if err != nil {
		t.Fatalf("RoundTrip: %v", err)
	}
	_ = resp.Body.Close()

	if !reflect.DeepEqual(req.Header, before) {
		t.Errorf("caller's headers changed:\n got %v\nwant %v", req.Header, before)
	}
	if sent == req {
		t.Fatal("the caller's request was sent, not a copy")
	}
	h := sent.Header
	want := map[string]string{
		tenant.HeaderTenant:   "acme",
		tenant.HeaderOverride: "canary",
		tenant.HeaderBaggage:  "userId=42,canary.cohort=canary,canary.tenant=acme,canary.bucket=1234",
		"Accept":              "application/json",
	}
	for k, v := range want {
		if got := h.Values(k); len(got) != 1 || got[0] != v {
			t.Errorf("%s = %q, want [%q]", k, got, v)
		}
	}
	for _, k := range []string{tenant.HeaderUser, tenant.HeaderDecision} {
		if vs := h.Values(k); len(vs) > 0 {
			t.Errorf("%s = %q, want it removed", k, vs)
		}
	}
	for k, vs := range h {
		for _, v := range vs {
			if strings.Contains(v, "alice") {
				t.Errorf("raw user id sent in %s: %q", k, v)
			}
		}
	}
}

func TestTransportSignsDecision(t *testing.T) {
	t.Parallel()
	signer, err := tenant.NewDecisionSigner(transportKey)
	if err != nil {
		t.Fatal(err)
	}
	var sent *http.Request
	rt := Transport(capture(&sent), WithSigner(signer.LabelSigner(time.Minute, nil)))
	req := outgoing(t, tenant.NewContext(context.Background(), transportLabels), tenant.HeaderDecision, "v1;forged")
	if _, err := rt.RoundTrip(req); err != nil {
		t.Fatalf("RoundTrip: %v", err)
	}
	vs := sent.Header.Values(tenant.HeaderDecision)
	if len(vs) != 1 {
		t.Fatalf("%s = %q, want one value", tenant.HeaderDecision, vs)
	}
	d, err := signer.Verify(vs[0], time.Now())
	if err != nil {
		t.Fatalf("Verify(%q): %v", vs[0], err)
	}
	want := transportLabels
	want.TraceID = "" // travels in traceparent, not in the decision
	if got := d.Labels(); got != want {
		t.Errorf("decision carries %+v, want %+v", got, want)
	}
}

func TestTransportWithoutLabelsPassesThrough(t *testing.T) {
	t.Parallel()
	var sent *http.Request
	rt := Transport(capture(&sent), WithSigner(func(tenant.Labels) (string, error) {
		t.Error("signer called for a request without labels")
		return "", nil
	}))
	req := outgoing(t, context.Background(), tenant.HeaderUser, "svc-batch", tenant.HeaderDecision, "v1;x")
	before := req.Header.Clone()
	if _, err := rt.RoundTrip(req); err != nil {
		t.Fatalf("RoundTrip: %v", err)
	}
	if sent != req {
		t.Error("a request without labels was copied; want it passed through")
	}
	if !reflect.DeepEqual(sent.Header, before) {
		t.Errorf("headers changed: %v, want %v", sent.Header, before)
	}
}

func TestTransportTraceParent(t *testing.T) {
	t.Parallel()
	sc := trace.NewSpanContext(trace.SpanContextConfig{
		TraceID:    trace.TraceID{0x4b, 0xf9, 0x2f, 0x35, 0x77, 0xb3, 0x4d, 0xa6, 0xa3, 0xce, 0x92, 0x9d, 0x0e, 0x0e, 0x47, 0x36},
		SpanID:     trace.SpanID{0x00, 0xf0, 0x67, 0xaa, 0x0b, 0xa9, 0x02, 0xb7},
		TraceFlags: trace.FlagsSampled,
		Remote:     true,
	})
	ctx := trace.ContextWithRemoteSpanContext(tenant.NewContext(context.Background(), transportLabels), sc)
	tests := []struct {
		name string
		kv   []string
		want string
	}{
		{"from the span context", nil, "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"},
		{"caller's kept", []string{tenant.HeaderTraceParent, "00-11111111111111111111111111111111-2222222222222222-00"},
			"00-11111111111111111111111111111111-2222222222222222-00"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var sent *http.Request
			if _, err := Transport(capture(&sent)).RoundTrip(outgoing(t, ctx, tt.kv...)); err != nil {
				t.Fatal(err)
			}
			if got := sent.Header.Values(tenant.HeaderTraceParent); len(got) != 1 || got[0] != tt.want {
				t.Errorf("traceparent = %q, want [%q]", got, tt.want)
			}
		})
	}
	t.Run("no span context", func(t *testing.T) {
		var sent *http.Request
		ctx := tenant.NewContext(context.Background(), transportLabels)
		if _, err := Transport(capture(&sent)).RoundTrip(outgoing(t, ctx)); err != nil {
			t.Fatal(err)
		}
		if got := sent.Header.Values(tenant.HeaderTraceParent); len(got) != 0 {
			t.Errorf("traceparent = %q, want none", got)
		}
	})
}

// closeBody records whether it was closed.
type closeBody struct {
	io.Reader
	closed bool
}

func (b *closeBody) Close() error { b.closed = true; return nil }

func TestTransportSignerErrorClosesBody(t *testing.T) {
	t.Parallel()
	errSign := errors.New("signer broken")
	rt := Transport(roundTripFunc(func(*http.Request) (*http.Response, error) {
		t.Error("request sent although signing failed")
		return nil, errors.New("unreachable")
	}), WithSigner(func(tenant.Labels) (string, error) { return "", errSign }))
	body := &closeBody{Reader: strings.NewReader("payload")}
	req, _ := http.NewRequestWithContext(tenant.NewContext(context.Background(), transportLabels),
		http.MethodPost, "http://internal.example/", body)
	resp, err := rt.RoundTrip(req)
	if resp != nil {
		t.Errorf("response %v, want nil", resp)
	}
	if !errors.Is(err, errSign) || !strings.Contains(err.Error(), tenant.HeaderDecision) {
		t.Errorf("error %v: want one wrapping the signer's error and naming %s", err, tenant.HeaderDecision)
	}
	if !body.closed {
		t.Error("request body not closed")
	}
}

func TestTransportNilBaseIsDefaultTransport(t *testing.T) {
	t.Parallel()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, r.Header.Get(tenant.HeaderTenant)+" "+r.Header.Get(tenant.HeaderOverride))
	}))
	defer srv.Close()
	client := &http.Client{Transport: Transport(nil)}
	defer client.CloseIdleConnections()
	req, _ := http.NewRequestWithContext(tenant.NewContext(context.Background(), transportLabels), http.MethodGet, srv.URL, nil)
	resp, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if string(b) != "acme canary" {
		t.Errorf("server saw %q, want %q", b, "acme canary")
	}
}

// idleCloser counts CloseIdleConnections calls.
type idleCloser struct {
	roundTripFunc
	n int
}

func (c *idleCloser) CloseIdleConnections() { c.n++ }

func TestTransportForwardsCloseIdleConnections(t *testing.T) {
	t.Parallel()
	base := &idleCloser{}
	(&http.Client{Transport: Transport(base)}).CloseIdleConnections()
	if base.n != 1 {
		t.Errorf("base CloseIdleConnections called %d times, want 1", base.n)
	}
}

func TestWithStripDecision(t *testing.T) {
	t.Parallel()
	d := &recordingDecider{}
	for _, strip := range []bool{false, true} {
		var opts []Option
		if strip {
			opts = append(opts, WithStripDecision())
		}
		var seen []string
		h := New(d, opts...)(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			seen = r.Header.Values(tenant.HeaderDecision)
		}))
		req := httptest.NewRequest(http.MethodGet, "/", nil)
		req.Header.Set(tenant.HeaderDecision, "v1;c=canary")
		h.ServeHTTP(httptest.NewRecorder(), req)
		if strip && len(seen) != 0 {
			t.Errorf("WithStripDecision: handler saw %s %q", tenant.HeaderDecision, seen)
		}
		if !strip && len(seen) != 1 {
			t.Errorf("default: handler saw %s %q, want it unchanged", tenant.HeaderDecision, seen)
		}
		if got := d.request().Source.Values(tenant.HeaderDecision); len(got) != 1 {
			t.Errorf("strip=%v: decider saw %s %q, want the inbound value", strip, tenant.HeaderDecision, got)
		}
		if got := req.Header.Values(tenant.HeaderDecision); len(got) != 1 {
			t.Errorf("strip=%v: the server's request changed: %q", strip, got)
		}
	}
}
