package fxmodule

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"sort"

	"github.com/jmoiron/sqlx"
	"go.opentelemetry.io/otel/metric"
	"go.uber.org/fx"
	"google.golang.org/grpc"

	"github.com/reqcanary/canary"
	"github.com/reqcanary/canary/dbwrap"
	"github.com/reqcanary/canary/fallback"
)

// Value tags of what Module provides.
const (
	// Name is the name tag of the middleware, the interceptors and the
	// transport:
	// `name:"canary"`.
	Name = "canary"
	// MiddlewareGroup is the value group the middleware is also put in:
	// `group:"canary.middleware"`.
	MiddlewareGroup = "canary.middleware"
)

// Module is canary's fx module; see the package documentation for what it
// provides. Supply a [Config] (fx.Supply(fxmodule.Config{...})) to configure
// it; without one the engine runs the default plan.
var Module = fx.Module("canary",
	fx.Provide(
		newEngine,
		newMiddleware,
		newInterceptors,
		newTransport,
		newSQLDB,
		newSQLXDB,
		newFallbacks,
	),
)

// ErrNoDB is returned when *sql.DB or *sqlx.DB is asked for and Config.DB is
// nil.
var ErrNoDB = errors.New("fxmodule: Config.DB is nil: no database configured")

// Config configures [Module]. The zero value is the default engine (0 %
// canary, overrides honoured from loopback only), no database and no
// fallback transports.
type Config struct {
	// PlanFile is the rollout plan file (canary.WithPlanFile), read when
	// the engine is built and watched for changes from the application's
	// start. Cannot be combined with Plan.
	PlanFile string
	// Plan is the rollout plan (canary.WithPlan), when not read from a file.
	Plan *canary.Plan
	// EngineOptions are more options for canary.New (user-hash key, trusted
	// proxies…). They apply after the plan, the logger and the meter
	// provider, so they may replace them. The module always adds
	// canary.WithDeferredStart and starts the engine on the application's
	// start.
	EngineOptions []canary.Option

	// DB, when set, makes the module provide *sql.DB and *sqlx.DB opened by
	// dbwrap.Open(*DB). Its MeterProvider defaults to the application's, and
	// its TokenStore, when nil, to the dbwrap.TokenStore the application
	// provides, if any (fxredis.Module, in fxmodule/fxredis, provides one
	// on the application's *redis.Client, closed after the database). The
	// module
	// sets DeferStart and calls dbwrap.Start on the application's start:
	// before it, every read goes to the primary.
	DB *dbwrap.Config
	// SQLXDriverName is the driver name handed to sqlx.NewDb, which picks
	// the placeholder style. Default: DB.DriverName ("pgx" → $1; use
	// "sqlite3" for modernc's "sqlite" driver).
	SQLXDriverName string

	// Fallback configures one fallback transport per dependency name,
	// provided as [Fallbacks]. Each Config's MeterProvider defaults to the
	// application's.
	Fallback map[string]fallback.Config
}

// deps are the module's inputs; all optional.
type deps struct {
	fx.In
	Lifecycle fx.Lifecycle
	Config    Config               `optional:"true"`
	Tokens    dbwrap.TokenStore    `optional:"true"`
	Meter     metric.MeterProvider `optional:"true"`
	Logger    *slog.Logger         `optional:"true"`
}

// newEngine builds the engine, with a deferred start: it starts on the
// application's start and closes on stop, so that an application that fails
// to build leaves none of its goroutines behind.
func newEngine(d deps) (*canary.Engine, error) {
	var opts []canary.Option
	switch {
	case d.Config.PlanFile != "" && d.Config.Plan != nil:
		return nil, fmt.Errorf("fxmodule: Config.PlanFile and Config.Plan cannot both be set")
	case d.Config.PlanFile != "":
		opts = append(opts, canary.WithPlanFile(d.Config.PlanFile))
	case d.Config.Plan != nil:
		opts = append(opts, canary.WithPlan(*d.Config.Plan))
	}
	if d.Logger != nil {
		opts = append(opts, canary.WithLogger(d.Logger))
	}
	if d.Meter != nil {
		opts = append(opts, canary.WithMeterProvider(d.Meter))
	}
	opts = append(opts, d.Config.EngineOptions...)
	e, err := canary.New(append(opts, canary.WithDeferredStart())...)
	if err != nil {
		return nil, fmt.Errorf("fxmodule: %w", err)
	}
	d.Lifecycle.Append(fx.StartStopHook(
		func(ctx context.Context) error {
			if err := e.Start(ctx); err != nil {
				return fmt.Errorf("fxmodule: %w", err)
			}
			return nil
		},
		e.Close))
	return e, nil
}

