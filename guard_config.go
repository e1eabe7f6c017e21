package canary

import (
	"errors"
	"strconv"
	"time"

	"github.com/reqcanary/canary/internal/guard"
)

// Defaults of a [GuardConfig]: every numeric field left at zero takes the
// default below.
const (
	DefaultGuardBuckets           = guard.DefaultBuckets           // 10 buckets
	DefaultGuardBucketWidth       = guard.DefaultBucketWidth       // of 1s: a 10s window
	DefaultGuardMinCanarySamples  = guard.DefaultMinCanarySamples  // 40 canary requests
	DefaultGuardMinStableSamples  = guard.DefaultMinStableSamples  // 40 stable requests
	DefaultGuardFailureRatio      = guard.DefaultFailureRatio      // canary fails 2 × as often
	DefaultGuardFailureMargin     = guard.DefaultFailureMargin     // and 8 points more
	DefaultGuardConfidence        = guard.DefaultConfidence        // at 99.9 % confidence
	DefaultGuardFailureEvidence   = guard.DefaultFailureEvidence   // likelihood ratio the failure rule needs
	DefaultGuardLatencyFactor     = guard.DefaultLatencyFactor     // canary p95 1.5 × stable's
	DefaultGuardLatencyMinSamples = guard.DefaultLatencyMinSamples // 100 requests each
	DefaultGuardUnitSamples       = guard.DefaultUnitSamples       // 4 outcomes per user (or tenant) per bucket
	DefaultGuardMaxUnits          = guard.DefaultMaxUnits          // 512 users (or tenants) tracked per cohort and bucket
)

// GuardConfig configures the guard: the engine records every labelled
// request's outcome per cohort in a sliding window and turns the kill switch
// on (reason "guard" in new decisions) when the canary is worse than stable.
// See docs/guard.md.
//
// The zero GuardConfig is the guard off. With Enabled true, every other field
// left at zero takes its default (DefaultGuard*), so GuardConfig{Enabled:
// true} is a working guard. It is given by [WithGuard] or by the plan file's
// guard section, whose keys are the yaml names below:
//
//	guard:
//	  enabled: true
//	  buckets: 10             # window = buckets × bucket_width
//	  bucket_width: 1s
//	  min_canary_samples: 40
//	  min_stable_samples: 40
//	  failure_ratio: 2        # canary rate > 2 × stable's …
//	  failure_margin: 0.08    # … and > stable's + 8 points …
//	  failure_evidence: 10000 # … with a likelihood ratio of 10000 (sequential test)
//	  confidence: 0.999       # latency test's confidence (and a floor for the above)
//	  latency_factor: 1.5     # canary p95 > 1.5 × stable's p95
//	  latency_margin: 0s
//	  latency_min_samples: 100
//	  unit_samples: 4         # outcomes per user (else tenant) per bucket
//	  max_units: 512          # users (tenants) tracked per cohort and bucket
//	  cooldown: 0s            # 0: stays tripped until re-armed
//
// A GuardConfig is a plain comparable value.
type GuardConfig struct {
	// Enabled turns the guard on. In a plan file's guard section the key is
	// required, so that a section written without it is not silently off.
	Enabled bool `yaml:"enabled"`
	// Buckets is the number of time buckets of the sliding window, 1 to 600.
	Buckets int `yaml:"buckets"`
	// BucketWidth is the span of one bucket, 10ms to 1h.
	BucketWidth time.Duration `yaml:"bucket_width"`
	// MinCanarySamples and MinStableSamples are the requests of each cohort
	// the window must hold before the failure rule may trip.
	MinCanarySamples int `yaml:"min_canary_samples"`
	MinStableSamples int `yaml:"min_stable_samples"`
	// FailureRatio (at least 1) and FailureMargin (a fraction in [0, 1)):
	// the failure rule trips only when the canary's failure rate exceeds
	// both FailureRatio × stable's and stable's + FailureMargin.
	FailureRatio  float64 `yaml:"failure_ratio"`
	FailureMargin float64 `yaml:"failure_margin"`
	// FailureEvidence (at least 1) is the likelihood ratio the failure
	// rule's sequential test must reach over a recent span of the window:
	// a canary no worse than stable reaches it from any given bucket with a
	// chance of at most 1/FailureEvidence, however often the guard looks.
	// See docs/guard.md for the measured false-trip rates and detection
	// times.
	FailureEvidence float64 `yaml:"failure_evidence"`
	// Confidence of the latency rule's binomial test, in [0.5, 1); the
	// failure rule's likelihood ratio must also reach 1/(1−Confidence).
	Confidence float64 `yaml:"confidence"`
	// DisableFailureRule turns the failure rule off.
	DisableFailureRule bool `yaml:"disable_failure_rule"`
	// LatencyFactor (at least 1) and LatencyMargin: the latency rule trips
	// when the canary's p95 exceeds LatencyFactor × stable's p95 and
	// stable's p95 + LatencyMargin, with LatencyMinSamples requests in each
	// cohort.
	LatencyFactor     float64       `yaml:"latency_factor"`
	LatencyMargin     time.Duration `yaml:"latency_margin"`
	LatencyMinSamples int           `yaml:"latency_min_samples"`
	// DisableLatencyRule turns the latency rule off.
	DisableLatencyRule bool `yaml:"disable_latency_rule"`
	// UnitSamples is the most outcomes one randomisation unit (a user, else
	// a tenant) counts per bucket, 1 to 255; its further outcomes in that
	// bucket are left out. See docs/guard.md, "One client cannot decide".
	UnitSamples int `yaml:"unit_samples"`
	// MaxUnits is the number of units tracked per cohort and bucket, 16 to
	// 65536 (rounded up to a power of two); outcomes of further units in a
	// full bucket are left out. It bounds the guard's memory: buckets × 2 ×
	// MaxUnits × 8 bytes.
	MaxUnits int `yaml:"max_units"`
	// Cooldown, when positive, re-arms the guard by itself that long after it
	// tripped. Default 0: the kill switch stays on until an operator re-arms
	// it ([Engine.RearmGuard], the admin handler's rearm action).
	Cooldown time.Duration `yaml:"cooldown"`
}

