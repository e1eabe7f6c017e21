package canary

import (
	"fmt"
	"log/slog"
	"net/netip"
	"time"

	"go.opentelemetry.io/otel/metric"
)

// Environment variables canary reads.
const (
	// EnvPlan names the plan file of the default engine ([Default],
	// [Middleware]).
	EnvPlan = "CANARY_PLAN"
	// EnvUserHashKey holds the user-hash key of engines built without
	// [WithUserHashKey]: its bytes are the key, at least 16 of them.
	EnvUserHashKey = "CANARY_USER_HASH_KEY"
)

// DefaultPlanPollInterval is how often a plan file is checked for changes
// unless [WithPlanPollInterval] says otherwise.
const DefaultPlanPollInterval = 250 * time.Millisecond

// config is what the options set; New checks it.
type config struct {
	plan          *Plan
	planFile      string
	hashKey       []byte
	hashKeySet    bool
	logger        *slog.Logger
	proxies       []netip.Prefix
	requireTenant bool
	poll          time.Duration
	meter         metric.MeterProvider
	deferStart    bool // WithDeferredStart (start.go)
	errs          []error
	sign          signConfig     // options_sign.go
	guard         guardOptions   // guard_options.go
	identity      identityConfig // options_identity.go
	store         storeOptions   // plan_store.go
}

func (c *config) errorf(format string, args ...any) {
	c.errs = append(c.errs, fmt.Errorf("%w: "+format, append([]any{ErrInvalidOption}, args...)...))
}

// Option configures [New]. Options apply in order; a later option of the same
// kind replaces an earlier one, except [WithTrustedProxies], which adds.
// Nil options are ignored.
type Option interface {
	apply(*config)
}

type optionFunc func(*config)

func (f optionFunc) apply(c *config) { f(c) }

// WithPlan makes p the engine's plan. New checks it as [ParsePlan] checks a
// file and returns the problems as [*PlanError] values (without lines). It
// cannot be combined with [WithPlanFile].
//
// Default (neither WithPlan nor WithPlanFile): 0 % canary, no tenant lists,
// overrides in X-Canary honoured only from loopback peers (127.0.0.0/8, ::1).
func WithPlan(p Plan) Option {
	p = p.clone()
	return optionFunc(func(c *config) { c.plan = &p })
}

// WithPlanFile reads the plan from the YAML file at path and watches it: the
// file is read every [DefaultPlanPollInterval] (see [WithPlanPollInterval]),
// and a changed file that parses replaces the plan for new requests. A file
// that does not parse, disappears or cannot be read keeps the last good plan;
// the problem is logged once and reported by [Engine.PlanError] until a good
// file is read. Replacing the file by renaming (as editors and Kubernetes
// ConfigMaps do) is seen like an edit. Files over [MaxPlanFileSize] are
// refused.
//
// New fails if the file cannot be read or parsed at start. With
// [WithDeferredStart], New reads the file and watching begins with
// [Engine.Start]. It cannot be combined with [WithPlan].
func WithPlanFile(path string) Option {
	return optionFunc(func(c *config) { c.planFile = path })
}

// WithUserHashKey sets the key of the user hash ([tenant.UserHasher]):
// instances that share it compute the same Labels.UserHash. It must be at
// least 16 bytes; it is copied.
//
// Default: the bytes of the environment variable CANARY_USER_HASH_KEY when it
// is set (New fails when it is shorter than 16 bytes); otherwise a random key
// made for the process, so hashes then agree only within one process.
func WithUserHashKey(key []byte) Option {
	k := append([]byte(nil), key...)
	return optionFunc(func(c *config) { c.hashKey, c.hashKeySet = k, true })
}

// WithLogger sets the logger for plan reloads and plan-file problems.
// Default: slog.Default() at the time New runs. Nil is ignored.
func WithLogger(l *slog.Logger) Option {
	return optionFunc(func(c *config) {
		if l != nil {
			c.logger = l
		}
	})
}

// WithTrustedProxies names the reverse proxies whose X-Forwarded-For header
// the engine's middleware believes when it finds a request's peer (see
// middleware.WithTrustedProxies). Repeated use adds prefixes; New fails on an
// invalid prefix.
//
// Default: none; the peer is the connection's RemoteAddr and forwarded
// headers are ignored, since clients can forge them. The peer is what the
// plan's override.trusted_cidrs is checked against.
func WithTrustedProxies(prefixes ...netip.Prefix) Option {
	ps := append([]netip.Prefix(nil), prefixes...)
	return optionFunc(func(c *config) { c.proxies = append(c.proxies, ps...) })
}

// WithRequireTenant makes the engine's middleware answer 400 to a request
// without a tenant header. Default: a missing tenant is allowed.
func WithRequireTenant() Option {
	return optionFunc(func(c *config) { c.requireTenant = true })
}

// WithPlanPollInterval sets how often a plan file ([WithPlanFile]) is checked
// for changes. Default: [DefaultPlanPollInterval] (250ms), so an edit takes
// effect within about a quarter of a second. New fails when d is not
// positive.
func WithPlanPollInterval(d time.Duration) Option {
	return optionFunc(func(c *config) {
		if d <= 0 {
			c.errorf("WithPlanPollInterval: %v is not a positive duration", d)
			return
		}
		c.poll = d
	})
}

// WithMeterProvider sets the OpenTelemetry meter provider of the engine's
// counters canary.override.untrusted (overrides ignored because the peer was
// not trusted), canary.decision.rejected (signed decisions ignored because
// they did not verify) and canary.consistency.rejected (consistency tokens
// ignored likewise). Default: the global provider (otel.GetMeterProvider), a no-op
// until the application registers one. Nil is ignored.
func WithMeterProvider(mp metric.MeterProvider) Option {
	return optionFunc(func(c *config) {
		if mp != nil {
			c.meter = mp
		}
	})
}
