package canary

import "testing"

// TestReasonIndexMatchesKnownReasons: each known reason's counter cell is
// its position in knownReasons, and an unknown reason has none.
func TestReasonIndexMatchesKnownReasons(t *testing.T) {
	for i, r := range knownReasons {
		if got := reasonIdx(r); got != i {
			t.Errorf("reasonIdx(%q) = %d, want %d", r, got, i)
		}
	}
	if got := reasonIdx("made-up"); got != -1 {
		t.Errorf("reasonIdx of an unknown reason = %d, want -1", got)
	}
}
