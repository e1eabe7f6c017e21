// Package rediscache is the Redis implementation of [fallback.Cache]: the
// last good answers of a dependency, kept in Redis so that several processes
// serve each other's answers when every endpoint fails (stale-if-error),
// with the number of entries bounded in all and per tenant of a dependency.
//
//	rdb := redis.NewClient(&redis.Options{Addr: "127.0.0.1:6379"})
//	cache, err := rediscache.New(rdb, 10*time.Minute, rediscache.WithMaxTenantKeys(500))
//	if err != nil {
//		return err
//	}
//	rt, err := fallback.NewTransport(fallback.Config{Stable: "http://pricing", Cache: cache})
//
// Tenant isolation comes from the keys the transport builds (see
// [fallback.Cache]): the cache stores them as they are, under an optional
// prefix, in the same layout as when this cache was part of package
// fallback, so entries stored by earlier versions stay readable.
//
// This package is the only place the fallback feature imports
// github.com/redis/go-redis/v9: package fallback itself does not, so programs
// that keep their cache in memory ([fallback.NewMemoryCache]) do not compile
// the Redis client.
package rediscache
