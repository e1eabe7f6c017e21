package guard

import (
	"errors"
	"math"
	"strings"
	"testing"
	"time"
)

func TestConfigDefaults(t *testing.T) {
	d := Config{}.WithDefaults()
	want := Config{
		Buckets: 10, BucketWidth: time.Second,
		MinCanarySamples: 40, MinStableSamples: 40,
		FailureRatio: 2, FailureMargin: 0.08, FailureEvidence: 10000, Confidence: 0.999,
		LatencyFactor: 1.5, LatencyMinSamples: 100,
		UnitSamples: 4, MaxUnits: 512,
	}
	if d != want {
		t.Errorf("defaults:\n got %+v\nwant %+v", d, want)
	}
	if err := (Config{}).Validate(); err != nil {
		t.Errorf("the zero Config is invalid: %v", err)
	}
	if w := (Config{Buckets: 6, BucketWidth: 500 * time.Millisecond}).Window(); w != 3*time.Second {
		t.Errorf("Window = %v, want 3s", w)
	}
	// Set fields survive.
	c := Config{Buckets: 30, FailureMargin: 1e-9, DisableLatencyRule: true}.WithDefaults()
	if c.Buckets != 30 || c.FailureMargin != 1e-9 || !c.DisableLatencyRule || c.FailureRatio != 2 {
		t.Errorf("WithDefaults changed set fields: %+v", c)
	}
}

func TestConfigValidateNamesTheField(t *testing.T) {
	for _, c := range []struct {
		cfg   Config
		field string
		key   string
	}{
		{Config{Buckets: -1}, "Buckets", "buckets"},
		{Config{Buckets: MaxBuckets + 1}, "Buckets", "buckets"},
		{Config{BucketWidth: time.Millisecond}, "BucketWidth", "bucket_width"},
		{Config{BucketWidth: 2 * time.Hour}, "BucketWidth", "bucket_width"},
		{Config{MinCanarySamples: -5}, "MinCanarySamples", "min_canary_samples"},
		{Config{MinStableSamples: -5}, "MinStableSamples", "min_stable_samples"},
		{Config{FailureRatio: 0.5}, "FailureRatio", "failure_ratio"},
		{Config{FailureRatio: math.Inf(1)}, "FailureRatio", "failure_ratio"},
		{Config{FailureMargin: -0.1}, "FailureMargin", "failure_margin"},
		{Config{FailureMargin: 1}, "FailureMargin", "failure_margin"},
		{Config{FailureMargin: math.NaN()}, "FailureMargin", "failure_margin"},
		{Config{FailureEvidence: 0.5}, "FailureEvidence", "failure_evidence"},
		{Config{FailureEvidence: math.Inf(1)}, "FailureEvidence", "failure_evidence"},
		{Config{Confidence: 0.4}, "Confidence", "confidence"},
		{Config{Confidence: 1}, "Confidence", "confidence"},
		{Config{LatencyFactor: 0.9}, "LatencyFactor", "latency_factor"},
		{Config{LatencyMargin: -time.Millisecond}, "LatencyMargin", "latency_margin"},
		{Config{LatencyMinSamples: -1}, "LatencyMinSamples", "latency_min_samples"},
		{Config{UnitSamples: 256}, "UnitSamples", "unit_samples"},
		{Config{UnitSamples: -1}, "UnitSamples", "unit_samples"},
		{Config{MaxUnits: 8}, "MaxUnits", "max_units"},
		{Config{MaxUnits: 1<<16 + 1}, "MaxUnits", "max_units"},
	} {
		err := c.cfg.Validate()
		var ce *ConfigError
		if !errors.As(err, &ce) {
			t.Errorf("%+v: Validate = %v, want a *ConfigError", c.cfg, err)
			continue
		}
		if ce.Field != c.field || ce.Key != c.key {
			t.Errorf("%+v: error names %s (%s), want %s (%s)", c.cfg, ce.Field, ce.Key, c.field, c.key)
		}
		if !errors.Is(err, ErrInvalidConfig) || !strings.HasPrefix(err.Error(), "guard: "+c.field+": ") {
			t.Errorf("%+v: error %q does not match ErrInvalidConfig or does not start with the field", c.cfg, err)
		}
		if _, err := New(c.cfg, nil); !errors.Is(err, ErrInvalidConfig) {
			t.Errorf("%+v: New returned %v, want the Validate error", c.cfg, err)
		}
	}
}

func TestConfigValidateReportsEveryProblem(t *testing.T) {
	err := Config{Buckets: -1, Confidence: 2, LatencyFactor: -1}.Validate()
	var fields []string
	for _, e := range err.(interface{ Unwrap() []error }).Unwrap() {
		var ce *ConfigError
		if errors.As(e, &ce) {
			fields = append(fields, ce.Field)
		}
	}
	if got := strings.Join(fields, ","); got != "Buckets,Confidence,LatencyFactor" {
		t.Errorf("fields reported: %s", got)
	}
}
