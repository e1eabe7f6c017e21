package canary

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"sync"
	"sync/atomic"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/metric/noop"

	"github.com/reqcanary/canary/middleware"
	"github.com/reqcanary/canary/tenant"
)

// instrumentationName is the OpenTelemetry scope of the engine's metrics.
const instrumentationName = "github.com/reqcanary/canary"

// Engine decides the cohort of each request from a rollout [Plan]. It is the
// module's [tenant.Decider]; its [Engine.Middleware] labels HTTP requests.
//
// The plan in force is swapped atomically (by a plan-file reload), and
// decisions read it without locks. An Engine is safe for concurrent use.
// Call [Engine.Close] when done with an engine that watches a plan file, has
// a guard or follows the fleet's switch: it stops their goroutines. An engine
// made with [WithDeferredStart] starts them only in [Engine.Start].
type Engine struct {
	cur       atomic.Pointer[compiledPlan]
	kill      atomic.Bool
	planErr   atomic.Pointer[errBox]
	untrusted atomic.Uint64

	hasher  *tenant.UserHasher
	log     *slog.Logger
	counter metric.Int64Counter
	mw      func(http.Handler) http.Handler
	watcher *watcher // nil without a plan file

	life    sync.Mutex    // serialises Start and Close
	started bool          // Start succeeded; under life
	closed  bool          // Close was called; under life
	done    chan struct{} // closed by Close: ends the admin handler's event streams

	sig  signing     // signed decisions (sign.go)
	cons consistency // consistency tokens (consistency.go)
	rpc  rpcAdapters // gRPC interceptors (grpc.go)
	g    guardEngine // guard.go: the guard, the fleet switch, telemetry
	ps   *planSync   // plan_store.go: WithPlanStore; nil without one

	idCfg identityConfig // options_identity.go
}

var _ tenant.Decider = (*Engine)(nil)

// errBox holds an error in an atomic.Pointer.
type errBox struct{ err error }

// New returns an Engine configured by opts. Without a plan option it runs
// the default plan: 0 % canary, overrides honoured only from loopback peers.
// It loads the plan, then starts the engine's background work (see
// [Engine.Start]) before it returns, unless [WithDeferredStart] is given.
//
// New returns an error, naming the option, environment variable or plan key
// at fault, when: an option is invalid ([ErrInvalidOption]); both WithPlan
// and WithPlanFile are given; the plan is invalid ([ErrInvalidPlan],
// [*PlanError]); the plan file cannot be read; or, with [WithFleetSwitch],
// the fleet's kill switch cannot be read. A failed New leaves nothing
// running.
func New(opts ...Option) (*Engine, error) {
	return newEngine(opts, os.Getenv, false)
}

// newEngine builds an engine. With tolerant set (the default engine), a plan
// file that cannot be used at start is not an error: the engine serves
// everyone stable, reports the problem through PlanError and keeps watching.
func newEngine(opts []Option, getenv func(string) string, tolerant bool) (*Engine, error) {
	cfg := &config{logger: slog.Default(), poll: DefaultPlanPollInterval, meter: otel.GetMeterProvider()}
	for _, o := range opts {
		if o != nil {
			o.apply(cfg)
		}
	}
	if cfg.plan != nil && cfg.planFile != "" {
		cfg.errorf("WithPlan and WithPlanFile cannot be combined")
	}
	for _, p := range cfg.proxies {
		if !p.IsValid() {
			cfg.errorf("WithTrustedProxies: invalid prefix %s", p)
		}
	}
	hasher, err := newHasher(cfg, getenv)
	if err != nil {
		cfg.errs = append(cfg.errs, err)
	}
	if len(cfg.errs) > 0 {
		return nil, errors.Join(cfg.errs...)
	}

	e := &Engine{hasher: hasher, log: cfg.logger, done: make(chan struct{})}
	e.counter, err = cfg.meter.Meter(instrumentationName).Int64Counter("canary.override.untrusted",
		metric.WithUnit("{request}"),
		metric.WithDescription("Override headers ignored because the peer is not trusted"))
	if err != nil {
		// A broken meter provider must not stop the engine: count locally only.
		e.log.Warn("canary: cannot create the canary.override.untrusted counter", "error", err)
		e.counter, _ = noop.NewMeterProvider().Meter(instrumentationName).Int64Counter("canary.override.untrusted")
	}

	e.initSigning(cfg)

	switch {
	case cfg.store.store != nil:
		if err := e.initPlanStore(cfg); err != nil {
			return nil, err
		}
	case cfg.planFile != "":
		w := newWatcher(e, cfg.planFile, cfg.poll)
		if err := w.load(); err != nil {
			if !tolerant {
				return nil, err
			}
			e.cur.Store(compileUnusable())
			w.lastErr = err.Error() // reported here; the watcher reports only new problems
			e.log.Error("canary: plan file unusable; serving everyone stable until it is fixed",
				"path", cfg.planFile, "error", err)
		}
		e.watcher = w
	case cfg.plan != nil:
		c, err := compile(*cfg.plan)
		if err != nil {
			return nil, err
		}
		e.cur.Store(c)
	default:
		c, _ := compile(defaultPlan())
		e.cur.Store(c)
	}

	if err := e.initGuard(cfg); err != nil {
		return nil, err
	}
	mwOpts := []middleware.Option{middleware.WithTrustedProxies(cfg.proxies...),
		middleware.WithOutcome(e.recordHTTP), middleware.WithOutcomeSwitch(e.guardOn)}
	if cfg.requireTenant {
		mwOpts = append(mwOpts, middleware.WithRequireTenant())
	}
	if cfg.sign.edge {
		mwOpts = append(mwOpts, middleware.WithStripDecision())
	}
	mwOpts = append(mwOpts, e.middlewareIdentityOptions(cfg)...)
	e.idCfg = cfg.identity
	e.mw = middleware.New(e, mwOpts...)
	e.initRPC()
	if !cfg.deferStart {
		if err := e.Start(context.Background()); err != nil {
			_ = e.Close()
			return nil, err
		}
	}
	return e, nil
}

