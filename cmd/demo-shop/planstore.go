//go:build !demo_embedded

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

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"

	"github.com/reqcanary/canary"
	"github.com/reqcanary/canary/planstore"
	"github.com/reqcanary/canary/planstore/etcdstore"
	"github.com/reqcanary/canary/ramp"
)

// withPlanStore makes the engine follow the plan in etcd (-etcd), with a
// cache file for starts while etcd is down. An empty store is seeded with
// the embedded plan, so that a first shop starts on the demo's plan.
func (a *app) withPlanStore(ctx context.Context, cfg config, log *slog.Logger, opts []canary.Option) ([]canary.Option, error) {
	cli, err := clientv3.New(clientv3.Config{Endpoints: strings.Split(cfg.etcd, ","), DialTimeout: 2 * time.Second,
		DialKeepAliveTime: 5 * time.Second, DialKeepAliveTimeout: 3 * time.Second, Logger: zap.NewNop()})
	if err != nil {
		return opts, fmt.Errorf("-etcd: %w", err)
	}
	a.onClose(func(context.Context) error { return cli.Close() })
	store, err := etcdstore.New(etcdstore.Config{Client: cli,
		Prefix: cfg.etcdKeys, Validate: canary.ValidatePlan, OpTimeout: 2 * time.Second})
	if err != nil {
		return opts, fmt.Errorf("-etcd: %w", err)
	}
	a.onClose(func(context.Context) error { return store.Close() })
	a.svc.etcd, a.svc.store = cli, store
	_, err = store.Apply(ctx, embeddedPlan, 0, planstore.Change{Author: "demo-shop", Note: "seed: the embedded plan.yaml"})
	switch {
	case err == nil, errors.Is(err, planstore.ErrVersionConflict): // seeded, or a plan is there already
	default:
		log.Warn("demo-shop: plan store not seeded", "error", err)
	}
	cache := filepath.Join(os.TempDir(), "canary-demo-shop-plan-cache.yaml")
	return append(opts, canary.WithPlanStore(store), canary.WithPlanCacheFile(cache)), nil
}

// startRamp runs, with -etcd, this shop's part of the ramp of a plan's
// ramp: section (docs/ramp.md): a publisher of its guard's figures and a
// controller (one shop leads), under -etcd-prefix + "ramp/". It returns the
// controller for the admin handler (canaryctl ramp …).
func (a *app) startRamp(cfg config, eng *canary.Engine) (canary.RampActor, error) {
	host, _ := os.Hostname()
	instance := fmt.Sprintf("demo-shop@%s:%d", host, os.Getpid())
	prefix := cfg.etcdKeys + "ramp/"
	pub, err := ramp.NewPublisher(a.svc.etcd, eng, ramp.PublisherConfig{Prefix: prefix, Instance: instance})
	if err != nil {
		return nil, fmt.Errorf("-etcd: ramp: %w", err)
	}
	a.onClose(func(context.Context) error { return pub.Close() })
	ctl, err := ramp.New(ramp.Config{Client: a.svc.etcd, Store: a.svc.store, Prefix: prefix, Instance: instance})
	if err != nil {
		return nil, fmt.Errorf("-etcd: ramp: %w", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); _ = ctl.Run(ctx) }()
	a.onClose(func(context.Context) error { cancel(); <-done; return nil })
	return ctl, nil
}
