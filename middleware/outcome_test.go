package middleware_test

import (
	"bufio"
	"context"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/reqcanary/canary/middleware"
	"github.com/reqcanary/canary/tenant"
)

type outcomeLog struct {
	mu       sync.Mutex
	statuses []int
	labels   []tenant.Labels
}

func (o *outcomeLog) record(_ context.Context, l tenant.Labels, status int, _ time.Duration) {
	o.mu.Lock()
	o.statuses = append(o.statuses, status)
	o.labels = append(o.labels, l)
	o.mu.Unlock()
}

func (o *outcomeLog) last(t *testing.T) int {
	t.Helper()
	o.mu.Lock()
	defer o.mu.Unlock()
	if len(o.statuses) == 0 {
		t.Fatal("no outcome reported")
	}
	return o.statuses[len(o.statuses)-1]
}

var canaryDecider = tenant.DeciderFunc(func(context.Context, tenant.Request) (tenant.Labels, error) {
	return tenant.Labels{Tenant: "acme", Cohort: tenant.Canary, Reason: tenant.ReasonPercent}, nil
})

func TestWithOutcomeStatuses(t *testing.T) {
	for _, tc := range []struct {
		name    string
		handler http.HandlerFunc
		want    int
	}{
		{"explicit 503", func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(503) }, 503},
		{"body only", func(w http.ResponseWriter, _ *http.Request) { _, _ = io.WriteString(w, "hi") }, 200},
		{"nothing written", func(http.ResponseWriter, *http.Request) {}, 200},
		{"1xx then 500", func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(103); w.WriteHeader(500) }, 500},
		{"second WriteHeader ignored", func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(404); w.WriteHeader(500) }, 404},
		{"ReadFrom", func(w http.ResponseWriter, _ *http.Request) {
			_, _ = w.(io.ReaderFrom).ReadFrom(strings.NewReader("body"))
		}, 200},
		{"flush", func(w http.ResponseWriter, _ *http.Request) { w.(http.Flusher).Flush(); w.WriteHeader(500) }, 200},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var got outcomeLog
			h := middleware.New(canaryDecider, middleware.WithOutcome(got.record))(tc.handler)
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/", nil))
			if s := got.last(t); s != tc.want {
				t.Fatalf("status reported %d, want %d", s, tc.want)
			}
			if got.labels[0].Cohort != tenant.Canary {
				t.Fatalf("labels %+v", got.labels[0])
			}
			if rec.Code != tc.want && tc.name != "flush" && tc.name != "1xx then 500" { // the recorder keeps a 1xx as Code
				t.Fatalf("the client saw %d", rec.Code)
			}
		})
	}
}

func TestWithOutcomePanicReports500(t *testing.T) {
	var got outcomeLog
	h := middleware.New(canaryDecider, middleware.WithOutcome(got.record))(http.HandlerFunc(func(http.ResponseWriter, *http.Request) {
		panic("boom")
	}))
	func() {
		defer func() {
			if r := recover(); r != "boom" {
				t.Fatalf("recovered %v, want the handler's panic", r)
			}
		}()
		h.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest(http.MethodGet, "/", nil))
	}()
	if s := got.last(t); s != 500 {
		t.Fatalf("status %d after a panic, want 500", s)
	}
}

func TestWithOutcomeInvalidRequestNotReported(t *testing.T) {
	var got outcomeLog
	d := tenant.DeciderFunc(func(context.Context, tenant.Request) (tenant.Labels, error) {
		return tenant.Labels{}, &tenant.FieldError{Field: "X-Tenant-ID", Reason: "bad"}
	})
	h := middleware.New(d, middleware.WithOutcome(got.record))(http.NotFoundHandler())
	h.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest(http.MethodGet, "/", nil))
	if len(got.statuses) != 0 {
		t.Fatalf("reported %v for a request the middleware refused", got.statuses)
	}
}

// plainWriter has neither Flush nor Hijack.
type plainWriter struct{ h http.Header }

