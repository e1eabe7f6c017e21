//go:build !demo_embedded

package main

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/reqcanary/canary"
	"github.com/reqcanary/canary/dbwrap"
	"github.com/reqcanary/canary/dbwrap/redistoken"
	"github.com/reqcanary/canary/fallback"
	"github.com/reqcanary/canary/fallback/rediscache"
	"github.com/reqcanary/canary/fleetswitch/redisswitch"
	"github.com/reqcanary/canary/planstore"
)

// The shop's service modes: Redis (-redis: the shared fallback cache, the
// read-your-writes tokens, the fleet's kill switch), etcd (-etcd: the plan
// store and the ramp, planstore.go) and the PostgreSQL and MariaDB pairs
// (store_services.go). `make demo` builds the shop with -tags
// demo_embedded, which leaves these files out (services_embedded.go stands
// in): a first build from an empty cache then compiles neither go-redis,
// the etcd client, pgx nor the MySQL driver (docs/benchmarks.md, "The
// demo's first build").

// servicesBuilt is true when this build has the service modes.
const servicesBuilt = true

// services are the shared services the flags named; nil fields for those
// they did not.
type services struct {
	rdb   *redis.Client    // -redis
	etcd  *clientv3.Client // -etcd
	store planstore.Store  // -etcd
}

// openRedis connects to -redis (host:port or a redis:// URL), when given,
// and checks that it answers; start closes it last.
func (a *app) openRedis(ctx context.Context, cfg config) error {
	if cfg.redisAddr == "" {
		return nil
	}
	opt := &redis.Options{Addr: cfg.redisAddr}
	if strings.Contains(cfg.redisAddr, "://") {
		var err error
		if opt, err = redis.ParseURL(cfg.redisAddr); err != nil {
			return fmt.Errorf("-redis: %w", err)
		}
	}
	opt.DialTimeout = 3 * time.Second
	redis.SetLogger(quietLogger{}) // the error below says it once
	c := redis.NewClient(opt)
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	if err := c.Ping(ctx).Err(); err != nil {
		c.Close()
		return fmt.Errorf("-redis: cannot reach Redis at %s: %w", opt.Addr, err)
	}
	a.svc.rdb = c
	a.onClose(func(context.Context) error { return c.Close() })
	return nil
}

// tokenStore is the read-your-writes token store shared through Redis; nil
// (per process) without -redis.
func (a *app) tokenStore() (dbwrap.TokenStore, error) {
	if a.svc.rdb == nil {
		return nil, nil
	}
	s, err := redistoken.New(a.svc.rdb, "canary:demo-shop:token:")
	if err != nil {
		return nil, fmt.Errorf("-redis: %w", err)
	}
	return s, nil
}

// fleetOptions shares the kill switch with every shop on the same Redis and
// -fleet prefix: a guard trip or an operator's switch on one reaches all
// within a second.
func (a *app) fleetOptions(cfg config) []canary.Option {
	if a.svc.rdb == nil {
		return nil
	}
	return []canary.Option{canary.WithFleetSwitch(redisswitch.New(a.svc.rdb), canary.FleetConfig{Prefix: cfg.fleet})}
}

// sharedCache is the pricing fallback's cache in Redis; nil without -redis.
func (a *app) sharedCache() (fallback.Cache, error) {
	if a.svc.rdb == nil {
		return nil, nil
	}
	c, err := rediscache.New(a.svc.rdb, 10*time.Minute)
	if err != nil {
		return nil, fmt.Errorf("-redis: %w", err)
	}
	return c, nil
}

// quietLogger silences go-redis's own log lines (pool dial retries).
type quietLogger struct{}

func (quietLogger) Printf(context.Context, string, ...any) {}
