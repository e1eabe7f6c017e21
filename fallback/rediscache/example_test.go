package rediscache_test

import (
	"fmt"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/reqcanary/canary/fallback"
	"github.com/reqcanary/canary/fallback/rediscache"
)

// The last good answers of a dependency kept in Redis, shared by every
// process of the service: at most 20 000 entries, 200 per tenant.
func ExampleNew() {
	rdb := redis.NewClient(&redis.Options{Addr: "127.0.0.1:6379"})
	defer rdb.Close()
	cache, err := rediscache.New(rdb, 10*time.Minute,
		rediscache.WithMaxKeys(20_000),
		rediscache.WithMaxTenantKeys(200),
	)
	if err != nil {
		panic(err)
	}
	rt, err := fallback.NewTransport(fallback.Config{
		Name:   "pricing",
		Stable: "http://pricing:8080",
		Shadow: "http://pricing-standby:8080",
		Cache:  cache,
	})
	if err != nil {
		panic(err)
	}
	defer rt.Close()

	_, err = rediscache.New(rdb, time.Minute, rediscache.WithMaxTenantKeys(-1))
	fmt.Println(err)
	// Output: rediscache: WithMaxTenantKeys: -1 is negative
}
