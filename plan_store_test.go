package canary

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"

	"github.com/reqcanary/canary/internal/testenv"
	"github.com/reqcanary/canary/planstore"
	"github.com/reqcanary/canary/planstore/etcdstore"
	"github.com/reqcanary/canary/planstore/redisstore"
	"github.com/reqcanary/canary/tenant"
)

func storePlan(pct float64) []byte { return fmt.Appendf(nil, "salt: fleet\ncanary_percent: %g\n", pct) }

// testStore opens a store on the test etcd (or on endpoint) under prefix.
func testStore(t *testing.T, prefix string, validate func([]byte) error, endpoint ...string) planstore.Store {
	t.Helper()
	eps := testenv.EtcdEndpoints(t)
	if len(endpoint) > 0 {
		eps = endpoint
	}
	s, err := etcdstore.New(etcdstore.Config{Endpoints: eps, Prefix: prefix, Validate: validate,
		OpTimeout: time.Second, RetryInterval: 100 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s
}

// storePrefix returns a key prefix of the test's own, deleted when it ends.
func storePrefix(t testing.TB) string {
	t.Helper()
	p := fmt.Sprintf("/canary-test/%s-%d-%d/", t.Name(), os.Getpid(), time.Now().UnixNano())
	cli, err := clientv3.New(clientv3.Config{Endpoints: testenv.EtcdEndpoints(t), DialTimeout: 3 * time.Second, Logger: zap.NewNop()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_, _ = cli.Delete(ctx, p, clientv3.WithPrefix())
		_ = cli.Close()
	})
	return p
}

func storeEngine(t *testing.T, s planstore.Store, opts ...Option) *Engine {
	t.Helper()
	e, err := New(append([]Option{WithPlanStore(s)}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = e.Close() })
	return e
}

// waitPercent waits until every engine runs pct; it returns how long it took.
func waitPercent(t *testing.T, pct float64, d time.Duration, es ...*Engine) time.Duration {
	t.Helper()
	t0 := time.Now()
	for {
		all := true
		for _, e := range es {
			all = all && e.Plan().CanaryPercent == pct
		}
		if all {
			return time.Since(t0)
		}
		if time.Since(t0) > d {
			for i, e := range es {
				t.Logf("engine %d: %g %%, status %+v, plan error %v", i, e.Plan().CanaryPercent, e.Status().PlanStore, e.PlanError())
			}
			t.Fatalf("not every engine runs %g %% after %v", pct, d)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func TestPlanStoreFleetFollowsOneApply(t *testing.T) {
	pfx := storePrefix(t)
	admin := testStore(t, pfx, ValidatePlan)
	ctx := context.Background()
	if _, err := admin.Apply(ctx, storePlan(5), 0, planstore.Change{Author: "alice"}); err != nil {
		t.Fatal(err)
	}
	// Each engine has a store (a client) of its own, as processes would.
	var fleet []*Engine
	for range 3 {
		fleet = append(fleet, storeEngine(t, testStore(t, pfx, ValidatePlan)))
	}
	waitPercent(t, 5, 0, fleet...) // New read the store's plan
	for i, e := range fleet {
		if st := e.Status().PlanStore; st == nil || st.Source != PlanSourceStore || st.Version != 1 || st.Author != "alice" {
			t.Fatalf("engine %d: Status().PlanStore = %+v, want source store, version 1 by alice", i, st)
		}
	}

	if _, err := admin.Apply(ctx, storePlan(25), 1, planstore.Change{Author: "alice", Note: "25 %"}); err != nil {
		t.Fatal(err)
	}
	took := waitPercent(t, 25, time.Second, fleet...)
	t.Logf("3 engines run the applied plan %v after Apply returned", took)

	// The store refuses what the engines' parser refuses, with its message.
	_, err := admin.Apply(ctx, []byte("salt: fleet\ncanary_percent: 250\n"), 2, planstore.Change{})
	if !errors.Is(err, planstore.ErrInvalid) || !errors.Is(err, ErrInvalidPlan) || !strings.Contains(err.Error(), "canary_percent") {
		t.Fatalf("invalid apply: %v; want ErrInvalid and ErrInvalidPlan naming canary_percent", err)
	}

	// A bad plan that reaches the key anyway (a writer that does not
	// validate) is refused by every engine; the last good plan stays.
	lax := testStore(t, pfx, func([]byte) error { return nil })
	if _, err := lax.Apply(ctx, []byte("salt: fleet\ncanary_percent: 250\n"), 2, planstore.Change{Author: "mallory"}); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for i, e := range fleet {
		for e.PlanError() == nil && time.Now().Before(deadline) {
			time.Sleep(5 * time.Millisecond)
		}
		st := e.Status()
		if !errors.Is(e.PlanError(), ErrInvalidPlan) || !strings.Contains(st.PlanError, "version 3") || st.Plan.CanaryPercent != 25 || st.PlanStore.Version != 2 {
			t.Fatalf("engine %d after a bad plan: PlanError %q, %g %%, store version %d; want the refusal of version 3 and 25 %% of version 2 in force",
				i, st.PlanError, st.Plan.CanaryPercent, st.PlanStore.Version)
		}
	}
	// Rolling back (to version 2's text) is a new version every engine takes.
	if _, err := admin.Rollback(ctx, 1, planstore.AnyVersion, planstore.Change{Author: "oncall"}); err != nil {
		t.Fatal(err)
	}
	waitPercent(t, 5, time.Second, fleet...)
	for i, e := range fleet {
		if err := e.PlanError(); err != nil {
			t.Errorf("engine %d: PlanError after a good plan = %v, want nil", i, err)
		}
	}
}

func TestPlanStoreColdStartFromCacheAndCatchUp(t *testing.T) {
	pfx := storePrefix(t)
	admin := testStore(t, pfx, ValidatePlan)
	ctx := context.Background()
	cache := filepath.Join(t.TempDir(), "plan-cache.yaml")
	if _, err := admin.Apply(ctx, storePlan(10), 0, planstore.Change{Author: "alice"}); err != nil {
		t.Fatal(err)
	}
	first := storeEngine(t, testStore(t, pfx, ValidatePlan), WithPlanCacheFile(cache))
	waitPercent(t, 10, 0, first)
	if b, err := os.ReadFile(cache); err != nil || !strings.HasPrefix(string(b), cacheHeader+"1\n") {
		t.Fatalf("cache file = %q, %v; want version 1's plan", b, err)
	}

	// The store is unreachable for the engines starting now.
	proxy := testenv.NewFaultProxy(t, testenv.EtcdEndpoints(t)[0])
	proxy.Set(testenv.ProxyCut)
	cold := storeEngine(t, testStore(t, pfx, ValidatePlan, proxy.Addr()), WithPlanCacheFile(cache))
	if st := cold.Status().PlanStore; st.Source != PlanSourceCache || st.Version != 1 || st.Error == "" || cold.Plan().CanaryPercent != 10 {
		t.Fatalf("cold start with the store down: %g %%, status %+v; want the cache's 10 %% (version 1), source cache, the error", cold.Plan().CanaryPercent, st)
	}
	bare := storeEngine(t, testStore(t, pfx, ValidatePlan, proxy.Addr()))
	if st := bare.Status().PlanStore; st.Source != PlanSourceDefault || st.Error == "" || bare.Plan().CanaryPercent != 0 {
		t.Fatalf("cold start with the store down and no cache: %g %%, status %+v; want everyone stable, source default", bare.Plan().CanaryPercent, st)
	}
	// Decisions go on while the store is down.
	if _, err := cold.Decide(ctx, tenant.Request{Source: headers(tenant.HeaderTenant, "acme", tenant.HeaderUser, "u1"), Wire: tenant.HTTP}); err != nil {
		t.Fatal(err)
	}

	// A plan applied during the outage reaches them when the store returns.
	if _, err := admin.Apply(ctx, storePlan(30), 1, planstore.Change{Author: "alice"}); err != nil {
		t.Fatal(err)
	}
	waitPercent(t, 30, time.Second, first)
	proxy.Set(testenv.ProxyPass)
	waitPercent(t, 30, 30*time.Second, cold, bare)
	for _, e := range []*Engine{cold, bare} {
		eventually(t, time.Second, "status after the store returned: source store, version 2", func() bool {
			st := e.Status().PlanStore
			return st.Source == PlanSourceStore && st.Version == 2
		})
	}
}

func TestPlanStoreOptionErrors(t *testing.T) {
	s := testStore(t, storePrefix(t), ValidatePlan)
	_, err := New(WithPlanStore(s), WithPlanFile("plan.yaml"))
	if !errors.Is(err, ErrInvalidOption) || !strings.Contains(err.Error(), "WithPlanStore") {
		t.Fatalf("WithPlanStore + WithPlanFile: %v, want ErrInvalidOption naming WithPlanStore", err)
	}
}

func TestPlanStoreRedisFleetFollowsOneApply(t *testing.T) {
	pfx := fmt.Sprintf("{canary-test-%s-%d-%d}:", t.Name(), os.Getpid(), time.Now().UnixNano())
	newStore := func() planstore.Store {
		rdb := redis.NewClient(&redis.Options{Addr: testenv.RedisAddr(t), ContextTimeoutEnabled: true})
		t.Cleanup(func() { _ = rdb.Close() })
		s, err := redisstore.New(redisstore.Config{Client: rdb, Validate: ValidatePlan, Prefix: pfx})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = s.Close() })
		return s
	}
	admin := newStore()
	t.Cleanup(func() {
		rdb := redis.NewClient(&redis.Options{Addr: testenv.RedisAddr(t)})
		_ = rdb.Del(context.Background(), pfx+"current", pfx+"history").Err()
		_ = rdb.Close()
	})
	ctx := context.Background()
	if _, err := admin.Apply(ctx, storePlan(5), 0, planstore.Change{Author: "alice"}); err != nil {
		t.Fatal(err)
	}
	fleet := fleetOf(t, 3, newStore)
	waitPercent(t, 5, 0, fleet...)
	if _, err := admin.Apply(ctx, storePlan(25), 1, planstore.Change{Author: "alice"}); err != nil {
		t.Fatal(err)
	}
	waitPercent(t, 25, time.Second, fleet...)
	if _, err := admin.Rollback(ctx, 0, 2, planstore.Change{Author: "oncall"}); err != nil {
		t.Fatal(err)
	}
	waitPercent(t, 5, time.Second, fleet...)
	for i, e := range fleet {
		if st := e.Status().PlanStore; st.Source != PlanSourceStore || st.Version != 3 || st.Author != "oncall" {
			t.Errorf("engine %d: status %+v, want version 3 by oncall from the store", i, st)
		}
	}
}
