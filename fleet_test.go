package canary

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/reqcanary/canary/fleetswitch/redisswitch"
	"github.com/reqcanary/canary/internal/guard"
	"github.com/reqcanary/canary/internal/testenv"
	"github.com/reqcanary/canary/tenant"
)

// fleetEngines starts n engines sharing a fleet switch under a prefix unique
// to the test, each on its own Redis client and manual guard clock.
type fleetTest struct {
	t      *testing.T
	addr   string
	prefix string
}

func newFleetTest(t *testing.T) *fleetTest {
	t.Helper()
	ft := &fleetTest{t: t, addr: testenv.RedisAddr(t),
		prefix: fmt.Sprintf("canary-test:%s:%x:", t.Name(), rand.Uint64())}
	t.Cleanup(func() {
		c := redis.NewClient(&redis.Options{Addr: ft.addr})
		c.Del(context.Background(), ft.prefix+"kill-switch")
		c.Close()
	})
	return ft
}

func (ft *fleetTest) engine(name string) (*Engine, *guard.ManualClock) {
	ft.t.Helper()
	c := redis.NewClient(&redis.Options{Addr: ft.addr})
	clk := guard.NewManualClock(t0)
	p, _ := ParsePlan([]byte(guardPlan))
	e, err := New(WithPlan(p), WithUserHashKey(testHashKey), WithGuard(GuardConfig{Enabled: true}), withGuardClock(clk),
		WithFleetSwitch(redisswitch.New(c), FleetConfig{Prefix: ft.prefix, Instance: name}))
	if err != nil {
		ft.t.Fatal(err)
	}
	ft.t.Cleanup(func() {
		_ = e.Close()
		_ = c.Close()
	})
	return e, clk
}

func TestFleetGuardTripReachesEveryInstance(t *testing.T) {
	ft := newFleetTest(t)
	a, clk := ft.engine("a")
	b, _ := ft.engine("b")
	c, _ := ft.engine("c")
	u := canaryUser(t, a)

	if badCanary(t, a, clk, 10) < 0 {
		t.Fatal("no trip on a")
	}
	for _, e := range []*Engine{b, c} {
		eventually(t, time.Second, "the trip reaches every instance", func() bool {
			l := decideUser(t, e, u)
			return l.Cohort == tenant.Stable && l.Reason == tenant.ReasonGuard
		})
	}
	s := b.Status()
	if s.Fleet == nil || !s.Fleet.On || s.Fleet.Actor != "a" || !strings.HasPrefix(s.Fleet.Reason, "guard: failure-rate") ||
		strings.Join(s.KillSwitch.Sources, ",") != KillSourceFleet || !s.Guard.Tripped {
		t.Fatalf("b's status: %+v %+v", s.Fleet, s.KillSwitch)
	}

	// A new instance reads the key at start.
	late, _ := ft.engine("late")
	if l := decideUser(t, late, u); l.Reason != tenant.ReasonGuard {
		t.Fatalf("a new instance decides %s/%s", l.Cohort, l.Reason)
	}

	// Re-arming on any instance re-arms them all, the tripped one included.
	if err := c.RearmGuard(context.Background()); err != nil {
		t.Fatal(err)
	}
	for _, e := range []*Engine{a, b, c, late} {
		eventually(t, time.Second, "the re-arm reaches every instance", func() bool {
			return decideUser(t, e, u).Cohort == tenant.Canary
		})
	}
	if s := a.Status(); s.Guard.Trip != nil || s.KillSwitch.On {
		t.Fatalf("a after the fleet re-arm: %+v", s.KillSwitch)
	}
}

func TestFleetOperatorSwitch(t *testing.T) {
	ft := newFleetTest(t)
	a, _ := ft.engine("a")
	b, _ := ft.engine("b")
	u := canaryUser(t, a)
	if err := a.TurnKillSwitch(context.Background(), true, "bad deploy"); err != nil {
		t.Fatal(err)
	}
	if l := decideUser(t, a, u); l.Reason != tenant.ReasonKillSwitch {
		t.Fatalf("a at once: %s", l.Reason)
	}
	eventually(t, time.Second, "b follows the operator", func() bool {
		return decideUser(t, b, u).Reason == tenant.ReasonKillSwitch
	})
	if s := b.Status(); s.Fleet.Reason != "operator: bad deploy" {
		t.Fatalf("fleet reason %q", s.Fleet.Reason)
	}
	// The admin handler of b turns it off for both.
	code, m := adminCall(t, AdminHandler(b, WithAdminToken("t")), "POST", `{"action":"off"}`, "t")
	if code != 200 || path(m, "fleet.on") != false {
		t.Fatalf("POST off on b: %d %v", code, m)
	}
	eventually(t, time.Second, "a follows the admin off", func() bool { return !a.KillSwitch() })
}

func TestFleetNeedsRedisAtStart(t *testing.T) {
	c := redis.NewClient(&redis.Options{Addr: "127.0.0.1:1", MaxRetries: -1, DialTimeout: 100 * time.Millisecond})
	defer c.Close()
	_, err := New(WithFleetSwitch(redisswitch.New(c), FleetConfig{StartTimeout: 300 * time.Millisecond}))
	if err == nil || !strings.Contains(err.Error(), "WithFleetSwitch") {
		t.Fatalf("New without Redis: %v", err)
	}
	if _, err := New(WithFleetSwitch(nil, FleetConfig{})); !errors.Is(err, ErrInvalidOption) {
		t.Fatalf("nil client: %v", err)
	}
	if _, err := New(WithFleetSwitch(redisswitch.New(c), FleetConfig{Timeout: -1})); !errors.Is(err, ErrInvalidOption) ||
		!strings.Contains(err.Error(), "Timeout") {
		t.Fatalf("negative timeout: %v", err)
	}
}
