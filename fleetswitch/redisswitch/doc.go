// Package redisswitch is the Redis [fleetswitch.Backend]: it shares canary's
// kill switch across every instance of a service through Redis. A key holds
// the current [fleetswitch.State] (on or off, why, who, when, as JSON), which
// an instance reads when it starts, and every change is published on a
// channel that every instance follows, with a periodic re-read of the key as
// a safety net for messages missed while a connection was down.
//
// States are ordered by a version Redis assigns when one is written (its
// clock in microseconds, forced to increase), so an instance never goes back
// to an older state whatever order messages and re-reads arrive in.
//
// Give the backend to the engine; every instance on the same Redis and
// prefix then shares one kill switch:
//
//	rdb := redis.NewClient(&redis.Options{Addr: "127.0.0.1:6379"})
//	eng, err := canary.New(
//		canary.WithFleetSwitch(redisswitch.New(rdb), canary.FleetConfig{Prefix: "checkout:"}),
//	)
//
// This package is the only place the fleet switch imports
// github.com/redis/go-redis/v9: fleetswitch and the engine's fleet code do
// not, so an application without this backend does not compile go-redis for
// the fleet switch.
package redisswitch
