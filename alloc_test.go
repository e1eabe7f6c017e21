package canary

import (
	"net/http"
	"net/http/httptest"
	"testing"
)

// TestMiddlewareAllocations pins the allocations the engine's middleware adds
// to a request with tenant, user and traceparent headers (issue 17): the
// request's state (labels context, user hash digits, Source and remote
// parent span in one object) and the derived request (WithContext). With a
// guard configured, the status-recording writer is pooled: still 2.
func TestMiddlewareAllocations(t *testing.T) {
	if raceEnabled {
		t.Skip("allocation counts are meaningless under the race detector (make test runs this without it)")
	}
	for _, tc := range []struct {
		name string
		opts []Option
	}{
		{"no guard", nil},
		{"guard", []Option{WithGuard(GuardConfig{Enabled: true})}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newTestEngine(t, planAt("12.5"), tc.opts...)
			h := e.Middleware(http.HandlerFunc(func(http.ResponseWriter, *http.Request) {}))
			req := httptest.NewRequest(http.MethodGet, "/", nil)
			req.RemoteAddr = "192.0.2.1:4000"
			req.Header.Set("X-Tenant-ID", "globex")
			req.Header.Set("X-User-ID", "user-12345")
			req.Header.Set("Traceparent", "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01")
			w := &nopWriter{h: http.Header{}}
			h.ServeHTTP(w, req) // warm the writer pool
			n := testing.AllocsPerRun(200, func() {
				clear(w.h)
				h.ServeHTTP(w, req)
			})
			if n > 2 {
				t.Fatalf("the middleware allocates %v times per request, want at most 2", n)
			}
			if got := e.Status().Guard.Enabled; got != (tc.opts != nil) {
				t.Fatalf("guard enabled = %v", got)
			}
		})
	}
}

type nopWriter struct{ h http.Header }

func (w *nopWriter) Header() http.Header         { return w.h }
func (w *nopWriter) Write(p []byte) (int, error) { return len(p), nil }
func (w *nopWriter) WriteHeader(int)             {}
