package canary

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/http"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/reqcanary/canary/fleetswitch/redisswitch"
	"github.com/reqcanary/canary/internal/testenv"
	"github.com/reqcanary/canary/tenant"
)

// redisDownFleet is two engines sharing a fleet switch: a reaches Redis
// through a fault proxy the test cuts or stalls, b directly.
type redisDownFleet struct {
	proxy *testenv.FaultProxy
	a, b  *Engine
}

func newRedisDownFleet(t *testing.T) redisDownFleet {
	t.Helper()
	addr := testenv.RedisAddr(t)
	proxy := testenv.NewFaultProxy(t, addr)
	prefix := fmt.Sprintf("canary-test:%s:%x:", t.Name(), rand.Uint64())
	mk := func(name, via string) *Engine {
		c := redis.NewClient(&redis.Options{Addr: via, MaxRetries: -1, DialTimeout: 200 * time.Millisecond,
			ReadTimeout: 200 * time.Millisecond, WriteTimeout: 200 * time.Millisecond})
		e, err := New(WithUserHashKey(testHashKey), WithPlan(Plan{CanaryPercent: 100}),
			WithFleetSwitch(redisswitch.New(c), FleetConfig{Prefix: prefix, Instance: name, Timeout: 300 * time.Millisecond,
				ResyncInterval: 200 * time.Millisecond}))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() {
			_ = e.Close()
			_ = c.Close()
		})
		return e
	}
	f := redisDownFleet{proxy: proxy, a: mk("a", proxy.Addr()), b: mk("b", addr)}
	t.Cleanup(func() {
		c := redis.NewClient(&redis.Options{Addr: addr})
		c.Del(context.Background(), prefix+"kill-switch")
		c.Close()
	})
	return f
}

// reason decides one request for user u on e.
func reasonOf(t *testing.T, e *Engine, u string) string {
	t.Helper()
	l, err := e.Decide(context.Background(), tenant.Request{Source: headers("X-User-ID", u), Wire: tenant.HTTP})
	if err != nil {
		t.Fatal(err)
	}
	return l.Reason
}

// writeBack waits until b, which reaches Redis directly, sees the switch on
// after the proxy in front of a's Redis is restored, and returns how long
// that took.
func (f redisDownFleet) writeBack(t *testing.T) time.Duration {
	t.Helper()
	if f.b.KillSwitch() {
		t.Fatal("b saw the switch on while a's Redis was down")
	}
	restored := time.Now()
	f.proxy.Set(testenv.ProxyPass)
	eventually(t, 10*time.Second, "b sees a's ON once Redis is back", func() bool { return f.b.KillSwitch() })
	took := time.Since(restored)
	eventually(t, 5*time.Second, "a's write is no longer pending", func() bool { return !f.a.Status().Fleet.Pending })
	if r := reasonOf(t, f.b, "u1"); r != tenant.ReasonKillSwitch {
		t.Fatalf("b decides %s, want kill-switch", r)
	}
	return took
}

// TestKillSwitchOnWithRedisDownAdmin (issue 12): with Redis unreachable, the
// admin POST "on" takes effect in this process at once (202, pending), "off"
// is refused with a clear error and changes nothing, and the ON reaches the
// fleet when Redis returns.
func TestKillSwitchOnWithRedisDownAdmin(t *testing.T) {
	f := newRedisDownFleet(t)
	h := AdminHandler(f.a, WithAdminToken("t"))
	f.proxy.Set(testenv.ProxyCut)

	code, m := adminCall(t, h, http.MethodPost, `{"action":"on","note":"redis is down too"}`, "t")
	if code != http.StatusAccepted || path(m, "kill_switch.on") != true || path(m, "fleet.pending") != true {
		t.Fatalf("POST on with Redis down: %d %v", code, m)
	}
	if r := reasonOf(t, f.a, "u1"); r != tenant.ReasonKillSwitch {
		t.Fatalf("a decides %s, want kill-switch at once", r)
	}
	code, m = adminCall(t, h, http.MethodPost, `{"action":"off"}`, "t")
	if code != http.StatusServiceUnavailable || !f.a.KillSwitch() {
		t.Fatalf("POST off with Redis down: %d %v (switch on: %v)", code, m, f.a.KillSwitch())
	}
	took := f.writeBack(t)
	t.Logf("write-back reached the fleet %v after Redis was restored", took)
}

// TestKillSwitchOnWithRedisDownEngine: the same through the engine's API;
// the switch is on before the fleet write returns, even while it hangs
// (stalled Redis).
func TestKillSwitchOnWithRedisDownEngine(t *testing.T) {
	f := newRedisDownFleet(t)
	f.proxy.Set(testenv.ProxyCut)
	err := f.a.TurnKillSwitch(context.Background(), true, "cut")
	if !errors.Is(err, ErrFleetPending) || !f.a.KillSwitch() {
		t.Fatalf("TurnKillSwitch(on) with Redis cut: %v, on %v", err, f.a.KillSwitch())
	}
	if err := f.a.TurnKillSwitch(context.Background(), false, ""); err == nil || !f.a.KillSwitch() {
		t.Fatalf("TurnKillSwitch(off) with Redis cut: %v, on %v", err, f.a.KillSwitch())
	}
	took := f.writeBack(t)
	t.Logf("write-back reached the fleet %v after Redis was restored", took)

	// Off needs the fleet, and gets it now: both follow.
	if err := f.a.TurnKillSwitch(context.Background(), false, "over"); err != nil {
		t.Fatal(err)
	}
	eventually(t, 5*time.Second, "b follows off", func() bool { return !f.b.KillSwitch() })

	// Stalled: the call hangs on Redis, the switch is already on.
	f.proxy.Set(testenv.ProxyStall)
	done := make(chan error, 1)
	go func() { done <- f.a.TurnKillSwitch(context.Background(), true, "stalled") }()
	eventually(t, time.Second, "a is on while the fleet write hangs", func() bool { return f.a.KillSwitch() })
	if err := <-done; !errors.Is(err, ErrFleetPending) {
		t.Fatalf("TurnKillSwitch(on) with Redis stalled: %v", err)
	}
	took = f.writeBack(t)
	t.Logf("write-back after a stall reached the fleet %v after Redis was restored", took)
}
