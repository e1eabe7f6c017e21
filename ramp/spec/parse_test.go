package spec_test

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/reqcanary/canary/ramp/spec"
)

const good = `salt: x
canary_percent: 0
ramp:
  steps:
    - 1% 2m
    - 5 
    - percent: 25
      hold: 10m
      gates:
        prometheus:
          - name: p95-ratio
            query: histogram_quantile(0.95, x)
            max: 1.2
    - 100%
  gates:
    fleet:
      failure_margin: 0.02
      min_canary_samples: 100
    prometheus:
      - name: error-ratio
        query: sum(rate(errors[1m]))
        max: 0.05
        tries: 2
        on_error: pause
  on_failure: pause
  check_interval: 500ms
`

func TestParseReadsEveryForm(t *testing.T) {
	r, err := spec.Parse([]byte(good))
	if err != nil {
		t.Fatal(err)
	}
	want := []spec.Step{{Percent: 1, Hold: 2 * time.Minute}, {Percent: 5}, {Percent: 25, Hold: 10 * time.Minute}, {Percent: 100}}
	if len(r.Steps) != len(want) {
		t.Fatalf("steps = %+v", r.Steps)
	}
	for i, s := range want {
		if r.Steps[i].Percent != s.Percent || r.Steps[i].Hold != s.Hold {
			t.Errorf("step %d = %+v, want %+v", i, r.Steps[i], s)
		}
	}
	if r.OnFailure != spec.Pause || r.CheckInterval != 500*time.Millisecond {
		t.Errorf("on_failure %q, check_interval %v", r.OnFailure, r.CheckInterval)
	}
	if r.Gates.Fleet == nil || r.Gates.Fleet.FailureMargin != 0.02 || r.Gates.Fleet.MinCanarySamples != 100 {
		t.Errorf("fleet gate = %+v", r.Gates.Fleet)
	}
	if g := r.GatesOf(2); g.Fleet != nil || len(g.Prometheus) != 1 || g.Prometheus[0].Name != "p95-ratio" || *g.Prometheus[0].Max != 1.2 {
		t.Errorf("step 3's own gates = %+v", g)
	}
	if g := r.GatesOf(0); len(g.Prometheus) != 1 || g.Prometheus[0].TriesOf() != 2 || g.Prometheus[0].OnError != spec.Pause {
		t.Errorf("step 1 gates = %+v", g)
	}
}

func TestParseNoSection(t *testing.T) {
	r, err := spec.Parse([]byte("canary_percent: 5\n"))
	if r != nil || err != nil {
		t.Fatalf("got %v, %v; want no section", r, err)
	}
}

