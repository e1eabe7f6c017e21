package canary

import (
	"errors"
	"testing"
)

func TestParsePlanRampSection(t *testing.T) {
	p, err := ParsePlan([]byte("canary_percent: 1\nramp:\n  steps: [1% 2m, 5% 5m, 100%]\n  on_failure: pause\n"))
	if err != nil {
		t.Fatal(err)
	}
	if p.Ramp == nil || len(p.Ramp.Steps) != 3 || p.Ramp.Steps[1].Percent != 5 || p.Ramp.OnFailure != "pause" {
		t.Fatalf("ramp = %+v", p.Ramp)
	}
	c := p.clone()
	c.Ramp.Steps[0].Percent = 99
	if p.Ramp.Steps[0].Percent != 1 {
		t.Fatal("clone shares the ramp's steps")
	}

	_, err = ParsePlan([]byte("canary_percent: 1\nramp:\n  steps:\n    - 5% 1m\n    - 2% 1m\n"))
	var pe *PlanError
	if !errors.As(err, &pe) || !errors.Is(err, ErrInvalidPlan) {
		t.Fatalf("err = %v, want a *PlanError", err)
	}
	if pe.Key != "ramp.steps[1].percent" || pe.Line != 5 {
		t.Fatalf("problem = %+v, want ramp.steps[1].percent at line 5", pe)
	}
	if err := ValidatePlan([]byte("ramp:\n  gates:\n    fleet: {confidence: 3}\n  steps: [100%]\n")); !errors.Is(err, ErrInvalidPlan) {
		t.Fatalf("ValidatePlan accepted a bad fleet gate: %v", err)
	}
}