// internal returns the internal guard's configuration.
func (c GuardConfig) internal() guard.Config {
	return guard.Config{
		Buckets:            c.Buckets,
		BucketWidth:        c.BucketWidth,
		MinCanarySamples:   c.MinCanarySamples,
		MinStableSamples:   c.MinStableSamples,
		FailureRatio:       c.FailureRatio,
		FailureMargin:      c.FailureMargin,
		FailureEvidence:    c.FailureEvidence,
		Confidence:         c.Confidence,
		DisableFailureRule: c.DisableFailureRule,
		LatencyFactor:      c.LatencyFactor,
		LatencyMargin:      c.LatencyMargin,
		LatencyMinSamples:  c.LatencyMinSamples,
		DisableLatencyRule: c.DisableLatencyRule,
		UnitSamples:        c.UnitSamples,
		MaxUnits:           c.MaxUnits,
	}
}

// WithDefaults returns c with every zero numeric field set to its default.
// Enabled and the Disable fields are left as they are.
func (c GuardConfig) WithDefaults() GuardConfig {
	d := c.internal().WithDefaults()
	c.Buckets, c.BucketWidth = d.Buckets, d.BucketWidth
	c.MinCanarySamples, c.MinStableSamples = d.MinCanarySamples, d.MinStableSamples
	c.FailureRatio, c.FailureMargin, c.Confidence = d.FailureRatio, d.FailureMargin, d.Confidence
	c.FailureEvidence = d.FailureEvidence
	c.LatencyFactor, c.LatencyMinSamples = d.LatencyFactor, d.LatencyMinSamples
	c.UnitSamples, c.MaxUnits = d.UnitSamples, d.MaxUnits
	return c
}

// Window returns the span of the sliding window: Buckets × BucketWidth, after
// defaults (10s by default).
func (c GuardConfig) Window() time.Duration { return c.internal().Window() }

// guardProblem is one bad field: its yaml key and what is wrong.
type guardProblem struct{ key, reason string }

// problems returns what is wrong with c, by yaml key.
func (c GuardConfig) problems() []guardProblem {
	var out []guardProblem
	if c.Cooldown < 0 {
		out = append(out, guardProblem{"cooldown", "must not be negative, got " + c.Cooldown.String()})
	}
	err := c.internal().Validate()
	if err == nil {
		return out
	}
	var list []error
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		list = j.Unwrap()
	} else {
		list = []error{err}
	}
	for _, e := range list {
		var ce *guard.ConfigError
		if errors.As(e, &ce) {
			out = append(out, guardProblem{ce.Key, ce.Reason})
		}
	}
	return out
}

// checkGuard reports the problems of a plan's guard section through fail,
// under keys "guard.<key>".
func checkGuard(g *GuardConfig, fail func(key, reason string)) {
	if g == nil {
		return
	}
	for _, p := range g.problems() {
		fail("guard."+p.key, p.reason)
	}
}

// guardKeys are the keys of a plan's guard section, in the order of
// GuardConfig's fields.
var guardKeys = []string{
	"enabled", "buckets", "bucket_width", "min_canary_samples", "min_stable_samples",
	"failure_ratio", "failure_margin", "failure_evidence", "confidence", "disable_failure_rule",
	"latency_factor", "latency_margin", "latency_min_samples", "disable_latency_rule",
	"unit_samples", "max_units", "cooldown",
}

// itoa is strconv.Itoa, for brevity.
func itoa(i int) string { return strconv.Itoa(i) }
