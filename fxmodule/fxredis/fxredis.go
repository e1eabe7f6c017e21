// Package fxredis wires canary's Redis parts into a go.uber.org/fx
// application that provides a *redis.Client: today the database's
// read-your-writes token store ([redistoken.New] on the client, with the
// default prefix), which fxmodule.Module hands to dbwrap when Config.DB has
// no TokenStore of its own.
//
//	fx.New(
//		fxmodule.Module,
//		fxredis.Module,
//		fx.Provide(newRedisClient), // the application's *redis.Client
//		fx.Supply(fxmodule.Config{DB: &dbwrap.Config{...}}),
//	)
//
// It is a package of its own so that fxmodule does not import go-redis: an
// application without Redis never compiles it. Like fxmodule, it never
// provides what it does not own: the *redis.Client is the application's,
// and it is not closed here. The token store it makes is closed on the
// application's stop, after the database (fx stops in the reverse order of
// construction, and the database is built on the store).
package fxredis

import (
	"fmt"

	"github.com/redis/go-redis/v9"
	"go.uber.org/fx"

	"github.com/reqcanary/canary/dbwrap"
	"github.com/reqcanary/canary/dbwrap/redistoken"
)

// Module provides a dbwrap.TokenStore on the application's *redis.Client.
var Module = fx.Module("canary-redis",
	fx.Provide(newTokenStore),
)

// newTokenStore makes the token store and closes it on stop.
func newTokenStore(lc fx.Lifecycle, client *redis.Client) (dbwrap.TokenStore, error) {
	s, err := redistoken.New(client, "")
	if err != nil {
		return nil, fmt.Errorf("fxredis: %w", err)
	}
	lc.Append(fx.StopHook(s.Close)) // stops the write-back of positions Redis missed
	return s, nil
}
