package main

import (
	"context"
	_ "embed"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
	clientv3 "go.etcd.io/etcd/client/v3"
	"google.golang.org/grpc"

	"github.com/reqcanary/canary"
	"github.com/reqcanary/canary/fallback"
	"github.com/reqcanary/canary/fallback/rediscache"
	"github.com/reqcanary/canary/planstore"
	"github.com/reqcanary/canary/tenant"
)

// embeddedPlan is plan.yaml, the plan used when -plan is not given.
//
//go:embed plan.yaml
var embeddedPlan []byte

// app is a running shop.
type app struct {
	httpAddr, grpcAddr string
	adminAddr          string
	dbDesc             string
	errc               chan error // a server stopped on its own

	httpSrv  *http.Server
	adminSrv *http.Server
	grpcSrv  *grpc.Server
	done     []chan struct{}
	closers  []func(context.Context) error // run in reverse order

	etcd  *clientv3.Client // -etcd; nil otherwise
	store planstore.Store  // -etcd; nil otherwise
}

// start builds and starts everything; on error, what was started is stopped.
func start(ctx context.Context, cfg config, stderr io.Writer) (a *app, err error) {
	a = &app{errc: make(chan error, 3)}
	defer func() {
		if err != nil {
			a.shutdown()
			a = nil
		}
	}()
	log := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))

	tel, err := newTelemetry()
	if err != nil {
		return a, err
	}
	a.onClose(tel.shutdown)

	var rdb *redis.Client
	if cfg.redisAddr != "" {
		if rdb, err = openRedis(ctx, cfg.redisAddr); err != nil {
			return a, err
		}
		a.onClose(func(context.Context) error { return rdb.Close() })
	}

	st, desc, err := openStore(ctx, storeConfig{
		sqlitePath: cfg.dbPath, pgPrimary: cfg.pgPrimary, pgReplica: cfg.pgReplica,
		myPrimary: cfg.myPrimary, myReplica: cfg.myReplica,
		redis: rdb, meter: tel.meter,
	})
	if err != nil {
		return a, err
	}
	a.dbDesc = desc
	a.onClose(func(context.Context) error { return st.Close() })

	opts := []canary.Option{canary.WithLogger(log), canary.WithMeterProvider(tel.meter)}
	if rdb != nil {
		// Every shop on this Redis and prefix shares the kill switch: a guard
		// trip or an operator's switch on one reaches all within a second.
		opts = append(opts, canary.WithFleetSwitch(rdb, canary.FleetConfig{Prefix: cfg.fleet}))
	}
	if cfg.etcd != "" {
		if opts, err = a.withPlanStore(ctx, cfg, log, opts); err != nil {
			return a, err
		}
	} else if cfg.planFile != "" {
		opts = append(opts, canary.WithPlanFile(cfg.planFile))
	} else {
		plan, err := canary.ParsePlan(embeddedPlan)
		if err != nil {
			return a, fmt.Errorf("embedded plan.yaml: %w", err)
		}
		opts = append(opts, canary.WithPlan(plan))
	}
	eng, err := canary.New(opts...)
	if err != nil {
		return a, fmt.Errorf("-plan: %w", err)
	}
	a.onClose(func(context.Context) error { return eng.Close() })
	var adminOpts []canary.AdminOption
	if a.etcd != nil {
		ctl, err := a.startRamp(cfg, eng)
		if err != nil {
			return a, err
		}
		adminOpts = append(adminOpts, canary.WithAdminRamp(ctl))
	}

	pricing, err := newPricing(eng, rdb, tel)
	if err != nil {
		return a, err
	}
	a.onClose(func(ctx context.Context) error { pricing.close(ctx); return nil })

	sh := &shop{store: st, pricing: pricing, log: log}

	httpLn, err := net.Listen("tcp", cfg.httpAddr)
	if err != nil {
		return a, fmt.Errorf("-http: %w", err)
	}
	grpcLn, err := net.Listen("tcp", cfg.grpcAddr)
	if err != nil {
		httpLn.Close()
		return a, fmt.Errorf("-grpc: %w", err)
	}
	adminLn, err := net.Listen("tcp", cfg.adminAddr)
	if err != nil {
		httpLn.Close()
		grpcLn.Close()
		return a, fmt.Errorf("-admin: %w", err)
	}
	a.httpAddr, a.grpcAddr, a.adminAddr = httpLn.Addr().String(), grpcLn.Addr().String(), adminLn.Addr().String()

	a.httpSrv = &http.Server{
		Handler:           newHTTPHandler(sh, eng, tel, log, a.httpAddr),
		ReadHeaderTimeout: 5 * time.Second,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelWarn),
	}
	a.adminSrv = &http.Server{
		Handler:           newAdminHandler(eng, pricing, tel, cfg.adminTok, adminOpts...),
		ReadHeaderTimeout: 5 * time.Second,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelWarn),
	}
	// An open console holds an event stream that Shutdown would wait for:
	// closing the engine ends them (it keeps deciding; the public listener is
	// shut down before this one).
	a.adminSrv.RegisterOnShutdown(func() { _ = eng.Close() })
	a.grpcSrv = newGRPCServer(sh, eng, tel)
	a.serve(func() error {
		if err := a.httpSrv.Serve(httpLn); !errors.Is(err, http.ErrServerClosed) {
			return fmt.Errorf("http server: %w", err)
		}
		return nil
	})
	a.serve(func() error {
		if err := a.adminSrv.Serve(adminLn); !errors.Is(err, http.ErrServerClosed) {
			return fmt.Errorf("admin server: %w", err)
		}
		return nil
	})
	a.serve(func() error {
		if err := a.grpcSrv.Serve(grpcLn); err != nil && !errors.Is(err, grpc.ErrServerStopped) {
			return fmt.Errorf("grpc server: %w", err)
		}
		return nil
	})
	return a, nil
}

