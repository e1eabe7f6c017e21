package benchmarks

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/failsafe-go/failsafe-go/circuitbreaker"
	"github.com/failsafe-go/failsafe-go/failsafehttp"
	"github.com/failsafe-go/failsafe-go/timeout"
	"go.opentelemetry.io/otel/metric/noop"

	"github.com/reqcanary/canary/fallback"
	"github.com/reqcanary/canary/tenant"
)

// fallbackBody is the answer of the benchmark's dependency.
var fallbackBody = []byte(`{"id":7,"name":"widget","price":42}`)

// roundTrip sends one GET through rt and reads and closes the body.
func roundTrip(b *testing.B, rt http.RoundTripper, req *http.Request) {
	resp, err := rt.RoundTrip(req)
	if err != nil {
		b.Fatal(err)
	}
	if _, err := io.Copy(io.Discard, resp.Body); err != nil {
		b.Fatal(err)
	}
	resp.Body.Close()
}

// BenchmarkFallbackLoopback measures the happy path (the first endpoint
// answers) over a bare http.Transport, both on loopback to a real server:
// the difference is the fallback transport's overhead per request (target:
// at most 3 µs). The stable cohort's chain here is stable → cache (the
// answer is stored); the canary cohort's is canary → stable → shadow →
// cache.
func BenchmarkFallbackLoopback(b *testing.B) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.Write(fallbackBody)
	}))
	defer srv.Close()
	base := &http.Transport{MaxIdleConnsPerHost: 16}
	defer base.CloseIdleConnections()
	stableCtx := tenant.NewContext(context.Background(), tenant.Labels{Tenant: "acme", Cohort: tenant.Stable})
	canaryCtx := tenant.NewContext(context.Background(), tenant.Labels{Tenant: "acme", Cohort: tenant.Canary})

	b.Run("bare-http.Transport", func(b *testing.B) {
		req, _ := http.NewRequestWithContext(stableCtx, "GET", srv.URL+"/items/7", nil)
		b.ReportAllocs()
		for b.Loop() {
			roundTrip(b, base, req)
		}
	})
	for _, tc := range []struct {
		name  string
		cfg   fallback.Config
		ctx   context.Context
		cache bool
	}{
		{"fallback-stable", fallback.Config{Stable: srv.URL}, stableCtx, false},
		{"fallback-stable-cache", fallback.Config{Stable: srv.URL}, stableCtx, true},
		{"fallback-canary-chain", fallback.Config{Canary: srv.URL, Stable: srv.URL, Shadow: srv.URL}, canaryCtx, true},
	} {
		b.Run(tc.name, func(b *testing.B) {
			cfg := tc.cfg
			cfg.Transport = base
			cfg.MeterProvider = noop.NewMeterProvider()
			if tc.cache {
				cfg.Cache, _ = fallback.NewMemoryCache(64<<20, time.Minute)
			}
			rt, err := fallback.NewTransport(cfg)
			if err != nil {
				b.Fatal(err)
			}
			defer rt.Close()
			req, _ := http.NewRequestWithContext(tc.ctx, "GET", "http://dependency/items/7", nil)
			b.ReportAllocs()
			for b.Loop() {
				roundTrip(b, rt, req)
			}
		})
	}
}

// cannedTransport answers every request in memory: it isolates the
// fallback transport's own cost from the network's.
type cannedTransport struct{}

func (cannedTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	return &http.Response{
		StatusCode: 200, Proto: "HTTP/1.1", ProtoMajor: 1, ProtoMinor: 1,
		Header:        http.Header{"Content-Type": {"application/json"}},
		Body:          io.NopCloser(bytes.NewReader(fallbackBody)),
		ContentLength: int64(len(fallbackBody)),
		Request:       req,
	}, nil
}

// BenchmarkFallbackOverheadInMemory is the same happy path over an
// in-memory base transport: the figure is the fallback transport's own CPU
// cost per request, without the loopback round trip's noise.
func BenchmarkFallbackOverheadInMemory(b *testing.B) {
	ctx := tenant.NewContext(context.Background(), tenant.Labels{Tenant: "acme", Cohort: tenant.Stable})
	req, _ := http.NewRequestWithContext(ctx, "GET", "http://dependency/items/7", nil)
	b.Run("bare", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			roundTrip(b, cannedTransport{}, req)
		}
	})
	b.Run("failsafehttp-breaker-timeout", func(b *testing.B) {
		// The floor: failsafe-go's own round tripper with the same two
		// policies the fallback transport runs per attempt.
		rt := failsafehttp.NewRoundTripper(cannedTransport{},
			circuitbreaker.NewBuilder[*http.Response]().WithFailureThreshold(5).Build(),
			timeout.New[*http.Response](time.Second))
		b.ReportAllocs()
		for b.Loop() {
			roundTrip(b, rt, req)
		}
	})
	b.Run("fallback-stable", func(b *testing.B) {
		rt, err := fallback.NewTransport(fallback.Config{Stable: "http://stable:8080", Transport: cannedTransport{},
			MeterProvider: noop.NewMeterProvider()})
		if err != nil {
			b.Fatal(err)
		}
		defer rt.Close()
		b.ReportAllocs()
		for b.Loop() {
			roundTrip(b, rt, req)
		}
	})
}
