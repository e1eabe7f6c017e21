package fleet_test

import (
	"context"
	"fmt"
	"log"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/reqcanary/canary/internal/fleet"
)

// Every instance of the service runs a Switch on the same Redis and prefix.
// (Not run as a test: it needs a Redis server.)
func Example() {
	rdb := redis.NewClient(&redis.Options{Addr: "127.0.0.1:6379"})
	defer rdb.Close()

	sw, err := fleet.New(rdb, fleet.Options{Prefix: "checkout:"})
	if err != nil {
		log.Fatal(err)
	}
	sw.OnChange(func(st fleet.State) {
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
