// Package fleetswitch is the vocabulary of canary's fleet-wide kill switch:
// the [State] every instance of a service shares, the [Switch] an instance
// follows it through, the [Backend] that opens one, and the errors and limits
// of that contract. It holds no implementation and imports no client
// library, so that the canary package depends on it alone.
//
// An application picks a backend and hands it to canary.WithFleetSwitch;
// the engine opens the switch with the [Options] it derives from its
// canary.FleetConfig, reads the state at start, follows its changes and
// writes its guard's trips and its operators' changes to it:
//
//	rdb := redis.NewClient(&redis.Options{Addr: "127.0.0.1:6379"})
//	eng, err := canary.New(
//		canary.WithFleetSwitch(redisswitch.New(rdb), canary.FleetConfig{Prefix: "checkout:"}),
//		// ...
//	)
//
// The Redis backend is in [github.com/reqcanary/canary/fleetswitch/redisswitch].
package fleetswitch
