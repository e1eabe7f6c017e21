package tenant

import (
	"encoding/json"
	"testing"
)

// TestLabelsJSON pins the documented JSON form of Labels: snake_case keys,
// empty identity, trace and position left out, and a round trip.
func TestLabelsJSON(t *testing.T) {
	l := Labels{Tenant: "acme", UserHash: "0f1e", Bucket: 690, Cohort: Canary, Reason: ReasonTenantCanary,
		TraceID: "4bf92f3577b34da6a3ce929d0e0e4736", PlanVersion: 7, Position: 42}
	b, err := json.Marshal(l)
	if err != nil {
		t.Fatal(err)
	}
	want := `{"tenant":"acme","user_hash":"0f1e","bucket":690,"cohort":"canary","reason":"tenant-canary","trace_id":"4bf92f3577b34da6a3ce929d0e0e4736","plan_version":7,"position":42}`
	if string(b) != want {
		t.Fatalf("JSON %s\nwant %s", b, want)
	}
	var back Labels
	if err := json.Unmarshal(b, &back); err != nil || back != l {
		t.Fatalf("round trip: %+v %v", back, err)
	}
	b, _ = json.Marshal(Labels{Bucket: NoBucket, Cohort: Stable, Reason: ReasonNoKey})
	if string(b) != `{"bucket":-1,"cohort":"stable","reason":"no-key","plan_version":0}` {
		t.Fatalf("anonymous labels: %s", b)
	}
}
