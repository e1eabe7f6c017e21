package guard

import (
	"errors"
	"math"
	"strconv"
	"time"
)

// Defaults of [Config], used for every field left at zero.
const (
	DefaultBuckets           = 10
	DefaultBucketWidth       = time.Second
	DefaultMinCanarySamples  = 40
	DefaultMinStableSamples  = 40
	DefaultFailureRatio      = 2.0
	DefaultFailureMargin     = 0.08
	DefaultConfidence        = 0.999
	DefaultFailureEvidence   = 10000.0
	DefaultLatencyFactor     = 1.5
	DefaultLatencyMinSamples = 100
	DefaultUnitSamples       = 4
	DefaultMaxUnits          = 512
)

// Limits that [Config.Validate] enforces.
const (
	MaxBuckets     = 600
	MinBucketWidth = 10 * time.Millisecond
	MaxBucketWidth = time.Hour
	MaxUnitSamples = 255
	MinMaxUnits    = 16
	MaxMaxUnits    = 1 << 16
)

// Config says how the guard measures and when it trips. Every field's zero
// value means its default, so Config{} is a working configuration; Validate
// rejects the values that make no sense. The yaml tags are the key names the
// plan file's guard section is expected to use.
type Config struct {
	// Buckets is the number of time buckets in the sliding window. Default 10.
	Buckets int `yaml:"buckets"`
	// BucketWidth is the span of one bucket; the window covers Buckets ×
	// BucketWidth, the newest bucket partly. Default 1s.
	BucketWidth time.Duration `yaml:"bucket_width"`

	// MinCanarySamples is the number of canary requests the window must hold
	// before the failure rule may trip. Default 40.
	MinCanarySamples int `yaml:"min_canary_samples"`
	// MinStableSamples is the number of stable requests the window must hold
	// before the failure rule may trip. Default 40.
	MinStableSamples int `yaml:"min_stable_samples"`
	// FailureRatio: the failure rule trips only when the canary's failure
	// rate exceeds FailureRatio × stable's. At least 1. Default 2.
	FailureRatio float64 `yaml:"failure_ratio"`
	// FailureMargin: the failure rule trips only when the canary's failure
	// rate exceeds stable's by more than FailureMargin (a fraction: 0.05 is
	// eight percentage points). In [0, 1). Default 0.08; since zero means the
	// default, write a tiny value such as 1e-9 to demand no margin.
	FailureMargin float64 `yaml:"failure_margin"`
	// FailureEvidence is the likelihood ratio the failure rule's sequential
	// test must reach: how many times likelier the failures of a span of the
	// window are if the canary fails more often than stable (by FailureRatio
	// or more) than if it does not. Whatever the traffic and however often
	// the guard is evaluated, a canary no worse than stable reaches it from
	// a given bucket with a chance of at most 1/FailureEvidence, so the
	// false-trip rate is at most 3600 s / BucketWidth / FailureEvidence per
	// hour (0.36 for the defaults), and much lower in practice (see
	// docs/guard.md). At least 1. Default 10000.
	FailureEvidence float64 `yaml:"failure_evidence"`
	// Confidence of the latency rule's binomial test, in [0.5, 1). It also
	// bounds the failure rule: that rule's likelihood ratio must reach
	// 1/(1−Confidence) too (1000 for the default, below the default
	// FailureEvidence). Default 0.999.
	Confidence float64 `yaml:"confidence"`
	// DisableFailureRule turns the failure rule off.
	DisableFailureRule bool `yaml:"disable_failure_rule"`

	// LatencyFactor: the latency rule trips when the canary's p95 latency
	// exceeds LatencyFactor × stable's p95. At least 1. Default 1.5.
	LatencyFactor float64 `yaml:"latency_factor"`
	// LatencyMargin: the latency rule also demands that the canary's p95
	// exceed stable's by more than LatencyMargin. Default 0 (no margin).
	LatencyMargin time.Duration `yaml:"latency_margin"`
	// LatencyMinSamples is the number of requests each cohort's window must
	// hold before the latency rule may trip. Default 100.
	LatencyMinSamples int `yaml:"latency_min_samples"`
	// DisableLatencyRule turns the latency rule off. With both rules off the
	// guard still records and reports figures but never trips.
	DisableLatencyRule bool `yaml:"disable_latency_rule"`

	// UnitSamples is the most outcomes one randomisation unit (a user, else
	// a tenant) counts per bucket; the unit's further outcomes in that bucket
	// are left out (Figures.OverUnitCap). 1 to 255. Default 4.
	UnitSamples int `yaml:"unit_samples"`
	// MaxUnits is the number of units tracked per cohort and bucket, rounded
	// up to a power of two, 16 to 65536. Units beyond it, in a bucket that
	// already tracks that many, are not tracked: their outcomes count without
	// the per-unit cap (Figures.UntrackedUnits). Memory: Buckets × 2 × MaxUnits × 8 bytes.
	// Default 512.
	MaxUnits int `yaml:"max_units"`
}

