package canary

import (
	"net/http"
	"testing"
)

// TestAdminPostRefusesDuplicateAndCaseVariantKeys (issue 12): encoding/json
// takes the last of repeated keys and matches case-insensitively, so
// {"action":"on","ACTION":"off"} turned the switch off while a reader of the
// body saw "on". Such bodies are refused with 400 naming the key, and the
// switch does not move.
func TestAdminPostRefusesDuplicateAndCaseVariantKeys(t *testing.T) {
	e := newTestEngine(t, "version: 1\n")
	h := AdminHandler(e, WithAdminToken("tok"))
	e.SetKillSwitch(true)
	for _, tc := range []struct{ body, field string }{
		{`{"action":"on","action":"off"}`, "action"},
		{`{"action":"on","ACTION":"off"}`, "ACTION"},
		{`{"Action":"off"}`, "Action"},
		{`{"action":"off","\u0061ction":"on"}`, "action"},
		{`{"note":"x","NOTE":"y","action":"off"}`, "NOTE"},
		{`{"on":true,"ON":false}`, "ON"},
	} {
		code, m := adminCall(t, h, http.MethodPost, tc.body, "tok")
		if code != 400 || m["field"] != tc.field {
			t.Errorf("%s: %d %v, want 400 naming %q", tc.body, code, m, tc.field)
		}
		if !e.KillSwitch() {
			t.Fatalf("%s turned the switch off", tc.body)
		}
	}
	if code, m := adminCall(t, h, http.MethodPost, `{"action":"off","note":"fixed"}`, "tok"); code != 200 || e.KillSwitch() {
		t.Fatalf("a clean body: %d %v", code, m)
	}
}