// newPricing starts both pricing versions and the fallback transport in
// front of them, with a cache in Redis when there is one.
func newPricing(eng *canary.Engine, rdb *redis.Client, tel *telemetry) (*pricingClient, error) {
	stable, err := startPricing("stable", 100)
	if err != nil {
		return nil, err
	}
	canaryV, err := startPricing("canary", 90)
	if err != nil {
		stable.shutdown(context.Background())
		return nil, err
	}
	p := &pricingClient{stable: stable, canary: canaryV, base: &http.Transport{MaxIdleConnsPerHost: 16}}
	var cache fallback.Cache
	if rdb != nil {
		cache, err = rediscache.New(rdb, 10*time.Minute)
	} else {
		cache, err = fallback.NewMemoryCache(8<<20, 10*time.Minute)
	}
	if err == nil {
		p.rt, err = fallback.NewTransport(fallback.Config{
			Name:   "pricing",
			Stable: stable.url(),
			Canary: canaryV.url(),
			// The engine's transport writes the request's labels (tenant,
			// cohort, baggage; never the raw user id) onto each attempt.
			Transport:     eng.Transport(p.base),
			Timeout:       pricingTimeout,
			CohortTimeout: map[tenant.Cohort]time.Duration{tenant.Canary: pricingCanaryTimeout},
			Breaker:       fallback.BreakerConfig{Failures: 5, Delay: 5 * time.Second},
			Cache:         cache,
			MeterProvider: tel.meter,
		})
	}
	if err != nil {
		canaryV.shutdown(context.Background())
		stable.shutdown(context.Background())
		return nil, fmt.Errorf("pricing: %w", err)
	}
	p.client = &http.Client{Transport: p.rt}
	return p, nil
}

// openRedis connects to Redis at addr (host:port or a redis:// URL) and
// checks that it answers.
func openRedis(ctx context.Context, addr string) (*redis.Client, error) {
	opt := &redis.Options{Addr: addr}
	if strings.Contains(addr, "://") {
		var err error
		if opt, err = redis.ParseURL(addr); err != nil {
			return nil, fmt.Errorf("-redis: %w", err)
		}
	}
	opt.DialTimeout = 3 * time.Second
	redis.SetLogger(quietLogger{}) // the error below says it once
	c := redis.NewClient(opt)
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	if err := c.Ping(ctx).Err(); err != nil {
		c.Close()
		return nil, fmt.Errorf("-redis: cannot reach Redis at %s: %w", opt.Addr, err)
	}
	return c, nil
}

func (a *app) onClose(f func(context.Context) error) { a.closers = append(a.closers, f) }

// serve runs fn in a goroutine; an error from it is reported on a.errc.
func (a *app) serve(fn func() error) {
	done := make(chan struct{})
	a.done = append(a.done, done)
	go func() {
		defer close(done)
		if err := fn(); err != nil {
			a.errc <- err
		}
	}()
}

// shutdown stops the servers (letting calls in flight finish, for up to
// 10 s) and closes everything start opened, in reverse order.
func (a *app) shutdown() {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for _, srv := range []*http.Server{a.httpSrv, a.adminSrv} {
		if srv != nil {
			if err := srv.Shutdown(ctx); err != nil {
				srv.Close()
			}
		}
	}
	if a.grpcSrv != nil {
		stopped := make(chan struct{})
		go func() { a.grpcSrv.GracefulStop(); close(stopped) }()
		select {
		case <-stopped:
		case <-ctx.Done():
			a.grpcSrv.Stop()
			<-stopped
		}
	}
	for _, d := range a.done {
		<-d
	}
	for i := len(a.closers) - 1; i >= 0; i-- {
		_ = a.closers[i](ctx)
	}
}

// quietLogger silences go-redis's own log lines (pool dial retries).
type quietLogger struct{}

func (quietLogger) Printf(context.Context, string, ...any) {}