func TestParseProblemsNameKeyAndLine(t *testing.T) {
	cases := []struct {
		name, yaml, key string
		line            int
		reason          string
	}{
		{"no steps", "ramp:\n  on_failure: pause\n", "ramp.steps", 2, "at least one step"},
		{"decreasing", "ramp:\n  steps: [5% 1m, 2% 1m]\n", "ramp.steps[1].percent", 2, "more than the previous"},
		{"zero percent", "ramp:\n  steps:\n    - 0% 1m\n", "ramp.steps[0].percent", 3, "above 0"},
		{"bad short form", "ramp:\n  steps:\n    - 5% soon\n", "ramp.steps[0]", 3, "PERCENT%"},
		{"three decimals", "ramp:\n  steps:\n    - percent: 1.234\n", "ramp.steps[0].percent", 3, "two decimals"},
		{"negative hold", "ramp:\n  steps:\n    - percent: 1\n      hold: -1s\n", "ramp.steps[0].hold", 4, "between 0s"},
		{"on_failure", "ramp:\n  steps: [100%]\n  on_failure: explode\n", "ramp.on_failure", 3, "rollback or pause"},
		{"unknown key", "ramp:\n  steps: [100%]\n  stepz: 1\n", "ramp.stepz", 3, "unknown key"},
		{"interval", "ramp:\n  steps: [100%]\n  check_interval: 1ms\n", "ramp.check_interval", 3, "between 50ms"},
		{"fleet margin", "ramp:\n  steps: [100%]\n  gates:\n    fleet:\n      failure_margin: 2\n", "ramp.gates.fleet.failure_margin", 5, "[0, 1)"},
		{"fleet evidence", "ramp:\n  steps: [100%]\n  gates:\n    fleet:\n      failure_evidence: 0.5\n", "ramp.gates.fleet.failure_evidence", 5, "at least 1"},
		{"prom no bound", "ramp:\n  steps: [100%]\n  gates:\n    prometheus:\n      - name: a\n        query: up\n", "ramp.gates.prometheus[0]", 5, "needs max or min"},
		{"prom dup", "ramp:\n  steps: [100%]\n  gates:\n    prometheus:\n      - {name: a, query: up, max: 1}\n      - {name: a, query: up, max: 1}\n", "ramp.gates.prometheus[1].name", 6, "named twice"},
		{"prom min>max", "ramp:\n  steps: [100%]\n  gates:\n    prometheus:\n      - {name: a, query: up, max: 1, min: 2}\n", "ramp.gates.prometheus[0].min", 5, "more than max"},
		{"prom no query", "ramp:\n  steps: [100%]\n  gates:\n    prometheus:\n      - {name: a, max: 1}\n", "ramp.gates.prometheus[0].query", 5, "required"},
		{"prom tries", "ramp:\n  steps: [100%]\n  gates:\n    prometheus:\n      - {name: a, query: up, max: 1, tries: 1000}\n", "ramp.gates.prometheus[0].tries", 5, "between 1"},
		{"prom on_error", "ramp:\n  steps: [100%]\n  gates:\n    prometheus:\n      - {name: a, query: up, max: 1, on_error: retry}\n", "ramp.gates.prometheus[0].on_error", 5, "rollback or pause"},
		{"null step", "ramp:\n  steps:\n    -\n", "ramp.steps[0]", 3, "no value"},
		{"step not mapping", "ramp:\n  steps:\n    - [1, 2]\n", "ramp.steps[0]", 3, "mapping"},
		{"no percent", "ramp:\n  steps:\n    - hold: 1s\n", "ramp.steps[0].percent", 3, "required"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := spec.Parse([]byte(c.yaml))
			var e *spec.Error
			if !errors.As(err, &e) || !errors.Is(err, spec.ErrInvalid) {
				t.Fatalf("err = %v, want a *spec.Error", err)
			}
			p := e.Problems[0]
			if p.Key != c.key || p.Line != c.line || !strings.Contains(p.Reason, c.reason) {
				t.Errorf("problem = %+v; want key %s line %d reason containing %q", p, c.key, c.line, c.reason)
			}
		})
	}
}

func TestValidateGoBuiltRamp(t *testing.T) {
	r := &spec.Ramp{Steps: []spec.Step{{Percent: 50}, {Percent: 10}}}
	err := r.Validate()
	if !errors.Is(err, spec.ErrInvalid) || !strings.Contains(err.Error(), "ramp.steps[1].percent") {
		t.Fatalf("err = %v", err)
	}
	if err := (&spec.Ramp{Steps: []spec.Step{{Percent: 10, Hold: time.Second}, {Percent: 100}}}).Validate(); err != nil {
		t.Fatal(err)
	}
}

func FuzzParse(f *testing.F) {
	f.Add([]byte(good))
	f.Add([]byte("ramp:\n  steps: [1% 1s, 100%]\n"))
	f.Add([]byte("ramp: &a\n  steps: *a\n"))
	f.Add([]byte("ramp:\n  steps:\n    - {percent: 5, gates: {fleet: {}}}\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		r, err := spec.Parse(data)
		if err != nil {
			var e *spec.Error
			if !errors.As(err, &e) || len(e.Problems) == 0 {
				t.Fatalf("error %v is not a *spec.Error with problems", err)
			}
			return
		}
		if r != nil {
			if err := r.Validate(); err != nil {
				t.Fatalf("Parse accepted a section Validate refuses: %v", err)
			}
		}
	})
}
