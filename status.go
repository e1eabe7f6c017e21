package canary

import (
	"encoding/json"
	"time"

	"github.com/reqcanary/canary/internal/guard"
)

// Status is what [Engine.Status] reports, and the JSON the [AdminHandler]
// serves.
type Status struct {
	// Plan is the plan in force (see [Plan.MarshalJSON] for its JSON form).
	Plan Plan `json:"plan"`
	// PlanVersion is Plan.Version.
	PlanVersion int `json:"plan_version"`
	// PlanError is the text of [Engine.PlanError], "" when none.
	PlanError string `json:"plan_error,omitempty"`
	// PlanUnusable is true while the engine has never had a usable plan (the
	// plan file or the store's plan was refused at start, or the store was
	// unreachable without a cache file): everyone is stable with
	// Labels.Reason "plan-error" until a good plan arrives.
	PlanUnusable bool `json:"plan_unusable,omitempty"`
	// PlanStore is the state of the plan store ([WithPlanStore]), nil without one.
	PlanStore *PlanStoreStatus `json:"plan_store,omitempty"`
	// KillSwitch says whether every request is stable, and why.
	KillSwitch KillSwitchStatus `json:"kill_switch"`
	// Guard holds the guard's state and window figures.
	Guard GuardStatus `json:"guard"`
	// Fleet is the fleet-wide switch, nil without [WithFleetSwitch].
	Fleet *FleetStatus `json:"fleet,omitempty"`
	// UntrustedOverrides is [Engine.UntrustedOverrides].
	UntrustedOverrides uint64 `json:"untrusted_overrides"`
}

// Sources of the kill switch, in [KillSwitchStatus.Sources].
const (
	KillSourceOperator = "operator" // Engine.SetKillSwitch, TurnKillSwitch without a fleet, or an ON not yet written to the fleet
	KillSourcePlan     = "plan"     // the plan's kill_switch
	KillSourceGuard    = "guard"    // this process's guard tripped
	KillSourceFleet    = "fleet"    // the fleet's switch (an operator or a guard elsewhere)
)

// KillSwitchStatus is the kill switch.
type KillSwitchStatus struct {
	// On is true when every new request is stable.
	On bool `json:"on"`
	// Reason is the Labels.Reason new requests get while On: "kill-switch"
	// (an operator or the plan) or "guard"; "" when off.
	Reason string `json:"reason,omitempty"`
	// Sources lists what holds the switch on (KillSource*), possibly several.
	Sources []string `json:"sources"`
}

// GuardStatus is the guard.
type GuardStatus struct {
	// Enabled is true when the guard is on.
	Enabled bool `json:"enabled"`
	// Source says where its configuration comes from: "plan" (the plan's
	// guard section) or "option" (WithGuard); "" when off.
	Source string `json:"source,omitempty"`
	// Config is the configuration in force, with defaults filled in.
	Config *GuardConfig `json:"config,omitempty"`
	// Window is the span the figures cover, e.g. "10s".
	Window string `json:"window,omitempty"`
	// Tripped is true while the guard holds the kill switch, here or (with a
	// fleet switch) on another instance.
	Tripped bool `json:"tripped"`
	// Trip says why this process's guard tripped; nil when it has not (or it
	// was re-armed).
	Trip *TripStatus `json:"trip,omitempty"`
	// Stable and Canary are the cohorts' figures over the current window.
	Stable CohortFigures `json:"stable"`
	Canary CohortFigures `json:"canary"`
}

// CohortFigures are one cohort's figures over the guard's window.
type CohortFigures struct {
	Requests    uint64  `json:"requests"` // outcomes counted: successes and failures
	Failures    uint64  `json:"failures"`
	FailureRate float64 `json:"failure_rate"` // Failures / Requests, 0 without requests
	P50Millis   float64 `json:"p50_ms"`
	P95Millis   float64 `json:"p95_ms"`
	P99Millis   float64 `json:"p99_ms"`
	// ClientCancelled counts requests whose client went away (outcome
	// client-cancelled): not in Requests, never a failure.
	ClientCancelled uint64 `json:"client_cancelled"`
	// OverUnitCap counts outcomes left out because their user (or tenant)
	// had already counted unit_samples in their bucket.
	OverUnitCap uint64 `json:"over_unit_cap"`
	// UntrackedUnits counts outcomes counted without the per-unit cap
	// because their bucket already tracked max_units users (or tenants).
	UntrackedUnits uint64 `json:"untracked_units"`
	// FailingUnits estimates the distinct users (or tenants) with a failure.
	FailingUnits uint64 `json:"failing_units"`
	// TopUnitFailures bounds the failures of any one user (or tenant): the
	// failure rule leaves them out.
	TopUnitFailures uint64 `json:"top_unit_failures"`
}

