package fallback

import (
	"bytes"
	"errors"
	"io"
	"net/http"
	"runtime"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/reqcanary/canary/tenant"
)

// pattern is the repeating content of generated bodies.
var pattern = func() []byte {
	b := make([]byte, 64<<10)
	for i := range b {
		b[i] = byte(i*7 + i>>9)
	}
	return b
}()

// genBody streams n bytes of pattern without holding them: a body of
// unknown length, as a client upload would be.
type genBody struct {
	n, off int64
}

func (g *genBody) Read(p []byte) (int, error) {
	if g.off >= g.n {
		return 0, io.EOF
	}
	k := int64(0)
	for k < int64(len(p)) && g.off < g.n {
		i := g.off % int64(len(pattern))
		c := int64(copy(p[k:], pattern[i:min(int64(len(pattern)), i+g.n-g.off)]))
		k += c
		g.off += c
	}
	return int(k), nil
}

// checkPattern reads r and reports how many bytes it held and whether they
// were pattern's, in order.
func checkPattern(r io.Reader) (int64, bool) {
	buf := make([]byte, len(pattern))
	var n int64
	ok := true
	for {
		k, err := io.ReadFull(r, buf)
		if k > 0 && !bytes.Equal(buf[:k], pattern[:k]) {
			ok = false
		}
		n += int64(k)
		if err != nil {
			return n, ok
		}
	}
}

// heapPeak samples the heap every 5ms until stop is closed and returns the
// highest HeapAlloc seen.
func heapPeak(stop <-chan struct{}) <-chan uint64 {
	out := make(chan uint64, 1)
	go func() {
		var peak uint64
		var ms runtime.MemStats
		tk := time.NewTicker(5 * time.Millisecond)
		defer tk.Stop()
		for {
			runtime.ReadMemStats(&ms)
			peak = max(peak, ms.HeapAlloc)
			select {
			case <-stop:
				out <- peak
				return
			case <-tk.C:
			}
		}
	}()
	return out
}

