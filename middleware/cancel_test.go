package middleware_test

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/reqcanary/canary/middleware"
	"github.com/reqcanary/canary/tenant"
)

// cancelLog records, per reported outcome, its status and whether the
// client had gone away.
type cancelLog struct {
	mu        sync.Mutex
	statuses  []int
	cancelled []bool
}

func (c *cancelLog) record(ctx context.Context, _ tenant.Labels, status int, _ time.Duration) {
	c.mu.Lock()
	c.statuses = append(c.statuses, status)
	c.cancelled = append(c.cancelled, middleware.ClientCancelled(ctx))
	c.mu.Unlock()
}

func (c *cancelLog) wait(t *testing.T, n int) ([]int, []bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		c.mu.Lock()
		if len(c.statuses) >= n {
			defer c.mu.Unlock()
			return append([]int(nil), c.statuses...), append([]bool(nil), c.cancelled...)
		}
		c.mu.Unlock()
		if time.Now().After(deadline) {
			t.Fatalf("fewer than %d outcomes reported", n)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// A client that closes its connection while the handler runs: the handler's
// cancelled work answers 503, and the outcome is reported client-cancelled
// (issue 12: aborted HTTP requests tripped the guard as server failures).
// A request the client waits for, even one that fails, is not.
func TestClientCancelledOnClientAbort(t *testing.T) {
	var got cancelLog
	started := make(chan struct{}, 1)
	h := middleware.New(canaryDecider, middleware.WithOutcome(got.record))(http.HandlerFunc(
		func(w http.ResponseWriter, r *http.Request) {
			if r.URL.Path == "/slow" {
				started <- struct{}{}
				<-r.Context().Done() // a query the client's departure cancels
				http.Error(w, "cancelled", http.StatusServiceUnavailable)
				return
			}
			http.Error(w, "boom", http.StatusInternalServerError)
		}))
	for _, proto := range []string{"HTTP/1.1", "HTTP/2"} {
		t.Run(proto, func(t *testing.T) {
			got = cancelLog{}
			srv := httptest.NewUnstartedServer(h)
			if proto == "HTTP/2" {
				srv.EnableHTTP2 = true
				srv.StartTLS()
			} else {
				srv.Start()
			}
			defer srv.Close()
			ctx, cancel := context.WithCancel(context.Background())
			req, _ := http.NewRequestWithContext(ctx, http.MethodGet, srv.URL+"/slow", nil)
			done := make(chan error, 1)
			go func() {
				resp, err := srv.Client().Do(req)
				if err == nil {
					resp.Body.Close()
				}
				done <- err
			}()
			<-started
			cancel()
			if err := <-done; !errors.Is(err, context.Canceled) {
				t.Fatalf("client: %v, want its own cancellation", err)
			}
			resp, err := srv.Client().Get(srv.URL + "/fail")
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			statuses, cancelled := got.wait(t, 2)
			byStatus := map[int]bool{}
			for i, s := range statuses {
				byStatus[s] = cancelled[i]
			}
			if c, ok := byStatus[503]; !ok || !c {
				t.Errorf("aborted request: reported %v (client-cancelled %v), want 503 client-cancelled", statuses, cancelled)
			}
			if c, ok := byStatus[500]; !ok || c {
				t.Errorf("failed request the client waited for: reported %v (client-cancelled %v), want 500 not cancelled", statuses, cancelled)
			}
		})
	}
}

// A server-side timeout around the middleware (http.TimeoutHandler) is the
// server's: the request context ends by its deadline and is not reported as
// client-cancelled; the same for a context cancelled with a cause of its own.
func TestClientCancelledNotForServerTimeouts(t *testing.T) {
	var got cancelLog
	inner := middleware.New(canaryDecider, middleware.WithOutcome(got.record))(http.HandlerFunc(
		func(w http.ResponseWriter, r *http.Request) {
			<-r.Context().Done()
			http.Error(w, "too slow", http.StatusServiceUnavailable)
		}))
	h := http.TimeoutHandler(inner, 10*time.Millisecond, "timeout")
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/", nil))
	if rec.Code != http.StatusServiceUnavailable {
		t.Fatalf("client saw %d", rec.Code)
	}
	ctx, cancel := context.WithCancelCause(context.Background())
	cancel(errors.New("server shutting this request down"))
	inner.ServeHTTP(httptest.NewRecorder(), httptest.NewRequestWithContext(ctx, http.MethodGet, "/", nil))
	_, cancelled := got.wait(t, 2)
	if cancelled[0] || cancelled[1] {
		t.Fatalf("server-side ends reported client-cancelled: %v", cancelled)
	}
	if middleware.ClientCancelled(context.Background()) {
		t.Fatal("a live context reported client-cancelled")
	}
}

// An answer cut by the server's own write deadline (http.Server.WriteTimeout)
// is a server failure, although net/http then cancels the request's context
// as when a client goes away: a canary slow enough to miss the write
// deadline must not hide among client-cancelled requests.
func TestServerWriteTimeoutIsNotClientCancelled(t *testing.T) {
	var got cancelLog
	h := middleware.New(canaryDecider, middleware.WithOutcome(got.record))(http.HandlerFunc(
		func(w http.ResponseWriter, r *http.Request) {
			time.Sleep(300 * time.Millisecond) // past the write deadline
			chunk := make([]byte, 64<<10)
			for range 64 { // more than any buffer holds
				if _, err := w.Write(chunk); err != nil {
					return
				}
			}
		}))
	srv := httptest.NewUnstartedServer(h)
	srv.Config.WriteTimeout = 100 * time.Millisecond
	srv.Start()
	defer srv.Close()
	if resp, err := http.Get(srv.URL + "/slow"); err == nil {
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
	}
	statuses, cancelled := got.wait(t, 1)
	if cancelled[0] || statuses[0] < 500 {
		t.Fatalf("outcome: status %d, client-cancelled %v; want a 5xx server failure", statuses[0], cancelled[0])
	}
}
