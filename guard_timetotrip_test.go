package canary

import (
	"context"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"slices"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/reqcanary/canary/tenant"
)

// BenchmarkGuardTimeToTrip measures, in real time, how long the guard takes
// to trip once the canary starts failing: the engine's HTTP middleware
// serves 200 requests per second from 2000 users of tenant shop, 10 % of
// them (20 per second) from the canary's users; stable fails 1 % of
// its requests, the canary 1 % until the window (10 s) is full, then 20 %.
// The engine evaluates the guard on its own ticker (every 100 ms). Each run
// re-arms the guard (an empty window), fills the window with healthy traffic,
// turns the fault on and waits for the trip; the metrics are the p50, p95
// and slowest time to trip over the runs (-benchtime Nx runs N, at least
// 20 are needed for a p95):
//
//	go test -run '^$' -bench GuardTimeToTrip -benchtime 20x .
//
// Each run takes about 12 s.
func BenchmarkGuardTimeToTrip(b *testing.B) {
	const (
		rps      = 200
		onsetLag = 10 * time.Second // a window full of healthy traffic
	)
	e := newTestEngine(b, "version: 3\ncanary_percent: 10\n", WithGuard(GuardConfig{Enabled: true}),
		WithLogger(slog.New(slog.DiscardHandler)))
	users := make([]string, 2000)
	canary := make([]bool, len(users))
	for i := range users {
		users[i] = "u" + strconv.Itoa(i)
		l, err := e.Decide(context.Background(), tenant.Request{Source: headers("X-Tenant-ID", "shop", "X-User-ID", users[i]), Wire: tenant.HTTP})
		if err != nil {
			b.Fatal(err)
		}
		canary[i] = l.Cohort == tenant.Canary
	}
	var faulty atomic.Bool
	handler := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p := 0.01
		if l, _ := tenant.FromContext(r.Context()); faulty.Load() && l.Cohort == tenant.Canary {
			p = 0.20
		}
		if rand.Float64() < p {
			w.WriteHeader(http.StatusInternalServerError)
			return
		}
		w.WriteHeader(http.StatusOK)
	})
	h := e.Middleware(handler)
	// Requests pick a cohort first (canary 10 % exactly), then one of its
	// users at random, so that the canary gets 20 requests per second
	// whatever share of the 2000 users the hash gave it.
	var inCohort [2][]string
	for i, u := range users {
		if canary[i] {
			inCohort[1] = append(inCohort[1], u)
		} else {
			inCohort[0] = append(inCohort[0], u)
		}
	}
	send := func() {
		pool := inCohort[0]
		if rand.IntN(10) == 0 {
			pool = inCohort[1]
		}
		req := httptest.NewRequest(http.MethodGet, "/", nil)
		req.RemoteAddr = "192.0.2.9:1234"
		req.Header.Set("X-Tenant-ID", "shop")
		req.Header.Set("X-User-ID", pool[rand.IntN(len(pool))])
		h.ServeHTTP(httptest.NewRecorder(), req)
	}

	var times []time.Duration
	for b.Loop() {
		if err := e.RearmGuard(context.Background()); err != nil {
			b.Fatal(err)
		}
		faulty.Store(false)
		start := time.Now()
		var onset time.Time
		sent := 0
		tick := time.NewTicker(time.Second / rps)
		for range tick.C {
			if onset.IsZero() && time.Since(start) >= onsetLag {
				onset = time.Now()
				faulty.Store(true)
			}
			// Keep to the rate however late the ticker is.
			for due := int(time.Since(start) * rps / time.Second); sent < due; sent++ {
				send()
			}
			if t := e.g.trip.Load(); t != nil {
				if onset.IsZero() {
					b.Fatalf("tripped on healthy traffic: %v", t)
				}
				times = append(times, t.At.Sub(onset))
				break
			}
			if !onset.IsZero() && time.Since(onset) > 30*time.Second {
				b.Fatalf("no trip 30 s after the fault: %+v", e.Status().Guard)
			}
		}
		tick.Stop()
	}
	slices.Sort(times)
	q := func(f float64) float64 {
		i := min(max(int(f*float64(len(times))+0.999999)-1, 0), len(times)-1)
		return float64(times[i]) / float64(time.Millisecond)
	}
	b.ReportMetric(q(0.5), "p50-ms")
	b.ReportMetric(q(0.95), "p95-ms")
	b.ReportMetric(q(1), "max-ms")
	b.ReportMetric(0, "ns/op")
	b.Logf("%d runs, times to trip: %v", len(times), times)
}
