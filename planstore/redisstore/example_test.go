package redisstore_test

import (
	"context"
	"errors"
	"fmt"
	"log"

	"github.com/redis/go-redis/v9"

	"github.com/reqcanary/canary/planstore"
	"github.com/reqcanary/canary/planstore/redisstore"
)

// A store on Redis: write a plan based on the version read, then follow the
// plan as it changes. (It needs a Redis server, so it is compiled, not run.)
func ExampleNew() {
	rdb := redis.NewClient(&redis.Options{Addr: "127.0.0.1:6379", ContextTimeoutEnabled: true})
	defer rdb.Close()
	store, err := redisstore.New(redisstore.Config{
		Client:   rdb,
		Validate: func(b []byte) error { return nil }, // canary.ValidatePlan in a program
	})
	if err != nil {
		log.Fatal(err)
	}
	defer store.Close()

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	cur, err := store.Get(ctx)
	if err != nil {
		log.Fatal(err)
	}
	p, err := store.Apply(ctx, []byte("canary_percent: 5\n"), cur.Version, planstore.Change{Author: "alice", Note: "start at 5 %"})
	if errors.Is(err, planstore.ErrVersionConflict) {
		log.Fatal("someone else wrote first: read again and retry")
	}
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("wrote version", p.Version)
	for p := range store.Watch(ctx) {
		fmt.Println("plan version", p.Version, "by", p.Author)
		if p.Version >= cur.Version+1 {
			cancel()
		}
	}
}
