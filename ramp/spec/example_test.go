package spec_test

import (
	"fmt"

	"github.com/reqcanary/canary/ramp/spec"
)

func ExampleParse() {
	r, err := spec.Parse([]byte(`canary_percent: 0
ramp:
  steps: [1% 2m, 5% 5m, 25% 10m, 100%]
  gates:
    fleet: {failure_margin: 0.02}
  on_failure: rollback
`))
	if err != nil {
		fmt.Println(err)
		return
	}
	for i, s := range r.Steps {
		fmt.Printf("step %d: %g%% for %v\n", i+1, s.Percent, s.Hold)
	}
	_, err = spec.Parse([]byte("ramp:\n  steps: [5% 1m, 1% 1m]\n"))
	fmt.Println(err)
	// Output:
	// step 1: 1% for 2m0s
	// step 2: 5% for 5m0s
	// step 3: 25% for 10m0s
	// step 4: 100% for 0s
	// ramp: line 2: ramp.steps[1].percent: must be more than the previous step's 5, got 1
}
