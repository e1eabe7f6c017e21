package redistoken_test

import (
	"log"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/reqcanary/canary/dbwrap"
	"github.com/reqcanary/canary/dbwrap/redistoken"
)

// Share read-your-writes across instances through Redis with the defaults.
func ExampleNew() {
	rdb := redis.NewClient(&redis.Options{Addr: "redis:6379"})
	defer rdb.Close()
	tokens, err := redistoken.New(rdb, "shop:token:")
	if err != nil {
		log.Fatal(err)
	}
	defer tokens.Close() // runs after db.Close: stops the write-back

	db, err := dbwrap.Open(dbwrap.Config{
		DriverName: "pgx",
		Primary:    "postgres://app@db-primary:5432/shop",
		Replicas:   []string{"postgres://app@db-replica-1:5432/shop"},
		TokenStore: tokens,
	})
	if err != nil {
		log.Fatal(err)
	}
	defer db.Close()
}

// Share read-your-writes across instances through Redis, with bounded calls,
// a circuit breaker and a local copy for Redis outages, and let reads right
// after a write wait briefly for the replica instead of going to the
// primary.
func ExampleNewWithConfig() {
	rdb := redis.NewClient(&redis.Options{Addr: "redis:6379"})
	defer rdb.Close()
	tokens, err := redistoken.NewWithConfig(redistoken.Config{
		Client:  rdb,
		Timeout: 50 * time.Millisecond, // default 100 ms
	})
	if err != nil {
		log.Fatal(err)
	}
	defer tokens.Close() // runs after db.Close: stops the write-back

	db, err := dbwrap.Open(dbwrap.Config{
		DriverName:      "pgx",
		Primary:         "postgres://app@db-primary:5432/shop",
		Replicas:        []string{"postgres://app@db-replica-1:5432/shop"},
		TokenStore:      tokens,
		ConsistencyWait: 50 * time.Millisecond,
	})
	if err != nil {
		log.Fatal(err)
	}
	defer db.Close()
}
