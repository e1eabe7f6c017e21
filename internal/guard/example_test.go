package guard_test

import (
	"fmt"
	"time"

	"github.com/reqcanary/canary/internal/guard"
	"github.com/reqcanary/canary/tenant"
)

func Example() {
	clock := guard.NewManualClock(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC))
	g, err := guard.New(guard.Config{}, clock) // the defaults: 10 × 1 s window
	if err != nil {
		panic(err)
	}
	// Three seconds of traffic: stable answers 200 requests a second, 2 of
	// them with a 503; the canary answers 20, 5 of them with a 503.
	for range 3 {
		for i := range 200 {
			status := 200
			if i < 2 {
				status = 503
			}
			g.RecordHTTP(tenant.Stable, status, 20*time.Millisecond)
		}
		for i := range 20 {
			status := 200
			if i < 5 {
				status = 503
			}
			g.RecordHTTP(tenant.Canary, status, 20*time.Millisecond)
		}
		clock.Advance(time.Second)
	}
	if trip, ok := g.Evaluate(); ok {
		fmt.Println(trip.Rule)
		fmt.Printf("canary %.0f%% of %d, stable %.0f%% of %d\n",
			100*trip.Canary.FailureRate, trip.Canary.Samples, 100*trip.Stable.FailureRate, trip.Stable.Samples)
	}
	// Once the kill switch is re-armed, forget what caused the trip.
	g.Reset()
	_, ok := g.Evaluate()
	fmt.Println("tripped after reset:", ok)
	// Output:
	// failure-rate
	// canary 25% of 60, stable 1% of 600
	// tripped after reset: false
}

func ExampleConfig_Validate() {
	err := guard.Config{FailureRatio: 0.5}.Validate()
	fmt.Println(err)
	// Output:
	// guard: FailureRatio: must be a number of at least 1, got 0.5
}
