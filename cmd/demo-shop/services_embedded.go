//go:build demo_embedded

package main

import (
	"context"
	"log/slog"

	"github.com/reqcanary/canary"
	"github.com/reqcanary/canary/dbwrap"
	"github.com/reqcanary/canary/fallback"
)

// This build (-tags demo_embedded, what `make demo` builds) has the
// embedded mode only: SQLite, a cache in memory, the embedded or a file
// plan. The flags of the service modes are refused by parseFlags; these
// stand in for services.go, planstore.go and store_services.go.

// servicesBuilt is false: -redis, -etcd, -pg-primary and -mysql-primary are
// refused.
const servicesBuilt = false

// services is empty in this build.
type services struct{}

func (a *app) openRedis(context.Context, config) error { return nil }
func (a *app) tokenStore() (dbwrap.TokenStore, error)  { return nil, nil }
func (a *app) fleetOptions(config) []canary.Option     { return nil }
func (a *app) sharedCache() (fallback.Cache, error)    { return nil, nil }
func (a *app) withPlanStore(_ context.Context, _ config, _ *slog.Logger, opts []canary.Option) ([]canary.Option, error) {
	return opts, errEmbeddedOnly("-etcd", "-etcd")
}
func (a *app) startRamp(config, *canary.Engine) (canary.RampActor, error) {
	return nil, errEmbeddedOnly("-etcd", "-etcd")
}

func openServiceDB(context.Context, storeConfig, *dbwrap.Config) (desc, flagName, bind string, ok bool, err error) {
	return "", "", "", false, nil
}
