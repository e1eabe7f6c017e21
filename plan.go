package canary

import (
	"net/netip"
	"slices"

	"github.com/reqcanary/canary/ramp/spec"
	"github.com/reqcanary/canary/tenant"
)

// Limits and defaults of a [Plan].
const (
	// MaxSaltLen is the longest salt a plan may carry, in bytes.
	MaxSaltLen = 128
	// MaxPlanFileSize is the largest plan file [WithPlanFile] reads, in bytes.
	MaxPlanFileSize = 1 << 20
	// DefaultOverrideHeader is the override header of a plan that names none.
	DefaultOverrideHeader = tenant.HeaderOverride
)

// Plan is a rollout plan: who is canary and who is stable. It is usually read
// from YAML with [ParsePlan] or [WithPlanFile]:
//
//	version: 7              # echoed in Labels.PlanVersion and telemetry
//	salt: checkout-v2       # bucketing salt
//	canary_percent: 12.5    # 0..100, at most two decimals
//	kill_switch: false      # true: everyone stable
//	tenants:
//	  canary: [acme]        # always canary (unless kill switch or a stable override)
//	  stable: [bigbank]     # never canary
//	override:
//	  header: X-Canary              # values: canary | stable
//	  trusted_cidrs: [10.0.0.0/8]   # peers whose override header is honoured
//	guard:                  # see GuardConfig and docs/guard.md
//	  enabled: true
//	ramp:                   # progressive delivery; see RampSpec and docs/ramp.md
//	  steps: [1% 2m, 5% 5m, 25% 10m, 100%]
//
// Every key is optional. The zero Plan sends no traffic to canary and honours
// no override: version 0, empty salt, 0 %, no tenant lists, override header
// X-Canary trusted from no peer.
//
// A Plan is a plain value; [Engine.Plan] returns a copy the caller may keep.
type Plan struct {
	// Version is echoed in Labels.PlanVersion and telemetry; 0 or more.
	Version int `yaml:"version"`
	// Salt is prefixed to the bucketing key before hashing (see
	// docs/bucketing.md); at most MaxSaltLen bytes of printable UTF-8.
	// Changing it reshuffles every user.
	Salt string `yaml:"salt"`
	// CanaryPercent is the share of bucketed requests sent to canary, 0 to
	// 100 with at most two decimals. A request is canary when its bucket
	// (0..9999) is below round(CanaryPercent*100), so raising it never moves a
	// canary user back to stable.
	CanaryPercent float64 `yaml:"canary_percent"`
	// KillSwitch, when true, makes everyone stable, overrides included.
	KillSwitch bool `yaml:"kill_switch"`
	// Tenants lists tenants that are always canary or never canary.
	Tenants TenantLists `yaml:"tenants"`
	// Override says which header overrides the decision and whose requests
	// may use it.
	Override Override `yaml:"override"`
	// Guard, when not nil, configures the guard (the plan file's guard
	// section) and takes precedence over [WithGuard]; nil (no section)
	// leaves the guard as WithGuard configured it, off by default.
	Guard *GuardConfig `yaml:"guard"`
	// Ramp, when not nil, is the plan's ramp section: the steps the ramp
	// controller (package ramp) moves CanaryPercent through, and its gates.
	// The engine only validates it; it decides on CanaryPercent.
	Ramp *RampSpec `yaml:"ramp"`
}

// RampSpec is the plan's ramp section (see package ramp/spec and
// docs/ramp.md).
type RampSpec = spec.Ramp

// TenantLists are the plan's per-tenant rules. A tenant may be on at most one
// list; ids follow the tenant id limits ([tenant.CheckTenant]). Ids match
// exactly: they are case-sensitive ("ACME" is not "acme"), and a plan that
// lists one id in two spellings is refused (see docs/bucketing.md).
type TenantLists struct {
	// Canary tenants are always canary, unless the kill switch is on or a
	// trusted override says stable.
	Canary []string `yaml:"canary"`
	// Stable tenants are never canary, unless a trusted override says canary.
	Stable []string `yaml:"stable"`
}

// Override is the plan's override policy.
type Override struct {
	// Header is the request header whose value ("canary" or "stable")
	// overrides the decision. Default: X-Canary. On gRPC the metadata key is
	// its lowercase form.
	Header string `yaml:"header"`
	// TrustedCIDRs are the peers whose override is honoured; an override from
	// any other peer is ignored (and counted). A prefix must have no host bits
	// set. Default: none.
	TrustedCIDRs []netip.Prefix `yaml:"trusted_cidrs"`
}

// clone returns a deep copy of p.
func (p Plan) clone() Plan {
	p.Tenants.Canary = slices.Clone(p.Tenants.Canary)
	p.Tenants.Stable = slices.Clone(p.Tenants.Stable)
	p.Override.TrustedCIDRs = slices.Clone(p.Override.TrustedCIDRs)
	if p.Guard != nil {
		g := *p.Guard
		p.Guard = &g
	}
	if p.Ramp != nil {
		p.Ramp = cloneRamp(p.Ramp)
	}
	return p
}

// defaultPlan is the plan of an engine given none: 0 % canary, overrides
// honoured only from loopback peers.
func defaultPlan() Plan {
	return Plan{
		Override: Override{
			Header: DefaultOverrideHeader,
			TrustedCIDRs: []netip.Prefix{
				netip.MustParsePrefix("127.0.0.0/8"),
				netip.MustParsePrefix("::1/128"),
			},
		},
	}
}

// fallbackPlan is the plan of the default engine when the file named by
// CANARY_PLAN cannot be used: everyone stable, no override honoured.
func fallbackPlan() Plan {
	return Plan{Override: Override{Header: DefaultOverrideHeader}}
}