func (w *plainWriter) Header() http.Header         { return w.h }
func (w *plainWriter) Write(p []byte) (int, error) { return len(p), nil }
func (w *plainWriter) WriteHeader(int)             {}

// The wrapper keeps exactly the optional interfaces the original writer has.
func TestWithOutcomeKeepsWriterInterfaces(t *testing.T) {
	var got outcomeLog
	var flusher, hijacker bool
	var unwrapped http.ResponseWriter
	h := middleware.New(canaryDecider, middleware.WithOutcome(got.record))(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		_, flusher = w.(http.Flusher)
		_, hijacker = w.(http.Hijacker)
		if u, ok := w.(interface{ Unwrap() http.ResponseWriter }); ok {
			unwrapped = u.Unwrap()
		}
	}))
	plain := &plainWriter{h: http.Header{}}
	h.ServeHTTP(plain, httptest.NewRequest(http.MethodGet, "/", nil))
	if flusher || hijacker || unwrapped != plain {
		t.Fatalf("plain writer: Flusher %v, Hijacker %v, Unwrap %v", flusher, hijacker, unwrapped)
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/", nil))
	if !flusher || hijacker {
		t.Fatalf("recorder: Flusher %v, Hijacker %v", flusher, hijacker)
	}

	// A real server's writer flushes and hijacks; a hijacked connection with
	// no status is reported as 0.
	srv := httptest.NewServer(middleware.New(canaryDecider, middleware.WithOutcome(got.record))(http.HandlerFunc(
		func(w http.ResponseWriter, r *http.Request) {
			_, flusher = w.(http.Flusher)
			conn, buf, err := w.(http.Hijacker).Hijack()
			if err != nil {
				t.Error(err)
				return
			}
			defer conn.Close()
			_, _ = buf.WriteString("HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok")
			_ = buf.Flush()
		})))
	defer srv.Close()
	conn, err := net.Dial("tcp", srv.Listener.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	_, _ = io.WriteString(conn, "GET / HTTP/1.1\r\nHost: x\r\n\r\n")
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	if string(body) != "ok" || !flusher {
		t.Fatalf("hijacked response %q, Flusher %v", body, flusher)
	}
	deadline := time.Now().Add(2 * time.Second)
	for {
		got.mu.Lock()
		n := len(got.statuses)
		got.mu.Unlock()
		if n == 3 || time.Now().After(deadline) {
			break
		}
		time.Sleep(time.Millisecond)
	}
	if s := got.last(t); s != 0 {
		t.Fatalf("hijacked connection reported %d, want 0", s)
	}
}

// TestWithOutcomeSwitch: while the switch is off the handler gets the
// original ResponseWriter and nothing is reported; once on, both come back.
func TestWithOutcomeSwitch(t *testing.T) {
	var got outcomeLog
	var on atomic.Bool
	var seen http.ResponseWriter
	h := middleware.New(canaryDecider, middleware.WithOutcome(got.record),
		middleware.WithOutcomeSwitch(on.Load), middleware.WithOutcomeSwitch(nil))(
		http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { seen = w; w.WriteHeader(503) }))

	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/", nil))
	if seen != rec {
		t.Errorf("switch off: handler got %T, want the original writer", seen)
	}
	if len(got.statuses) != 0 {
		t.Fatalf("switch off: outcomes %v reported, want none", got.statuses)
	}
	if rec.Code != 503 || rec.Header().Get(tenant.HeaderCohort) != "canary" {
		t.Errorf("switch off: status %d, cohort %q; want 503, canary", rec.Code, rec.Header().Get(tenant.HeaderCohort))
	}

	on.Store(true)
	rec = httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/", nil))
	if seen == rec {
		t.Error("switch on: handler got the original writer, want the status-recording one")
	}
	if s := got.last(t); s != 503 {
		t.Errorf("switch on: outcome %d, want 503", s)
	}
}
