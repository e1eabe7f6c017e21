package middleware

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"

	"github.com/reqcanary/canary/tenant"
)

// TestRemoteParentInTheRequestsAllocation: the OpenTelemetry API's span key
// was learnt, so the caller's span context rides in the middleware's one
// allocation; the handler's context carries it as a remote, non-recording
// parent; a tracer started from that context continues the caller's trace;
// and the labels, the user hash included, are this request's own.
func TestRemoteParentInTheRequestsAllocation(t *testing.T) {
	if spanKey == nil {
		t.Fatal("the OpenTelemetry span key was not learnt: every traceparent costs two more allocations")
	}
	hasher := tenant.NewRandomUserHasher()
	d := tenant.DeciderFunc(func(_ context.Context, req tenant.Request) (tenant.Labels, error) {
		te, _ := tenant.ReadTenant(req.Source, req.Wire)
		u, _ := tenant.ReadUser(req.Source, req.Wire)
		l := tenant.Labels{Tenant: te, Cohort: tenant.Stable, Reason: tenant.ReasonPercent, TraceID: req.TraceID}
		if b, ok := req.Source.(tenant.UserHashBuffer); ok {
			l.UserHash = hasher.HashInto(b.UserHashBuffer(), te, u)
		}
		if b := req.Source.(tenant.UserHashBuffer).UserHashBuffer(); b != nil {
			t.Error("the user hash buffer was handed out twice")
		}
		return l, nil
	})
	sr := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(sr))
	t.Cleanup(func() { _ = tp.Shutdown(context.Background()) })
	var got []tenant.Labels
	h := New(d)(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ctx := r.Context()
		span := trace.SpanFromContext(ctx)
		sc := span.SpanContext()
		if span.IsRecording() || !sc.IsRemote() || sc.TraceID().String() != "4bf92f3577b34da6a3ce929d0e0e4736" ||
			sc.SpanID().String() != "00f067aa0ba902b7" || !sc.IsSampled() {
			t.Errorf("handler's span %+v (recording %v), want the caller's remote span context", sc, span.IsRecording())
		}
		_, child := tp.Tracer("test").Start(ctx, "child")
		child.End()
		l, _ := tenant.FromContext(ctx)
		got = append(got, l)
	}))
	for _, user := range []string{"alice", "bob"} {
		req := httptest.NewRequest(http.MethodGet, "/", nil)
		req.Header.Set("X-Tenant-ID", "acme")
		req.Header.Set("X-User-ID", user)
		req.Header.Set("Traceparent", "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01")
		h.ServeHTTP(httptest.NewRecorder(), req)
	}
	if len(got) != 2 || got[0].UserHash != hasher.Hash("acme", "alice") || got[1].UserHash != hasher.Hash("acme", "bob") {
		t.Fatalf("labels %+v: each request must keep its own user hash", got)
	}
	for _, s := range sr.Ended() {
		if s.Parent().SpanID().String() != "00f067aa0ba902b7" || s.SpanContext().TraceID().String() != "4bf92f3577b34da6a3ce929d0e0e4736" {
			t.Fatalf("child span %v has parent %v: the caller's trace was not continued", s.SpanContext(), s.Parent())
		}
	}
	if len(sr.Ended()) != 2 {
		t.Fatalf("%d spans ended, want 2", len(sr.Ended()))
	}
}

// FuzzParseTraceParent: the middleware's one-pass traceparent parser
// accepts exactly what tenant.ParseTraceParent accepts, with the same trace
// id, and decodes the ids and flags as written.
func FuzzParseTraceParent(f *testing.F) {
	for _, s := range []string{
		"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
		" 00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-03 ",
		"01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-extra",
		"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-extra",
		"ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
		"00-00000000000000000000000000000000-00f067aa0ba902b7-01",
		"00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
		"00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",
		"00-4bf92f3577b34da6a3ce929d0e0e473g-00f067aa0ba902b7-01",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, v string) {
		want, wantOK := tenant.ParseTraceParent(v)
		cfg, got, ok := parseTraceParent(v)
		if ok != wantOK || got != want {
			t.Fatalf("parseTraceParent(%q) = %q, %v; tenant.ParseTraceParent = %q, %v", v, got, ok, want, wantOK)
		}
		if !ok {
			return
		}
		s := strings.TrimSpace(v)
		if cfg.TraceID.String() != s[3:35] || cfg.SpanID.String() != s[36:52] {
			t.Fatalf("%q decoded as %s-%s", v, cfg.TraceID, cfg.SpanID)
		}
		var flags trace.TraceFlags
		if _, err := fmt.Sscanf(s[53:55], "%02x", &flags); err != nil || cfg.TraceFlags != flags&(trace.FlagsSampled|trace.FlagsRandom) {
			t.Fatalf("%q: flags %v", v, cfg.TraceFlags)
		}
	})
}