// newHasher builds the user hasher from the option, the environment or a
// random key, in that order.
func newHasher(cfg *config, getenv func(string) string) (*tenant.UserHasher, error) {
	if cfg.hashKeySet {
		h, err := tenant.NewUserHasher(cfg.hashKey)
		if err != nil {
			return nil, fmt.Errorf("%w: WithUserHashKey: key of %d bytes is shorter than %d bytes",
				ErrInvalidOption, len(cfg.hashKey), tenant.MinUserHashKeyLen)
		}
		return h, nil
	}
	if k := getenv(EnvUserHashKey); k != "" {
		h, err := tenant.NewUserHasher([]byte(k))
		if err != nil {
			return nil, fmt.Errorf("%w: %s: key of %d bytes is shorter than %d bytes",
				ErrInvalidOption, EnvUserHashKey, len(k), tenant.MinUserHashKeyLen)
		}
		return h, nil
	}
	return tenant.NewRandomUserHasher(), nil
}

// Plan returns a copy of the plan in force, with defaults filled in. When a
// plan file could not be used at start by the default engine, it is the
// fallback plan (everyone stable).
func (e *Engine) Plan() Plan { return e.cur.Load().plan.clone() }

// PlanError returns the last problem with the plan file: it cannot be read,
// or its content does not parse (the error then matches [ErrInvalidPlan] and
// holds [*PlanError] values). It is nil when the file in force is the file on
// disk, and always nil for an engine without a plan file.
func (e *Engine) PlanError() error {
	if b := e.planErr.Load(); b != nil {
		return b.err
	}
	return nil
}

// SetKillSwitch turns this process's run-time kill switch on or off. While
// on, every request is stable with reason kill-switch, whatever the plan
// says. It survives plan reloads. Turning it off does not override a plan
// whose kill_switch is true, nor a tripped guard or the fleet's switch; see
// [Engine.TurnKillSwitch] for the operator's switch of a whole fleet.
func (e *Engine) SetKillSwitch(on bool) { e.kill.Store(on) }

// KillSwitch reports whether the kill switch is in force: the run-time switch
// ([Engine.SetKillSwitch]), the plan's kill_switch, a tripped guard or the
// fleet's switch. [Engine.Status] says which.
func (e *Engine) KillSwitch() bool {
	return e.kill.Load() || e.cur.Load().plan.KillSwitch || e.g.kill.Load() != 0
}

// UntrustedOverrides returns how many requests carried an override header
// from a peer outside the plan's override.trusted_cidrs since the engine was
// made. Such overrides are ignored; the same count is exported as the
// OpenTelemetry counter canary.override.untrusted.
func (e *Engine) UntrustedOverrides() uint64 { return e.untrusted.Load() }

// Middleware labels each request through the engine (see [middleware.New]
// for the behaviour): it reads the tenant, user, override and traceparent
// headers, stores the [tenant.Labels] in the request's context, sets
// X-Canary-Cohort on the response, and answers 400 with a JSON body naming
// the header for values that break canary's limits. It has the shape chi's
// Router.Use takes: r.Use(engine.Middleware).
func (e *Engine) Middleware(next http.Handler) http.Handler { return e.mw(next) }

// Close stops watching the plan file, evaluating the guard and following the
// fleet's switch, and waits for their goroutines to finish; it closes the
// fleet switch but not the client given to its backend ([WithFleetSwitch]).
// The engine keeps deciding with the
// plan and kill switch in force. An engine that was never started holds
// nothing that needs Close, but closing it is allowed (a later
// [Engine.Start] then fails). Close is idempotent, safe to call concurrently
// (with Start too), and always returns nil.
func (e *Engine) Close() error {
	e.life.Lock()
	defer e.life.Unlock()
	if e.closed {
		return nil
	}
	e.closed = true
	close(e.done)
	if e.started && e.watcher != nil {
		e.watcher.stop()
	}
	if e.started && e.ps != nil {
		e.ps.stop()
	}
	e.closeGuard()
	return nil
}
