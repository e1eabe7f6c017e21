package testenv

import (
	"os"
	"os/exec"
	"testing"
)

// EnvChromium names the headless browser the console's tests drive; set by
// scripts/testenv.sh (scripts/testenv-chromium.sh installs Debian's
// chromium when missing).
const EnvChromium = "CANARY_CHROMIUM"

// Chromium returns the browser binary: $CANARY_CHROMIUM, else chromium on
// the PATH. Without one the test skips, or fails under CI=true.
func Chromium(t testing.TB) string {
	t.Helper()
	if p := os.Getenv(EnvChromium); p != "" {
		return p
	}
	if p, err := exec.LookPath("chromium"); err == nil {
		return p
	}
	return need(t, EnvChromium)
}