// WithDefaults returns c with every zero field set to its default.
func (c Config) WithDefaults() Config {
	setInt := func(p *int, d int) {
		if *p == 0 {
			*p = d
		}
	}
	setFloat := func(p *float64, d float64) {
		if *p == 0 {
			*p = d
		}
	}
	setInt(&c.Buckets, DefaultBuckets)
	if c.BucketWidth == 0 {
		c.BucketWidth = DefaultBucketWidth
	}
	setInt(&c.MinCanarySamples, DefaultMinCanarySamples)
	setInt(&c.MinStableSamples, DefaultMinStableSamples)
	setFloat(&c.FailureRatio, DefaultFailureRatio)
	setFloat(&c.FailureMargin, DefaultFailureMargin)
	setFloat(&c.Confidence, DefaultConfidence)
	setFloat(&c.FailureEvidence, DefaultFailureEvidence)
	setFloat(&c.LatencyFactor, DefaultLatencyFactor)
	setInt(&c.LatencyMinSamples, DefaultLatencyMinSamples)
	setInt(&c.UnitSamples, DefaultUnitSamples)
	setInt(&c.MaxUnits, DefaultMaxUnits)
	return c
}

// evidenceThreshold returns the failure rule's threshold on the log
// likelihood ratio: ln of the larger of FailureEvidence and 1/(1−Confidence),
// after defaults.
func (c Config) evidenceThreshold() float64 {
	d := c.WithDefaults()
	return max(math.Log(d.FailureEvidence), -math.Log1p(-d.Confidence))
}

// Window returns the span the sliding window covers: Buckets × BucketWidth,
// after defaults.
func (c Config) Window() time.Duration {
	d := c.WithDefaults()
	return time.Duration(d.Buckets) * d.BucketWidth
}

// ErrInvalidConfig is matched (with errors.Is) by every [*ConfigError].
var ErrInvalidConfig = errors.New("guard: invalid config")

// ConfigError is one bad field of a [Config].
type ConfigError struct {
	// Field is the Go name of the field, e.g. "FailureRatio".
	Field string
	// Key is the field's yaml key, e.g. "failure_ratio".
	Key string
	// Reason says what is wrong with the value.
	Reason string
}

// Error returns "guard: Field: Reason".
func (e *ConfigError) Error() string { return "guard: " + e.Field + ": " + e.Reason }

// Is reports whether target is [ErrInvalidConfig].
func (e *ConfigError) Is(target error) bool { return target == ErrInvalidConfig }

// Validate returns nil when c (with defaults for its zero fields) is usable,
// and otherwise every problem as a [*ConfigError], joined with errors.Join
// when there are several; find them with errors.As.
func (c Config) Validate() error {
	var errs []error
	bad := func(field, key, reason string) {
		errs = append(errs, &ConfigError{Field: field, Key: key, Reason: reason})
	}
	finite := func(f float64) bool { return !math.IsNaN(f) && !math.IsInf(f, 0) }
	fmtF := func(f float64) string { return strconv.FormatFloat(f, 'g', -1, 64) }

	d := c.WithDefaults()
	if d.Buckets < 1 || d.Buckets > MaxBuckets {
		bad("Buckets", "buckets", "must be between 1 and "+strconv.Itoa(MaxBuckets)+", got "+strconv.Itoa(c.Buckets))
	}
	if d.BucketWidth < MinBucketWidth || d.BucketWidth > MaxBucketWidth {
		bad("BucketWidth", "bucket_width", "must be between "+MinBucketWidth.String()+" and "+MaxBucketWidth.String()+", got "+c.BucketWidth.String())
	}
	if d.MinCanarySamples < 1 {
		bad("MinCanarySamples", "min_canary_samples", "must be positive, got "+strconv.Itoa(c.MinCanarySamples))
	}
	if d.MinStableSamples < 1 {
		bad("MinStableSamples", "min_stable_samples", "must be positive, got "+strconv.Itoa(c.MinStableSamples))
	}
	if !finite(d.FailureRatio) || d.FailureRatio < 1 {
		bad("FailureRatio", "failure_ratio", "must be a number of at least 1, got "+fmtF(c.FailureRatio))
	}
	if !finite(d.FailureMargin) || d.FailureMargin < 0 || d.FailureMargin >= 1 {
		bad("FailureMargin", "failure_margin", "must be a fraction in [0, 1), got "+fmtF(c.FailureMargin))
	}
	if !finite(d.Confidence) || d.Confidence < 0.5 || d.Confidence >= 1 {
		bad("Confidence", "confidence", "must be in [0.5, 1), got "+fmtF(c.Confidence))
	}
	if !finite(d.FailureEvidence) || d.FailureEvidence < 1 {
		bad("FailureEvidence", "failure_evidence", "must be a number of at least 1, got "+fmtF(c.FailureEvidence))
	}
	if !finite(d.LatencyFactor) || d.LatencyFactor < 1 {
		bad("LatencyFactor", "latency_factor", "must be a number of at least 1, got "+fmtF(c.LatencyFactor))
	}
	if d.LatencyMargin < 0 {
		bad("LatencyMargin", "latency_margin", "must not be negative, got "+c.LatencyMargin.String())
	}
	if d.LatencyMinSamples < 1 {
		bad("LatencyMinSamples", "latency_min_samples", "must be positive, got "+strconv.Itoa(c.LatencyMinSamples))
	}
	if d.UnitSamples < 1 || d.UnitSamples > MaxUnitSamples {
		bad("UnitSamples", "unit_samples", "must be between 1 and "+strconv.Itoa(MaxUnitSamples)+", got "+strconv.Itoa(c.UnitSamples))
	}
	if d.MaxUnits < MinMaxUnits || d.MaxUnits > MaxMaxUnits {
		bad("MaxUnits", "max_units", "must be between "+strconv.Itoa(MinMaxUnits)+" and "+strconv.Itoa(MaxMaxUnits)+", got "+strconv.Itoa(c.MaxUnits))
	}
	return errors.Join(errs...)
}
