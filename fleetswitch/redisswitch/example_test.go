package redisswitch_test

import (
	"context"
	"fmt"
	"log"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/reqcanary/canary"
	"github.com/reqcanary/canary/fleetswitch"
	"github.com/reqcanary/canary/fleetswitch/redisswitch"
)

// Every instance of the service gives the engine the same Redis and prefix:
// a guard trip or an operator's switch on one instance reaches them all.
// (Not run as a test: it needs a Redis server.)
func Example() {
	rdb := redis.NewClient(&redis.Options{Addr: "127.0.0.1:6379"})
	defer rdb.Close()

	eng, err := canary.New(
		canary.WithFleetSwitch(redisswitch.New(rdb), canary.FleetConfig{Prefix: "checkout:"}),
	)
	if err != nil {
		log.Fatal(err) // among other reasons: Redis could not be reached
	}
	defer eng.Close()

	// Every instance on "checkout:" turns the canary off.
	if err := eng.TurnKillSwitch(context.Background(), true, "bad deploy"); err != nil {
		log.Print(err)
	}
}

// A Switch on its own, without an engine: what the engine does with it.
// (Not run as a test: it needs a Redis server.)
func ExampleNew() {
	rdb := redis.NewClient(&redis.Options{Addr: "127.0.0.1:6379"})
	defer rdb.Close()

	sw, err := redisswitch.New(rdb).Open(fleetswitch.Options{Prefix: "checkout:"})
	if err != nil {
		log.Fatal(err)
	}
	sw.OnChange(func(st fleetswitch.State) {
		fmt.Printf("kill switch on=%v reason=%q by %s\n", st.On, st.Reason, st.Actor)
	})
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := sw.Start(ctx); err != nil { // reads the current state
		log.Fatal(err)
	}
	defer sw.Close()

	// This instance's guard tripped: every instance turns the canary off.
	if err := sw.Set(ctx, true, "guard", "checkout-7f9c"); err != nil {
		log.Print(err)
	}
	fmt.Println(sw.State().On)
}

// The Redis names of a fleet switch, e.g. to inspect it with redis-cli.
func ExampleKey() {
	fmt.Println(redisswitch.Key("checkout:"))
	fmt.Println(redisswitch.Channel("checkout:"))
	fmt.Println(redisswitch.Key(""))
	// Output:
	// checkout:kill-switch
	// checkout:kill-switch:changes
	// canary:kill-switch
}
