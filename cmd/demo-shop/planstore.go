package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/reqcanary/canary"
	"github.com/reqcanary/canary/planstore"
	"github.com/reqcanary/canary/planstore/etcdstore"
)

// defaultEtcdPrefix is the default of -etcd-prefix.
const defaultEtcdPrefix = etcdstore.DefaultPrefix

// checkEtcd checks -etcd and -etcd-prefix.
func (c config) checkEtcd() error {
	if c.etcd == "" {
		return nil
	}
	if c.planFile != "" {
		return fmt.Errorf("-etcd (or %s) and -plan (or %s) cannot be combined: the plan comes from one place",
			flagEnv["etcd"], flagEnv["plan"])
	}
	for _, ep := range strings.Split(c.etcd, ",") {
		if strings.TrimSpace(ep) == "" {
			return fmt.Errorf("-etcd (or %s): empty endpoint in %q", flagEnv["etcd"], c.etcd)
		}
	}
	if !strings.HasPrefix(c.etcdKeys, "/") {
		return fmt.Errorf("-etcd-prefix (or %s): %q must start with /", flagEnv["etcd-prefix"], c.etcdKeys)
	}
	return nil
}

// withPlanStore makes the engine follow the plan in etcd (-etcd), with a
// cache file for starts while etcd is down. An empty store is seeded with
// the embedded plan, so that a first shop starts on the demo's plan.
func (a *app) withPlanStore(ctx context.Context, cfg config, log *slog.Logger, opts []canary.Option) ([]canary.Option, error) {
	store, err := etcdstore.New(etcdstore.Config{Endpoints: strings.Split(cfg.etcd, ","),
		Prefix: cfg.etcdKeys, Validate: canary.ValidatePlan, OpTimeout: 2 * time.Second})
	if err != nil {
		return opts, fmt.Errorf("-etcd: %w", err)
	}
	a.onClose(func(context.Context) error { return store.Close() })
	_, err = store.Apply(ctx, embeddedPlan, 0, planstore.Change{Author: "demo-shop", Note: "seed: the embedded plan.yaml"})
	switch {
	case err == nil, errors.Is(err, planstore.ErrVersionConflict): // seeded, or a plan is there already
	default:
		log.Warn("demo-shop: plan store not seeded", "error", err)
	}
	cache := filepath.Join(os.TempDir(), "canary-demo-shop-plan-cache.yaml")
	return append(opts, canary.WithPlanStore(store), canary.WithPlanCacheFile(cache)), nil
}