// TripStatus says why the guard tripped.
type TripStatus struct {
	// Rule is "failure-rate" or "latency-p95".
	Rule string `json:"rule"`
	// At is when it tripped.
	At time.Time `json:"at"`
	// Summary is one line with the figures.
	Summary string `json:"summary"`
	// Window is the span the figures cover.
	Window string `json:"window"`
	// Stable and Canary are the figures it decided on.
	Stable CohortFigures `json:"stable"`
	Canary CohortFigures `json:"canary"`
	// Z is the two-proportion z statistic (over the span for the failure
	// rule), for the record. PValue is, for the failure rule, the
	// always-valid p-value e^−Evidence; for the latency rule, the binomial
	// test's p-value.
	Z      float64 `json:"z"`
	PValue float64 `json:"p_value"`
	// For the failure rule: Since is the start of the recent span of the
	// window it decided on, Span its length (e.g. "2.1s"), SpanStable and
	// SpanCanary the cohorts' requests and failures there, Evidence the log
	// likelihood ratio found and Threshold the one it had to reach (nats).
	Since      time.Time   `json:"since,omitzero"`
	Span       string      `json:"span,omitempty"`
	SpanStable *SpanCounts `json:"span_stable,omitempty"`
	SpanCanary *SpanCounts `json:"span_canary,omitempty"`
	Evidence   float64     `json:"evidence,omitempty"`
	Threshold  float64     `json:"threshold,omitempty"`
}

// SpanCounts are one cohort's counts over the span the failure rule decided
// on.
type SpanCounts struct {
	Requests uint64 `json:"requests"`
	Failures uint64 `json:"failures"`
	// TopUnitFailures bounds the failures of any one user (or tenant) over
	// the span: the failure rule leaves them out of the canary's.
	TopUnitFailures uint64 `json:"top_unit_failures"`
}

// FleetStatus is the fleet-wide switch as this instance last learnt it.
type FleetStatus struct {
	Key      string    `json:"key"`      // where the fleet's state is kept: the Redis key with redisswitch
	Instance string    `json:"instance"` // this instance's name in fleet states
	On       bool      `json:"on"`
	Reason   string    `json:"reason,omitempty"`
	Actor    string    `json:"actor,omitempty"`
	At       time.Time `json:"at,omitzero"`
	Version  int64     `json:"version"`
	Error    string    `json:"error,omitempty"` // the last failed contact with the fleet's store
	// Pending is true while an operator's ON, in force here, has not been
	// written to the fleet (its store did not answer); it is written as soon
	// as the store does.
	Pending bool `json:"pending,omitempty"`
}

func figures(f guard.Figures) CohortFigures {
	ms := func(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }
	return CohortFigures{Requests: f.Samples, Failures: f.Failures, FailureRate: f.FailureRate,
		P50Millis: ms(f.P50), P95Millis: ms(f.P95), P99Millis: ms(f.P99),
		ClientCancelled: f.ClientCancelled, OverUnitCap: f.OverUnitCap, UntrackedUnits: f.UntrackedUnits,
		FailingUnits: f.FailingUnits, TopUnitFailures: f.TopUnitFailures}
}

// Status reports the engine's plan, kill switch, guard and fleet switch at
// once. It reads the guard's window (a few microseconds); safe for concurrent
// use.
func (e *Engine) Status() Status {
	p := e.cur.Load()
	s := Status{Plan: p.plan.clone(), PlanVersion: p.plan.Version, UntrustedOverrides: e.untrusted.Load()}
	if err := e.PlanError(); err != nil {
		s.PlanError = err.Error()
	}
	s.PlanStore = e.planStoreStatus()
	s.PlanUnusable = p.unusable

	bits := e.g.kill.Load()
	ks := &s.KillSwitch
	ks.Sources = []string{}
	if e.kill.Load() || bits&killOperatorPending != 0 {
		ks.Sources = append(ks.Sources, KillSourceOperator)
	}
	if p.plan.KillSwitch {
		ks.Sources = append(ks.Sources, KillSourcePlan)
	}
	if bits&killGuard != 0 {
		ks.Sources = append(ks.Sources, KillSourceGuard)
	}
	if bits&(killFleetGuard|killFleetOperator) != 0 {
		ks.Sources = append(ks.Sources, KillSourceFleet)
	}
	if ks.On = len(ks.Sources) > 0; ks.On {
		ks.Reason = e.killReason(p)
	}

	g := &s.Guard
	g.Tripped = bits&(killGuard|killFleetGuard) != 0
	if gs := e.g.state.Load(); gs != nil {
		cfg := gs.cfg.WithDefaults()
		g.Enabled, g.Source, g.Config, g.Window = true, gs.source, &cfg, cfg.Window().String()
		snap := gs.g.Snapshot()
		g.Stable, g.Canary = figures(snap.Stable), figures(snap.Canary)
	}
	if t := e.g.trip.Load(); t != nil {
		g.Trip = &TripStatus{Rule: string(t.Rule), At: t.At, Summary: t.String(), Window: t.Window.String(),
			Stable: figures(t.Stable), Canary: figures(t.Canary), Z: t.Z, PValue: t.PValue}
		if t.Rule == guard.RuleFailureRate {
			span := func(c guard.SpanCounts) *SpanCounts {
				return &SpanCounts{Requests: c.Samples, Failures: c.Failures, TopUnitFailures: c.TopUnitFailures}
			}
			ts := g.Trip
			ts.Since, ts.Span = t.Since, t.At.Sub(t.Since).Round(time.Millisecond).String()
			ts.SpanStable, ts.SpanCanary = span(t.SpanStable), span(t.SpanCanary)
			ts.Evidence, ts.Threshold = t.Evidence, t.Threshold
		}
	}

	if f := e.g.fleet; f != nil {
		st := f.sw.State()
		s.Fleet = &FleetStatus{Key: f.sw.Key(), Instance: e.g.instance, On: st.On, Reason: st.Reason,
			Actor: st.Actor, At: st.At, Version: st.Version}
		if err := f.sw.LastError(); err != nil {
			s.Fleet.Error = err.Error()
		}
		s.Fleet.Pending = f.pending()
	}
	return s
}

