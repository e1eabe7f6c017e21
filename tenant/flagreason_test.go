package tenant

import "testing"

// TestFlagReason pins the mapping of canary's reasons to the values of
// feature_flag.result.reason that spans and metrics carry.
func TestFlagReason(t *testing.T) {
	for reason, want := range map[string]string{
		ReasonKillSwitch:   "disabled",
		ReasonGuard:        "disabled",
		ReasonOverride:     "static",
		ReasonTenantStable: "targeting_match",
		ReasonTenantCanary: "targeting_match",
		ReasonPercent:      "split",
		ReasonNoKey:        "default",
		ReasonUpstream:     "cached",
		"":                 "unknown",
		"made-up":          "unknown",
	} {
		if got := FlagReason(reason); got != want {
			t.Errorf("FlagReason(%q) = %q, want %q", reason, got, want)
		}
	}
}
