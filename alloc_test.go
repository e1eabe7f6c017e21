package canary

import (
	"net/http"
	"net/http/httptest"
	"testing"
)

// TestMiddlewareAllocations pins the allocations the engine's middleware adds
// to a request with tenant and user headers: the user hash string, the
// labels context (tenant.NewContext) and the derived request (WithContext).
func TestMiddlewareAllocations(t *testing.T) {
	if raceEnabled {
		t.Skip("allocation counts are meaningless under the race detector")
	}
	e := newTestEngine(t, planAt("12.5"))
	h := e.Middleware(http.HandlerFunc(func(http.ResponseWriter, *http.Request) {}))
	req := httptest.NewRequest(http.MethodGet, "/", nil)
	req.RemoteAddr = "192.0.2.1:4000"
	req.Header.Set("X-Tenant-ID", "globex")
	req.Header.Set("X-User-ID", "user-12345")
	w := &nopWriter{h: http.Header{}}
	h.ServeHTTP(w, req) // warm the hasher's pool
	n := testing.AllocsPerRun(200, func() {
		clear(w.h)
		h.ServeHTTP(w, req)
	})
	if n > 3 {
		t.Fatalf("the middleware allocates %v times per request, want at most 3", n)
	}
}

type nopWriter struct{ h http.Header }

func (w *nopWriter) Header() http.Header         { return w.h }
func (w *nopWriter) Write(p []byte) (int, error) { return len(p), nil }
func (w *nopWriter) WriteHeader(int)             {}
