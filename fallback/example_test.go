package fallback_test

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"

	"github.com/reqcanary/canary/fallback"
	"github.com/reqcanary/canary/tenant"
)

// A canary that fails: requests of the canary cohort are answered by stable,
// and the answer says so.
func ExampleNewTransport() {
	canary := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, "boom", http.StatusServiceUnavailable)
	}))
	defer canary.Close()
	stable := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "price: 42")
	}))
	defer stable.Close()
	base := &http.Transport{}
	defer base.CloseIdleConnections()

	rt, err := fallback.NewTransport(fallback.Config{
		Canary:    canary.URL,
		Stable:    stable.URL,
		Timeout:   200 * time.Millisecond,
		Transport: base,
	})
	if err != nil {
		panic(err)
	}
	defer rt.Close()
	client := &http.Client{Transport: rt}

	// The edge middleware put the labels in the context.
	ctx := tenant.NewContext(context.Background(), tenant.Labels{Tenant: "acme", Cohort: tenant.Canary})
	req, _ := http.NewRequestWithContext(ctx, "GET", "http://pricing/items/7", nil)
	resp, err := client.Do(req)
	if err != nil {
		panic(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	fmt.Println(resp.Header.Get(fallback.HeaderServedBy), resp.Header.Get(fallback.HeaderFallbackReason), string(body))
	// Output: stable canary:status-503 price: 42
}

// The last good answer is served when every endpoint fails (stale-if-error).
func ExampleNewMemoryCache() {
	up := true
	stable := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !up {
			http.Error(w, "down", http.StatusBadGateway)
			return
		}
		io.WriteString(w, "catalog v1")
	}))
	defer stable.Close()
	base := &http.Transport{}
	defer base.CloseIdleConnections()
	cache, _ := fallback.NewMemoryCache(64<<20, 10*time.Minute)
	rt, _ := fallback.NewTransport(fallback.Config{Stable: stable.URL, Cache: cache, Transport: base})
	defer rt.Close()

	ctx := tenant.NewContext(context.Background(), tenant.Labels{Tenant: "acme", Cohort: tenant.Stable})
	get := func() {
		req, _ := http.NewRequestWithContext(ctx, "GET", "http://catalog/", nil)
		resp, err := rt.RoundTrip(req)
		if err != nil {
			panic(err)
		}
		body, _ := io.ReadAll(resp.Body) // read to the end: the answer is stored
		resp.Body.Close()
		fmt.Println(resp.StatusCode, resp.Header.Get(fallback.HeaderServedBy), string(body))
	}
	get()
	up = false
	get()
	// Output:
	// 200 stable catalog v1
	// 200 cache catalog v1
}

// Canary-cohort calls go to the canary connection and fall back to the
// stable one; here the canary refuses connections.
func ExampleNewUnaryClientInterceptor() {
	l, _ := net.Listen("tcp", "127.0.0.1:0")
	srv := grpc.NewServer()
	healthpb.RegisterHealthServer(srv, health.NewServer())
	go srv.Serve(l)
	defer srv.Stop()

	creds := grpc.WithTransportCredentials(insecure.NewCredentials())
	canary, _ := grpc.NewClient("127.0.0.1:1", creds) // nobody listens there
	defer canary.Close()
	ic, err := fallback.NewUnaryClientInterceptor(fallback.GRPCConfig{
		Canary:            canary,
		Timeout:           200 * time.Millisecond,
		IdempotentMethods: []string{"/grpc.health.v1.Health/Check"},
	})
	if err != nil {
		panic(err)
	}
	stable, _ := grpc.NewClient(l.Addr().String(), creds, grpc.WithUnaryInterceptor(ic))
	defer stable.Close()

	ctx := tenant.NewContext(context.Background(), tenant.Labels{Tenant: "acme", Cohort: tenant.Canary})
	resp, err := healthpb.NewHealthClient(stable).Check(ctx, &healthpb.HealthCheckRequest{})
	fmt.Println(resp.GetStatus(), err)
	// Output: SERVING <nil>
}

// A cache shared by many tenants, each bounded to its share: a client
// inventing tenant ids cannot evict more than the least recently used
// entries, nor grow the cache past MaxBytes.
func ExampleNewMemoryCacheWith() {
	cache, err := fallback.NewMemoryCacheWith(fallback.MemoryCacheConfig{
		MaxBytes:       64 << 20, // in all
		MaxTenantBytes: 4 << 20,  // per tenant of a dependency
		TTL:            10 * time.Minute,
	})
	fmt.Println(cache != nil, err)
	_, err = fallback.NewMemoryCacheWith(fallback.MemoryCacheConfig{MaxBytes: 1 << 20, TTL: time.Minute, MaxTenantBytes: -1})
	fmt.Println(err)
	// Output:
	// true <nil>
	// fallback: MemoryCacheConfig.MaxTenantBytes: -1 is negative
}
