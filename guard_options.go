package canary

import (
	"time"

	otellog "go.opentelemetry.io/otel/log"

	"github.com/reqcanary/canary/fleetswitch"
	"github.com/reqcanary/canary/internal/guard"
)

// guardOptions is what the guard and fleet options set.
type guardOptions struct {
	base     *GuardConfig // WithGuard; nil when not given
	fleet    fleetswitch.Backend
	fleetCfg FleetConfig
	logs     otellog.LoggerProvider // nil: the global provider
	clock    guard.Clock            // test hook; nil: the system clock
	manual   bool                   // test hook: no evaluation goroutine
}

// WithGuard turns on the guard with cfg (see [GuardConfig] and
// docs/guard.md): every labelled request's outcome, from the engine's HTTP
// middleware, its gRPC server interceptors and [Engine.RecordOutcome], is
// compared between canary and stable, and the kill switch turns on with
// reason "guard" when the canary is worse. New fails, naming the field, when
// cfg is invalid.
//
// Precedence: a plan with a guard section (a plan file's, or a [Plan] whose
// Guard is not nil) replaces cfg entirely, for as long as that plan is in
// force; a plan without one leaves cfg in force. So a service can ship a
// guard in code and operators can retune or disable it in the plan file.
//
// Default: no WithGuard, no plan guard section: the guard is off, and the
// engine's middleware and server interceptors do not measure requests (no
// clock read, canary.outcomes not counted); [Engine.RecordOutcome] still
// counts what it is given.
func WithGuard(cfg GuardConfig) Option {
	return optionFunc(func(c *config) {
		if !cfg.Enabled {
			c.guard.base = nil
			return
		}
		for _, p := range cfg.problems() {
			c.errorf("WithGuard: %s: %s", p.key, p.reason)
		}
		c.guard.base = &cfg
	})
}

// Defaults of a [FleetConfig].
const (
	DefaultFleetPrefix       = fleetswitch.DefaultPrefix // "canary:"
	DefaultFleetStartTimeout = 5 * time.Second
)

// FleetConfig configures the fleet-wide kill switch of [WithFleetSwitch].
// The zero value is the default.
type FleetConfig struct {
	// Prefix names the fleet's kill switch in the backend's store; instances
	// share a kill switch when they share the store and the prefix (on Redis,
	// with fleetswitch/redisswitch: the key Prefix+"kill-switch" and the
	// channel Prefix+"kill-switch:changes"). Default [DefaultFleetPrefix];
	// give each service its own.
	Prefix string
	// Instance names this instance in the fleet state it writes (the actor of
	// a guard trip). Default: the host name and process id.
	Instance string
	// StartTimeout bounds New's first read of the fleet's state. Default 5s.
	StartTimeout time.Duration
	// ResyncInterval is how often the state is re-read in case a published
	// change was missed. Default 5s.
	ResyncInterval time.Duration
	// Timeout bounds each background call to the backend and each write the
	// engine makes (a trip, a re-arm). Default 2s.
	Timeout time.Duration
}

// WithFleetSwitch shares the kill switch with every instance that uses the
// same backend store and FleetConfig.Prefix: a guard trip on any instance,
// an operator's [Engine.TurnKillSwitch] or [Engine.RearmGuard], or the admin
// handler's POST, is written to the store and published, and every instance
// follows within a second (a periodic re-read catches missed changes). The
// backend is Redis with fleetswitch/redisswitch:
//
//	canary.WithFleetSwitch(redisswitch.New(rdb), canary.FleetConfig{Prefix: "checkout:"})
//
// New opens the switch with the [fleetswitch.Options] derived from cfg and
// reads the fleet's state before it returns, so a new instance starts with
// the fleet's switch; New fails when the store cannot be reached within
// StartTimeout, because an instance that cannot tell whether the fleet is
// rolled back must not start sending traffic to canary. [Engine.Close]
// closes the switch and stops following the fleet; it does not close the
// backend's client.
//
// Default: no fleet switch; the kill switch and the guard's trips are per
// process. A nil backend is an error.
func WithFleetSwitch(backend fleetswitch.Backend, cfg FleetConfig) Option {
	return optionFunc(func(c *config) {
		if backend == nil {
			c.errorf("WithFleetSwitch: backend: nil fleetswitch.Backend")
			return
		}
		for _, f := range []struct {
			name string
			d    time.Duration
		}{{"StartTimeout", cfg.StartTimeout}, {"ResyncInterval", cfg.ResyncInterval}, {"Timeout", cfg.Timeout}} {
			if f.d < 0 {
				c.errorf("WithFleetSwitch: %s: must not be negative, got %v", f.name, f.d)
			}
		}
		c.guard.fleet, c.guard.fleetCfg = backend, cfg
	})
}

// WithLoggerProvider sets the OpenTelemetry logger provider of the events the
// engine emits: canary.guard.trip (why the guard tripped: the rule, both
// cohorts' rates and samples, the window) and canary.guard.rearm. Default:
// the global provider (go.opentelemetry.io/otel/log/global), a no-op until
// the application registers one. Nil is ignored.
func WithLoggerProvider(lp otellog.LoggerProvider) Option {
	return optionFunc(func(c *config) {
		if lp != nil {
			c.guard.logs = lp
		}
	})
}

// withGuardClock is a test hook: the guard reads time from clk and no
// goroutine evaluates it; the test calls evaluateGuard.
func withGuardClock(clk guard.Clock) Option {
	return optionFunc(func(c *config) { c.guard.clock, c.guard.manual = clk, true })
}
