package fleetswitch_test

import (
	"encoding/json"
	"fmt"
	"time"

	"github.com/reqcanary/canary/fleetswitch"
)

// A backend fills in the defaults of the options it is opened with.
func ExampleOptions_WithDefaults() {
	o := fleetswitch.Options{Prefix: "checkout:"}.WithDefaults()
	fmt.Println(o.Prefix, o.ResyncInterval, o.Timeout)
	// Output: checkout: 5s 2s
}

// The state as it is stored and published, here by the Redis backend.
func ExampleState() {
	var st fleetswitch.State
	raw := `{"seq":1767225600000001,"on":true,"reason":"guard: failure-rate","actor":"web-1:42","at":"2026-01-01T00:00:00Z"}`
	if err := json.Unmarshal([]byte(raw), &st); err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(st.On, st.Reason, st.Actor, st.At.Format(time.RFC3339), st.Version)
	// Output: true guard: failure-rate web-1:42 2026-01-01T00:00:00Z 1767225600000001
}
