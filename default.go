package canary

import (
	"crypto/rand"
	"log/slog"
	"net/http"
	"os"
	"sync"

	"github.com/reqcanary/canary/tenant"
)

var (
	defaultOnce   sync.Once
	defaultEngine *Engine
)

// Default returns the engine behind the package-level [Middleware], making it
// on first use:
//
//   - its plan is the file named by the environment variable CANARY_PLAN,
//     watched like [WithPlanFile]; with CANARY_PLAN unset or empty, it is the
//     default plan: 0 % canary, overrides honoured only from loopback peers;
//   - a CANARY_PLAN file that cannot be read or parsed does not fail requests:
//     the problem is logged, everyone is served stable, [Engine.PlanError]
//     reports it, and the file keeps being watched until it is fixed;
//   - its user-hash key comes from CANARY_USER_HASH_KEY, or is random for the
//     process (a CANARY_USER_HASH_KEY shorter than 16 bytes is logged and
//     replaced by a random key);
//   - its signing key comes from CANARY_DECISION_KEY (with
//     CANARY_DECISION_KEY_PREVIOUS during a rotation), and CANARY_EDGE=true
//     makes it an edge; without a key it neither signs nor adopts decisions.
//
// The default engine lives as long as the process; do not Close it. Default
// is safe for concurrent use.
func Default() *Engine {
	defaultOnce.Do(func() { defaultEngine = newDefault(os.Getenv) })
	return defaultEngine
}

// newDefault builds a default engine from the environment read by getenv.
// It never fails: whatever cannot be used is logged and replaced by a safe
// choice.
func newDefault(getenv func(string) string) *Engine {
	var opts []Option
	if path := getenv(EnvPlan); path != "" {
		opts = append(opts, WithPlanFile(path))
	}
	if k := getenv(EnvUserHashKey); k != "" && len(k) < tenant.MinUserHashKeyLen {
		slog.Error("canary: default engine: "+EnvUserHashKey+" is shorter than 16 bytes; using a random user-hash key",
			"length", len(k))
		opts = append(opts, WithUserHashKey(randomKey()))
	}
	opts = append(opts, signingFromEnv(getenv, slog.Error)...)
	e, err := newEngine(opts, getenv, true)
	if err != nil {
		slog.Error("canary: default engine: serving everyone stable", "error", err)
		e, _ = newEngine([]Option{WithPlan(fallbackPlan()), WithUserHashKey(randomKey())}, getenv, true)
		e.cur.Store(compileUnusable()) // reason plan-error: not a 0 % plan
	}
	return e
}

// randomKey returns a random 32-byte key.
func randomKey() []byte {
	k := make([]byte, 32)
	_, _ = rand.Read(k) // crypto/rand.Read does not fail on supported platforms
	return k
}

// Middleware labels each request through the [Default] engine; use it as
// r.Use(canary.Middleware) with chi, or wrap any http.Handler. See
// [Engine.Middleware] for what it does to requests.
func Middleware(next http.Handler) http.Handler { return Default().Middleware(next) }
