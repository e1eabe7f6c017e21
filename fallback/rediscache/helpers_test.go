package rediscache_test

import (
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/reqcanary/canary/fallback"
	"github.com/reqcanary/canary/fallback/rediscache"
	"github.com/reqcanary/canary/internal/testenv"
	"github.com/reqcanary/canary/tenant"
)

// redisClient returns a client of the test Redis, closed at the end of the
// test; the test is skipped (failed in CI) when Redis does not answer.
func redisClient(t *testing.T) *redis.Client {
	t.Helper()
	client := redis.NewClient(&redis.Options{Addr: testenv.RedisAddr(t)})
	t.Cleanup(func() { client.Close() })
	if err := client.Ping(context.Background()).Err(); err != nil {
		if testenv.InCI() {
			t.Fatalf("redis: %v", err)
		}
		t.Skipf("redis: %v", err)
	}
	return client
}

// newCache returns a cache on the test Redis whose keys carry a prefix of
// its own, deleted at the end of the test.
func newCache(t *testing.T, ttl time.Duration, opts ...rediscache.Option) (*rediscache.Cache, *redis.Client, string) {
	t.Helper()
	client := redisClient(t)
	prefix := fmt.Sprintf("test:%s:%d:", t.Name(), time.Now().UnixNano())
	t.Cleanup(func() {
		ctx := context.Background()
		iter := client.Scan(ctx, 0, prefix+"*", 1000).Iterator()
		for iter.Next(ctx) {
			client.Del(ctx, iter.Val())
		}
	})
	c, err := rediscache.New(client, ttl, append([]rediscache.Option{rediscache.WithPrefix(prefix)}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	return c, client, prefix
}

// switchable is a stable endpoint that answers with serve until broken, then
// with 503.
type switchable struct {
	broken atomic.Bool
	serve  http.HandlerFunc
}

func (s *switchable) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if s.broken.Load() {
		http.Error(w, "down", http.StatusServiceUnavailable)
		return
	}
	s.serve(w, r)
}

// okJSON answers with the request URI and the X-For header.
func okJSON(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "application/json")
	fmt.Fprintf(w, `{"path":%q,"tenant":%q}`, r.URL.RequestURI(), r.Header.Get("X-For"))
}

// stableServer starts a breakable stable endpoint answering with serve
// (okJSON when nil) and returns its URL and the switch.
func stableServer(t *testing.T, serve http.HandlerFunc) (string, *switchable) {
	t.Helper()
	sw := &switchable{serve: serve}
	if sw.serve == nil {
		sw.serve = okJSON
	}
	srv := httptest.NewServer(sw)
	t.Cleanup(srv.Close)
	return srv.URL, sw
}

// newTransport builds a fallback transport on cfg, closed (with its base
// transport's idle connections, for goleak) at the end of the test. The
// breaker never opens, so that every request tries stable first.
func newTransport(t *testing.T, cfg fallback.Config) fallback.Transport {
	t.Helper()
	base := &http.Transport{}
	t.Cleanup(base.CloseIdleConnections)
	cfg.Transport = base
	cfg.Breaker = fallback.BreakerConfig{Failures: 1000}
	tr, err := fallback.NewTransport(cfg)
	if err != nil {
		t.Fatalf("NewTransport: %v", err)
	}
	t.Cleanup(func() { tr.Close() })
	return tr
}

// cacheSetup returns a transport over a breakable stable endpoint with the
// cache, and the switch; tweak may change the configuration.
func cacheSetup(t *testing.T, c fallback.Cache, serve http.HandlerFunc, tweak func(*fallback.Config)) (fallback.Transport, *switchable) {
	t.Helper()
	url, sw := stableServer(t, serve)
	cfg := fallback.Config{Name: "dep-" + t.Name(), Stable: url, Cache: c}
	if tweak != nil {
		tweak(&cfg)
	}
	return newTransport(t, cfg), sw
}

func labelled(cohort tenant.Cohort, tenantID, userHash string) context.Context {
	return tenant.NewContext(context.Background(), tenant.Labels{Tenant: tenantID, UserHash: userHash, Cohort: cohort})
}

// result is what a test checks of a round trip.
type result struct {
	status   int
	servedBy string
	body     string
	err      error
}

// do sends a bodiless request through rt with ctx, hdr holding header
// name, value pairs, and reads the answer to the end (so it is stored).
func do(t *testing.T, rt http.RoundTripper, ctx context.Context, method, url string, hdr ...string) result {
	t.Helper()
	req, err := http.NewRequestWithContext(ctx, method, url, nil)
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
	return result{status: resp.StatusCode, servedBy: resp.Header.Get(fallback.HeaderServedBy), body: string(b)}
}

// refusedAddr returns a loopback address nobody listens on: a listener that
// was closed.
func refusedAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	return addr
}

// keyLayout is the layout of the keys the transport builds (see
// fallback.Cache); TestCacheTransportKeysIndexedByPartition checks that the
// transport's keys still have it.
const keyLayout = "canary:fallback:v2:%s:s:%064x"

// randomPartition returns a partition as fallback.KeyPartition reads it:
// 16 hex digits.
func randomPartition() string { return fmt.Sprintf("%016x", rand.Uint64()) }

// tenantKey returns a key of the partition, as the transport builds for one
// answer of one tenant of a dependency.
func tenantKey(partition string) string {
	return fmt.Sprintf(keyLayout, partition, rand.Uint64())
}

// randomTenantKeys returns n keys of n random partitions, as a client
// choosing its tenant header would cause.
func randomTenantKeys(n int) []string {
	keys := make([]string, n)
	for i := range keys {
		keys[i] = tenantKey(randomPartition())
	}
	return keys
}

func bodyEntry(n int) *fallback.Entry {
	return &fallback.Entry{Status: 200, Header: http.Header{"Content-Type": {"application/json"}},
		Body: []byte(strings.Repeat("p", n)), Stored: time.Now()}
}
