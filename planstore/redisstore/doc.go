// Package redisstore is the Redis implementation of planstore.Store, for
// teams without etcd: the plan under one key, writes by compare-and-swap on
// its version in one Lua script with the history entry and the change
// notification, watched through a pub/sub channel.
//
// The caller owns the Redis client (give it ContextTimeoutEnabled) and
// passes the engine's plan parser as the validation function:
//
//	rdb := redis.NewClient(&redis.Options{Addr: "127.0.0.1:6379", ContextTimeoutEnabled: true})
//	store, err := redisstore.New(redisstore.Config{Client: rdb, Validate: canary.ValidatePlan})
//	if err != nil {
//		return err
//	}
//	defer store.Close()
//	eng, err := canary.New(canary.WithPlanStore(store))
//
// The keys are Prefix+"current", Prefix+"history" and the channel
// Prefix+"changes" (Prefix defaults to [DefaultPrefix], "{canary-plan}:"),
// the layout the store had in package planstore, so existing data stays
// readable.
//
// This is the only package of the plan store that imports go-redis: a
// program that uses planstore or planstore/etcdstore without it does not
// compile the Redis client.
package redisstore
