package fallback

import (
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

	"go.uber.org/goleak"

	"github.com/reqcanary/canary/tenant"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// server is a loopback HTTP server that names itself in its answers and
// counts the requests it received.
type server struct {
	*httptest.Server
	name  string
	hits  atomic.Int64
	mu    sync.Mutex
	reqs  []recorded
	serve http.HandlerFunc
}

type recorded struct {
	Method, Path, Query string
	Header              http.Header
	Body                string
}

func (s *server) requests() []recorded {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]recorded(nil), s.reqs...)
}

// newServer starts a server whose handler is serve (ok200 when nil).
func newServer(t *testing.T, name string, serve http.HandlerFunc) *server {
	t.Helper()
	s := &server{name: name, serve: serve}
	if s.serve == nil {
		s.serve = ok200
	}
	s.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		s.mu.Lock()
		s.reqs = append(s.reqs, recorded{Method: r.Method, Path: r.URL.Path, Query: r.URL.RawQuery, Header: r.Header.Clone(), Body: string(body)})
		s.mu.Unlock()
		s.hits.Add(1)
		w.Header().Set("X-Origin", name)
		s.serve(w, r)
	}))
	t.Cleanup(s.Close)
	return s
}

func ok200(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "text/plain")
	io.WriteString(w, "hello from "+w.Header().Get("X-Origin")+" "+r.URL.Path)
}

func httpStatus(code int) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(code)
		io.WriteString(w, "failure "+http.StatusText(code))
	}
}

// hang answers only when the request is canceled or after d.
func hang(d time.Duration) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-r.Context().Done():
		case <-time.After(d):
		}
		ok200(w, r)
	}
}

// refusedURL returns the URL of a loopback port nobody listens on: a
// listener that was closed.
func refusedURL(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	return "http://" + addr
}

// newBase returns a fresh base transport whose idle connections are closed
// at the end of the test (goleak).
func newBase(t *testing.T) *http.Transport {
	t.Helper()
	b := &http.Transport{MaxIdleConnsPerHost: 16}
	t.Cleanup(b.CloseIdleConnections)
	return b
}

// mustTransport builds a transport and closes it at the end of the test.
func mustTransport(t *testing.T, c Config) Transport {
	t.Helper()
	if c.Transport == nil {
		c.Transport = newBase(t)
	}
	tr, err := NewTransport(c)
	if err != nil {
		t.Fatalf("NewTransport: %v", err)
	}
	t.Cleanup(func() { tr.Close() })
	return tr
}

func labelled(cohort tenant.Cohort, tenantID, userHash string) context.Context {
	return tenant.NewContext(context.Background(), tenant.Labels{Tenant: tenantID, UserHash: userHash, Cohort: cohort})
}

// result is what a test checks of a round trip.
type result struct {
	status   int
	servedBy string
	reason   string
	body     string
	header   http.Header
	err      error
}

// do sends method url with body through rt with ctx and reads the answer.
func do(t *testing.T, rt http.RoundTripper, ctx context.Context, method, url, body string, hdr ...string) result {
	t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, url, rd)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Add(hdr[i], hdr[i+1])
	}
	resp, err := rt.RoundTrip(req)
	if err != nil {
		return result{err: err}
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("reading body: %v", err)
	}
	return result{status: resp.StatusCode, servedBy: resp.Header.Get(HeaderServedBy),
		reason: resp.Header.Get(HeaderFallbackReason), body: string(b), header: resp.Header}
}

// eventually polls cond every 10ms for up to 5s.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
