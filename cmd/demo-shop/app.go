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
	"time"

	"google.golang.org/grpc"

	"github.com/reqcanary/canary"
	"github.com/reqcanary/canary/fallback"
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

	svc services // -redis, -etcd: services.go (none with -tags demo_embedded)
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

	if err := a.openRedis(ctx, cfg); err != nil {
		return a, err
	}

	tokens, err := a.tokenStore()
	if err != nil {
		return a, err
	}
	st, desc, err := openStore(ctx, storeConfig{
		sqlitePath: cfg.dbPath, pgPrimary: cfg.pgPrimary, pgReplica: cfg.pgReplica,
		myPrimary: cfg.myPrimary, myReplica: cfg.myReplica,
		tokens: tokens, meter: tel.meter,
	})
	if err != nil {
		return a, err
	}
	a.dbDesc = desc
	a.onClose(func(context.Context) error { return st.Close() })

	opts := []canary.Option{canary.WithLogger(log), canary.WithMeterProvider(tel.meter)}
	opts = append(opts, a.fleetOptions(cfg)...)
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
	if cfg.etcd != "" {
		ctl, err := a.startRamp(cfg, eng)
		if err != nil {
			return a, err
		}
		adminOpts = append(adminOpts, canary.WithAdminRamp(ctl))
	}

	shared, err := a.sharedCache()
	if err != nil {
		return a, err
	}
	pricing, err := newPricing(eng, shared, tel)
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
// front of them, with the shared cache when there is one (Redis), else one
// in memory.
func newPricing(eng *canary.Engine, shared fallback.Cache, tel *telemetry) (*pricingClient, error) {
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
	cache := shared
	if cache == nil {
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