// TestReplayBufferIsBounded pins issue 12: a 512 MiB streamed POST through a
// transport with a fallback chain took 1.7 GiB of heap (the body was read
// into memory to be replayable). It must stream with little heap and reach
// the upstream whole.
func TestReplayBufferIsBounded(t *testing.T) {
	const size = 512 << 20
	var got atomic.Int64
	var intact atomic.Bool
	canary := newRawServer(t, func(w http.ResponseWriter, r *http.Request) {
		n, ok := checkPattern(r.Body)
		got.Store(n)
		intact.Store(ok)
		io.WriteString(w, "stored")
	})
	stable := newServer(t, "stable", nil)
	tr := mustTransport(t, Config{Canary: canary.URL, Stable: stable.URL, Timeout: 2 * time.Minute, Budget: 5 * time.Minute})

	runtime.GC()
	var before runtime.MemStats
	runtime.ReadMemStats(&before)
	stop := make(chan struct{})
	peakc := heapPeak(stop)
	req, _ := http.NewRequestWithContext(labelled(tenant.Canary, "acme", ""), "POST", "http://dep/upload", &genBody{n: size})
	resp, err := tr.RoundTrip(req)
	close(stop)
	peak := <-peakc
	if err != nil {
		t.Fatalf("upload: %v", err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if string(b) != "stored" || resp.Header.Get(HeaderServedBy) != "canary" {
		t.Fatalf("answer %q from %q", b, resp.Header.Get(HeaderServedBy))
	}
	if got.Load() != size || !intact.Load() {
		t.Fatalf("upstream received %d bytes (intact %v), want %d", got.Load(), intact.Load(), size)
	}
	growth := int64(peak) - int64(before.HeapAlloc)
	t.Logf("heap growth during a %d MiB streamed upload: %.1f MiB", size>>20, float64(growth)/(1<<20))
	if growth > 64<<20 {
		t.Fatalf("heap grew by %d MiB during the upload, want < 64 MiB", growth>>20)
	}
}

// newRawServer is newServer without reading the body for the record.
func newRawServer(t *testing.T, h http.HandlerFunc) *server {
	t.Helper()
	s := newServer(t, "raw", nil)
	s.Config.Handler = h
	return s
}

// TestLargeBodyIsNotReplayed: a body over MaxReplayBodyBytes (declared, or
// streamed and found larger) is sent once; when that attempt fails, even an
// idempotent PUT is not sent to stable or shadow: the caller gets the 5xx or
// an error matching ErrBodyNotReplayed. A body within the limit still is.
func TestLargeBodyIsNotReplayed(t *testing.T) {
	const limit = 1 << 10
	var canaryGot atomic.Int64
	canary := newRawServer(t, func(w http.ResponseWriter, r *http.Request) {
		n, _ := io.Copy(io.Discard, r.Body)
		canaryGot.Store(n)
		if r.URL.Path == "/reset" {
			conn, _, err := http.NewResponseController(w).Hijack()
			if err == nil {
				conn.Close()
			}
			return
		}
		httpStatus(503)(w, r)
	})
	stable := newServer(t, "stable", nil)
	shadow := newServer(t, "shadow", nil)
	tr := mustTransport(t, Config{Canary: canary.URL, Stable: stable.URL, Shadow: shadow.URL,
		MaxReplayBodyBytes: limit, Breaker: BreakerConfig{Failures: 1000}})
	ctx := labelled(tenant.Canary, "acme", "")
	big := strings.Repeat("b", 4*limit)
	for _, tc := range []struct {
		name string
		body func() io.Reader
	}{
		{"declared length", func() io.Reader { return strings.NewReader(big) }},
		{"streamed", func() io.Reader { return io.MultiReader(strings.NewReader(big)) }},
	} {
		for _, path := range []string{"/fail", "/reset"} {
			t.Run(tc.name+path, func(t *testing.T) {
				before := stable.hits.Load() + shadow.hits.Load()
				req, _ := http.NewRequestWithContext(ctx, "PUT", "http://dep"+path, tc.body())
				resp, err := tr.RoundTrip(req)
				switch path {
				case "/fail":
					if err != nil {
						t.Fatalf("got error %v, want canary's 503", err)
					}
					resp.Body.Close()
					if resp.StatusCode != 503 || resp.Header.Get(HeaderServedBy) != "canary" {
						t.Fatalf("got %d from %s, want canary's 503", resp.StatusCode, resp.Header.Get(HeaderServedBy))
					}
				case "/reset":
					if err == nil {
						resp.Body.Close()
						t.Fatalf("got %d from %s, want an error", resp.StatusCode, resp.Header.Get(HeaderServedBy))
					}
					var fe *Error
					if !errors.Is(err, ErrBodyNotReplayed) || !errors.Is(err, ErrNotReplayed) || !errors.As(err, &fe) || !fe.BodyNotReplayed {
						t.Fatalf("error %v does not match ErrBodyNotReplayed", err)
					}
					if !strings.Contains(err.Error(), "MaxReplayBodyBytes") {
						t.Errorf("error %q does not say why", err)
					}
				}
				if n := stable.hits.Load() + shadow.hits.Load() - before; n != 0 {
					t.Fatalf("the large body was replayed to stable/shadow (%d requests)", n)
				}
			})
		}
	}
	// Within the limit, the same PUT falls back to stable with its body.
	r := do(t, tr, ctx, "PUT", "http://dep/fail", "small")
	if r.servedBy != "stable" || stable.requests()[len(stable.requests())-1].Body != "small" {
		t.Fatalf("a small PUT: %+v", r)
	}
}

// TestLargeBodyGoesOnWhenNotSent: a large body the failed attempt never read
// (the canary refused the connection) is sent whole to stable: it was never
// sent, so this is not a replay.
func TestLargeBodyGoesOnWhenNotSent(t *testing.T) {
	stable := newServer(t, "stable", nil)
	tr := mustTransport(t, Config{Canary: refusedURL(t), Stable: stable.URL, MaxReplayBodyBytes: 1024})
	big := strings.Repeat("z", 10_000)
	req, _ := http.NewRequestWithContext(labelled(tenant.Canary, "acme", ""), "POST", "http://dep/orders", io.MultiReader(strings.NewReader(big)))
	resp, err := tr.RoundTrip(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if got := stable.requests(); len(got) != 1 || got[0].Body != big {
		t.Fatalf("stable received %d requests", len(got))
	}
}

// closeCounter counts Close calls of a request body.
type closeCounter struct {
	io.Reader
	n atomic.Int32
}

func (c *closeCounter) Close() error { c.n.Add(1); return nil }

// TestRequestBodyIsClosed: the caller's body is closed exactly once whatever
// path it took (RoundTripper contract).
func TestRequestBodyIsClosed(t *testing.T) {
	stable := newServer(t, "stable", nil)
	for name, c := range map[string]Config{
		"single endpoint": {Stable: stable.URL},
		"chain, small":    {Canary: refusedURL(t), Stable: stable.URL},
		"chain, over":     {Canary: refusedURL(t), Stable: stable.URL, MaxReplayBodyBytes: 4},
		"chain, all fail": {Canary: refusedURL(t), Stable: refusedURL(t), MaxReplayBodyBytes: 4},
	} {
		t.Run(name, func(t *testing.T) {
			tr := mustTransport(t, c)
			body := &closeCounter{Reader: strings.NewReader("0123456789")}
			req, _ := http.NewRequestWithContext(labelled(tenant.Canary, "acme", ""), "POST", "http://dep/x", body)
			resp, err := tr.RoundTrip(req)
			if err == nil {
				resp.Body.Close()
			}
			eventually(t, "the body to be closed", func() bool { return body.n.Load() >= 1 })
			time.Sleep(20 * time.Millisecond)
			if n := body.n.Load(); n != 1 {
				t.Fatalf("body closed %d times", n)
			}
		})
	}
}