// MarshalJSON writes the plan with the YAML file's key names (durations as
// text such as "1s"), for the admin handler and logs.
func (p Plan) MarshalJSON() ([]byte, error) {
	type tenants struct {
		Canary []string `json:"canary"`
		Stable []string `json:"stable"`
	}
	type override struct {
		Header       string   `json:"header"`
		TrustedCIDRs []string `json:"trusted_cidrs"`
	}
	out := struct {
		Version       int          `json:"version"`
		Salt          string       `json:"salt"`
		CanaryPercent float64      `json:"canary_percent"`
		KillSwitch    bool         `json:"kill_switch"`
		Tenants       tenants      `json:"tenants"`
		Override      override     `json:"override"`
		Guard         *GuardConfig `json:"guard,omitempty"`
		Ramp          *RampSpec    `json:"ramp,omitempty"`
	}{
		Version: p.Version, Salt: p.Salt, CanaryPercent: p.CanaryPercent, KillSwitch: p.KillSwitch,
		Tenants:  tenants{Canary: nonNil(p.Tenants.Canary), Stable: nonNil(p.Tenants.Stable)},
		Override: override{Header: p.Override.Header, TrustedCIDRs: []string{}},
	}
	for _, c := range p.Override.TrustedCIDRs {
		out.Override.TrustedCIDRs = append(out.Override.TrustedCIDRs, c.String())
	}
	out.Guard, out.Ramp = p.Guard, p.Ramp
	return json.Marshal(out)
}

func nonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}

var _ json.Marshaler = Plan{}

// MarshalJSON writes the configuration with the plan file's key names,
// durations as text such as "1s", and zero fields left out.
func (g GuardConfig) MarshalJSON() ([]byte, error) {
	type guardJSON struct {
		Enabled            bool    `json:"enabled"`
		Buckets            int     `json:"buckets,omitempty"`
		BucketWidth        string  `json:"bucket_width,omitempty"`
		MinCanarySamples   int     `json:"min_canary_samples,omitempty"`
		MinStableSamples   int     `json:"min_stable_samples,omitempty"`
		FailureRatio       float64 `json:"failure_ratio,omitempty"`
		FailureMargin      float64 `json:"failure_margin,omitempty"`
		FailureEvidence    float64 `json:"failure_evidence,omitempty"`
		Confidence         float64 `json:"confidence,omitempty"`
		DisableFailureRule bool    `json:"disable_failure_rule,omitempty"`
		LatencyFactor      float64 `json:"latency_factor,omitempty"`
		LatencyMargin      string  `json:"latency_margin,omitempty"`
		LatencyMinSamples  int     `json:"latency_min_samples,omitempty"`
		DisableLatencyRule bool    `json:"disable_latency_rule,omitempty"`
		UnitSamples        int     `json:"unit_samples,omitempty"`
		MaxUnits           int     `json:"max_units,omitempty"`
		Cooldown           string  `json:"cooldown,omitempty"`
	}
	dur := func(d time.Duration) string {
		if d == 0 {
			return ""
		}
		return d.String()
	}
	return json.Marshal(guardJSON{Enabled: g.Enabled, Buckets: g.Buckets, BucketWidth: dur(g.BucketWidth),
		MinCanarySamples: g.MinCanarySamples, MinStableSamples: g.MinStableSamples,
		FailureRatio: g.FailureRatio, FailureMargin: g.FailureMargin, FailureEvidence: g.FailureEvidence, Confidence: g.Confidence,
		DisableFailureRule: g.DisableFailureRule, LatencyFactor: g.LatencyFactor,
		LatencyMargin: dur(g.LatencyMargin), LatencyMinSamples: g.LatencyMinSamples,
		DisableLatencyRule: g.DisableLatencyRule, UnitSamples: g.UnitSamples, MaxUnits: g.MaxUnits,
		Cooldown: dur(g.Cooldown)})
}

var _ json.Marshaler = GuardConfig{}
