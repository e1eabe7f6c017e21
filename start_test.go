package canary

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"
	"go.uber.org/goleak"

	"github.com/reqcanary/canary/fleetswitch/redisswitch"
	"github.com/reqcanary/canary/internal/testenv"
	"github.com/reqcanary/canary/tenant"
)

// waitUntil retries f every 5ms until it returns true, failing the test
// after 5s.
func waitUntil(t *testing.T, what string, f func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !f() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting until %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// fleetChannel returns a fleet key prefix of the test's own (its keys are
// deleted at cleanup) and a function counting the subscribers of its
// changes channel, through a Redis client the test does not hand to engines.
func fleetChannel(t *testing.T, addr string) (prefix string, subscribers func() int64) {
	t.Helper()
	prefix = fmt.Sprintf("canary-test:%s:%x:", t.Name(), rand.Uint64())
	admin := redis.NewClient(&redis.Options{Addr: addr})
	t.Cleanup(func() {
		admin.Del(context.Background(), prefix+"kill-switch")
		admin.Close()
	})
	channel := prefix + "kill-switch:changes"
	return prefix, func() int64 {
		n, err := admin.PubSubNumSub(context.Background(), channel).Result()
		if err != nil {
			t.Fatal(err)
		}
		return n[channel]
	}
}

// metricNames returns the names of the metrics the reader collects.
func metricNames(t *testing.T, r *sdkmetric.ManualReader) map[string]bool {
	t.Helper()
	var rm metricdata.ResourceMetrics
	if err := r.Collect(context.Background(), &rm); err != nil {
		t.Fatal(err)
	}
	names := map[string]bool{}
	for _, sm := range rm.ScopeMetrics {
		for _, m := range sm.Metrics {
			names[m.Name] = true
		}
	}
	return names
}

// An engine made WithDeferredStart decides with its plan file at once, but
// runs nothing until Start; Start is idempotent, Close stops everything, and
// Start after Close is ErrClosed.
func TestDeferredStart(t *testing.T) {
	ignore := goleak.IgnoreCurrent()
	planFile := filepath.Join(t.TempDir(), "plan.yaml")
	write := func(version int) {
		t.Helper()
		text := fmt.Sprintf("version: %d\ntenants:\n  canary: [acme]\n", version)
		if err := os.WriteFile(planFile, []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write(1)
	reader := sdkmetric.NewManualReader()
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(reader))
	defer mp.Shutdown(context.Background())

	e, err := New(WithPlanFile(planFile), WithPlanPollInterval(5*time.Millisecond), WithUserHashKey(testHashKey),
		WithGuard(GuardConfig{Enabled: true}), WithMeterProvider(mp), WithDeferredStart())
	if err != nil {
		t.Fatal(err)
	}
	if err := goleak.Find(ignore); err != nil {
		t.Errorf("New with WithDeferredStart started goroutines: %v", err)
	}
	if metricNames(t, reader)[MetricGuardState] {
		t.Errorf("%s is reported before Start", MetricGuardState)
	}
	l, err := e.Decide(context.Background(), tenant.Request{Source: headers(tenant.HeaderTenant, "acme"),
		Wire: tenant.HTTP, Peer: netip.MustParseAddr("192.0.2.1")})
	if err != nil || l.Cohort != tenant.Canary || l.Reason != tenant.ReasonTenantCanary {
		t.Errorf("decision before Start: %+v, %v; want canary by the plan file's tenant list", l, err)
	}
	write(2)
	time.Sleep(30 * time.Millisecond) // six poll intervals
	if v := e.Plan().Version; v != 1 {
		t.Errorf("plan version %d before Start, want 1: the file is watched only once started", v)
	}

	for i := 0; i < 2; i++ {
		if err := e.Start(context.Background()); err != nil {
			t.Fatalf("Start #%d: %v", i+1, err)
		}
	}
	waitUntil(t, "the changed plan file is applied", func() bool { return e.Plan().Version == 2 })
	if !metricNames(t, reader)[MetricGuardState] {
		t.Errorf("%s is not reported after Start", MetricGuardState)
	}

	if err := e.Close(); err != nil {
		t.Fatal(err)
	}
	if err := goleak.Find(ignore); err != nil {
		t.Errorf("goroutines left after Close: %v", err)
	}
	if metricNames(t, reader)[MetricGuardState] {
		t.Errorf("%s is still reported after Close", MetricGuardState)
	}
	if err := e.Start(context.Background()); !errors.Is(err, ErrClosed) {
		t.Errorf("Start after Close: %v, want ErrClosed", err)
	}
	if err := e.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
}

// Close on an engine that was never started returns at once and leaves
// nothing; Start then fails.
func TestDeferredCloseWithoutStart(t *testing.T) {
	ignore := goleak.IgnoreCurrent()
	planFile := filepath.Join(t.TempDir(), "plan.yaml")
	if err := os.WriteFile(planFile, []byte("version: 1\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	e, err := New(WithPlanFile(planFile), WithGuard(GuardConfig{Enabled: true}), WithDeferredStart())
	if err != nil {
		t.Fatal(err)
	}
	if err := e.Close(); err != nil {
		t.Fatal(err)
	}
	if err := e.Start(context.Background()); !errors.Is(err, ErrClosed) {
		t.Errorf("Start after Close: %v, want ErrClosed", err)
	}
	if err := goleak.Find(ignore); err != nil {
		t.Error(err)
	}
}

// Start and Close called concurrently, many times, never race, and leave
// nothing.
func TestStartCloseConcurrent(t *testing.T) {
	ignore := goleak.IgnoreCurrent()
	planFile := filepath.Join(t.TempDir(), "plan.yaml")
	if err := os.WriteFile(planFile, []byte("version: 1\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 20; i++ {
		e, err := New(WithPlanFile(planFile), WithGuard(GuardConfig{Enabled: true}), WithDeferredStart())
		if err != nil {
			t.Fatal(err)
		}
		done := make(chan error, 3)
		go func() { done <- e.Start(context.Background()) }()
		go func() { done <- e.Start(context.Background()) }()
		go func() { done <- e.Close() }()
		for j := 0; j < 3; j++ {
			if err := <-done; err != nil && !errors.Is(err, ErrClosed) {
				t.Errorf("Start or Close: %v", err)
			}
		}
		_ = e.Close()
	}
	if err := goleak.Find(ignore); err != nil {
		t.Error(err)
	}
}

// With WithFleetSwitch and WithDeferredStart, New reads the fleet's switch
// (so decisions before Start honour it) without subscribing; Start follows
// the fleet.
func TestDeferredStartFleet(t *testing.T) {
	addr := testenv.RedisAddr(t)
	prefix, subscribers := fleetChannel(t, addr)
	ctx := context.Background()

	// An operator engine turns the fleet's switch on.
	opClient := redis.NewClient(&redis.Options{Addr: addr})
	defer opClient.Close()
	op, err := New(WithUserHashKey(testHashKey), WithFleetSwitch(redisswitch.New(opClient), FleetConfig{Prefix: prefix, Instance: "op"}))
	if err != nil {
		t.Fatal(err)
	}
	defer op.Close()
	if err := op.TurnKillSwitch(ctx, true, "deferred test"); err != nil {
		t.Fatal(err)
	}

	c := redis.NewClient(&redis.Options{Addr: addr})
	defer c.Close()
	ignore := goleak.IgnoreCurrent()
	e, err := New(WithUserHashKey(testHashKey), WithFleetSwitch(redisswitch.New(c), FleetConfig{Prefix: prefix, Instance: "deferred"}),
		WithDeferredStart())
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	if !e.KillSwitch() {
		t.Error("the fleet's switch is not in force before Start")
	}
	if err := goleak.Find(ignore); err != nil {
		t.Errorf("New with WithDeferredStart left goroutines: %v", err)
	}
	if n := subscribers(); n != 1 { // the operator engine's
		t.Errorf("%d subscribers before Start, want the operator engine's 1", n)
	}
	if err := e.TurnKillSwitch(ctx, false, "too early"); !errors.Is(err, ErrNotStarted) {
		t.Errorf("TurnKillSwitch before Start: %v, want ErrNotStarted", err)
	}

	if err := e.Start(ctx); err != nil {
		t.Fatal(err)
	}
	if n := subscribers(); n != 2 {
		t.Errorf("%d subscribers after Start, want 2", n)
	}
	if err := op.TurnKillSwitch(ctx, false, "deferred test done"); err != nil {
		t.Fatal(err)
	}
	waitUntil(t, "the started engine follows the fleet's switch off", func() bool { return !e.KillSwitch() })
	if err := e.Close(); err != nil {
		t.Fatal(err)
	}
	if n := subscribers(); n != 1 {
		t.Errorf("%d subscribers after Close, want the operator engine's 1", n)
	}
}

// Without Redis, a deferred New fails like a plain one, naming the option,
// and leaves nothing; a Start that cannot reach Redis fails, leaves nothing
// and may be retried.
func TestDeferredStartFleetErrors(t *testing.T) {
	addr := testenv.RedisAddr(t)
	// go-redis clients run goroutines of their own until closed.
	down := redis.NewClient(&redis.Options{Addr: "127.0.0.1:1", MaxRetries: -1, DialTimeout: 100 * time.Millisecond})
	defer down.Close()
	c := redis.NewClient(&redis.Options{Addr: addr})
	ignore := goleak.IgnoreCurrent()
	_, err := New(WithFleetSwitch(redisswitch.New(down), FleetConfig{StartTimeout: 500 * time.Millisecond}), WithDeferredStart())
	if err == nil || !strings.Contains(err.Error(), "WithFleetSwitch") {
		t.Errorf("deferred New without Redis: %v, want an error naming WithFleetSwitch", err)
	}

	prefix := fmt.Sprintf("canary-test:%s:%x:", t.Name(), rand.Uint64())
	e, err := New(WithFleetSwitch(redisswitch.New(c), FleetConfig{Prefix: prefix}), WithDeferredStart())
	if err != nil {
		t.Fatal(err)
	}
	c.Close() // Start cannot subscribe now
	if err := e.Start(context.Background()); err == nil || !strings.Contains(err.Error(), "WithFleetSwitch") {
		t.Errorf("Start on a closed client: %v, want an error naming WithFleetSwitch", err)
	}
	if err := e.Close(); err != nil {
		t.Fatal(err)
	}
	if err := goleak.Find(ignore); err != nil {
		t.Errorf("goroutines left: %v", err)
	}
}

// A Start that fails (its context is done before the fleet is reached)
// leaves nothing behind even without Close: no goroutine (plan watcher,
// guard loop, fleet subscription) and no metric callback. A retry then
// starts everything once: one subscription, the plan file followed, the
// guard gauges reported.
func TestDeferredStartFailedStartLeavesNothing(t *testing.T) {
	addr := testenv.RedisAddr(t)
	prefix, subscribers := fleetChannel(t, addr)
	client := redis.NewClient(&redis.Options{Addr: addr})
	defer client.Close()
	reader := sdkmetric.NewManualReader()
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(reader))
	t.Cleanup(func() { _ = mp.Shutdown(context.Background()) })
	planFile := filepath.Join(t.TempDir(), "plan.yaml")
	write := func(version int) {
		t.Helper()
		text := fmt.Sprintf("version: %d\ncanary_percent: 0\nguard:\n  enabled: true\n", version)
		if err := os.WriteFile(planFile, []byte(text), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	write(1)
	ignore := goleak.IgnoreCurrent()
	e, err := New(WithUserHashKey(testHashKey), WithPlanFile(planFile), WithPlanPollInterval(10*time.Millisecond),
		WithMeterProvider(mp), WithFleetSwitch(redisswitch.New(client), FleetConfig{Prefix: prefix}), WithDeferredStart())
	if err != nil {
		t.Fatal(err)
	}

	done, cancel := context.WithCancel(context.Background())
	cancel()
	if err := e.Start(done); err == nil {
		t.Fatal("Start with a done context succeeded")
	}
	// Nothing may be left before any Close: fx does not call OnStop for a
	// hook whose OnStart failed.
	if err := goleak.Find(ignore); err != nil {
		t.Errorf("goroutines left by a failed Start: %v", err)
	}
	if n := subscribers(); n != 0 {
		t.Errorf("%d subscribers after a failed Start, want 0", n)
	}
	if names := metricNames(t, reader); names[MetricGuardState] {
		t.Errorf("%s reported after a failed Start", MetricGuardState)
	}

	if err := e.Start(context.Background()); err != nil {
		t.Fatalf("Start after a failed one: %v", err)
	}
	if n := subscribers(); n != 1 {
		t.Errorf("%d subscribers after the retry, want 1", n)
	}
	if names := metricNames(t, reader); !names[MetricGuardState] {
		t.Errorf("%s not reported after the retry", MetricGuardState)
	}
	write(2)
	waitUntil(t, "the plan file's edit is applied", func() bool { return e.Plan().Version == 2 })
	if err := e.Close(); err != nil {
		t.Fatal(err)
	}
	if err := goleak.Find(ignore); err != nil {
		t.Errorf("goroutines left after Close: %v", err)
	}
}
