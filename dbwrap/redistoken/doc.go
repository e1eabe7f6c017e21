// Package redistoken is the Redis implementation of dbwrap.TokenStore: it
// keeps each user's last write position in Redis, so that every instance
// serving the user reads that user's writes, with bounded calls, a circuit
// breaker and a local copy that keep reads fast and read-your-writes held
// through a Redis outage.
//
// Use it as the token store of a dbwrap database:
//
//	rdb := redis.NewClient(&redis.Options{Addr: "redis:6379"})
//	tokens, err := redistoken.New(rdb, "") // DefaultPrefix
//	...
//	db, err := dbwrap.Open(dbwrap.Config{
//		DriverName: "pgx",
//		Primary:    primaryDSN,
//		Replicas:   []string{replicaDSN},
//		TokenStore: tokens,
//	})
//	...
//	db.Close()
//	tokens.Close() // after the database: stops the write-back
//	rdb.Close()
//
// It is the only package of the dbwrap feature that imports go-redis, so a
// program using dbwrap without it never compiles go-redis. Failure modes and
// measurements are in docs/db-routing.md ("Failure modes: token store").
package redistoken