// middlewareOut is the middleware, named and in the group.
type middlewareOut struct {
	fx.Out
	Middleware func(http.Handler) http.Handler `name:"canary"`
	Grouped    func(http.Handler) http.Handler `group:"canary.middleware"`
}

func newMiddleware(e *canary.Engine) middlewareOut {
	return middlewareOut{Middleware: e.Middleware, Grouped: e.Middleware}
}

// interceptorsOut are the engine's gRPC interceptors, named "canary". They
// are the engine's method values, so they sign decisions, strip inbound ones
// on an edge and feed the engine's outcomes exactly as the engine is
// configured (canary.WithSigningKey, canary.WithEdge).
type interceptorsOut struct {
	fx.Out
	UnaryServer  grpc.UnaryServerInterceptor  `name:"canary"`
	StreamServer grpc.StreamServerInterceptor `name:"canary"`
	UnaryClient  grpc.UnaryClientInterceptor  `name:"canary"`
	StreamClient grpc.StreamClientInterceptor `name:"canary"`
}

func newInterceptors(e *canary.Engine) interceptorsOut {
	return interceptorsOut{
		UnaryServer:  e.UnaryServerInterceptor,
		StreamServer: e.StreamServerInterceptor,
		UnaryClient:  e.UnaryClientInterceptor,
		StreamClient: e.StreamClientInterceptor,
	}
}

// transportOut is the engine's outbound HTTP transport, named "canary".
type transportOut struct {
	fx.Out
	Transport http.RoundTripper `name:"canary"`
}

// newTransport is canary.Transport over http.DefaultTransport: it writes the
// request's labels (never the raw user id) onto outgoing requests.
func newTransport(e *canary.Engine) transportOut {
	return transportOut{Transport: e.Transport(nil)}
}

// newSQLDB opens the dbwrap database with a deferred start: its replica
// poller starts on the application's start, and the database closes on stop.
func newSQLDB(d deps) (*sql.DB, error) {
	if d.Config.DB == nil {
		return nil, ErrNoDB
	}
	cfg := *d.Config.DB
	if cfg.MeterProvider == nil && d.Meter != nil {
		cfg.MeterProvider = d.Meter
	}
	if cfg.TokenStore == nil && d.Tokens != nil {
		cfg.TokenStore = d.Tokens // its provider closes it, after the DB (fx stops in reverse)
	}
	cfg.DeferStart = true
	db, err := dbwrap.Open(cfg)
	if err != nil {
		return nil, fmt.Errorf("fxmodule: Config.DB: %w", err)
	}
	d.Lifecycle.Append(fx.StartStopHook(
		func() error {
			if err := dbwrap.Start(db); err != nil {
				return fmt.Errorf("fxmodule: Config.DB: %w", err)
			}
			return nil
		},
		db.Close))
	return db, nil
}

// newSQLXDB wraps the *sql.DB (closed by newSQLDB's hook).
func newSQLXDB(db *sql.DB, d deps) *sqlx.DB {
	name := d.Config.SQLXDriverName
	if name == "" && d.Config.DB != nil {
		name = d.Config.DB.DriverName
	}
	return sqlx.NewDb(db, name)
}

// Fallbacks are the fallback transports of Config.Fallback, by dependency
// name. The module closes them on stop.
type Fallbacks map[string]fallback.Transport

// Transport returns the transport of the dependency name, or an error naming
// it when Config.Fallback has no such entry.
func (f Fallbacks) Transport(name string) (fallback.Transport, error) {
	if t, ok := f[name]; ok {
		return t, nil
	}
	names := make([]string, 0, len(f))
	for n := range f {
		names = append(names, n)
	}
	sort.Strings(names)
	return nil, fmt.Errorf("fxmodule: Config.Fallback has no %q (it has %v)", name, names)
}

// newFallbacks builds the transports of Config.Fallback.
func newFallbacks(d deps) (Fallbacks, error) {
	f := make(Fallbacks, len(d.Config.Fallback))
	for name, c := range d.Config.Fallback {
		if c.Name == "" {
			c.Name = name
		}
		if c.MeterProvider == nil && d.Meter != nil {
			c.MeterProvider = d.Meter
		}
		t, err := fallback.NewTransport(c)
		if err != nil {
			for _, made := range f {
				made.Close()
			}
			return nil, fmt.Errorf("fxmodule: Config.Fallback[%q]: %w", name, err)
		}
		f[name] = t
	}
	d.Lifecycle.Append(fx.StopHook(func(context.Context) error {
		for _, t := range f {
			t.Close()
			t.CloseIdleConnections()
		}
		return nil
	}))
	return f, nil
}
