package redisstore_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/reqcanary/canary/internal/testenv"
	"github.com/reqcanary/canary/planstore"
	"github.com/reqcanary/canary/planstore/redisstore"
)

// redisStore returns a Redis store under a prefix of the test's own (its
// keys are deleted when the test ends), on addr or the test Redis.
func redisStore(t *testing.T, prefix string, limit int, addr ...string) planstore.Store {
	t.Helper()
	a := testenv.RedisAddr(t)
	if len(addr) > 0 {
		a = addr[0]
	}
	rdb := redis.NewClient(&redis.Options{Addr: a, ContextTimeoutEnabled: true, MaxRetries: -1,
		DialTimeout: 500 * time.Millisecond})
	t.Cleanup(func() { _ = rdb.Close() })
	s, err := redisstore.New(redisstore.Config{Client: rdb, Validate: validate, Prefix: prefix,
		HistoryLimit: limit, OpTimeout: 500 * time.Millisecond, RetryInterval: 100 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s
}

func redisPrefix(t *testing.T) string {
	t.Helper()
	p := fmt.Sprintf("{canary-test-%s-%d-%d}:", t.Name(), os.Getpid(), time.Now().UnixNano())
	rdb := redis.NewClient(&redis.Options{Addr: testenv.RedisAddr(t)})
	t.Cleanup(func() {
		_ = rdb.Del(context.Background(), p+"current", p+"history").Err()
		_ = rdb.Close()
	})
	return p
}

func TestRedisStoreSemantics(t *testing.T) {
	pfx := redisPrefix(t)
	s := redisStore(t, pfx, 4)
	ctx := ctxT(t)

	// Compare-and-swap, naming both versions.
	mustApply(t, s, plan(5), 0)
	_, err := s.Apply(ctx, plan(6), 0, planstore.Change{})
	var ce *planstore.ConflictError
	if !errors.As(err, &ce) || ce.Expected != 0 || ce.Current != 1 {
		t.Fatalf("stale apply: %v, want ConflictError{0, 1}", err)
	}
	var wg sync.WaitGroup
	won := make(chan int, 8)
	for i := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if _, err := s.Apply(ctx, plan(10+i), 1, planstore.Change{}); err == nil {
				won <- i
			} else if !errors.Is(err, planstore.ErrVersionConflict) {
				t.Errorf("racing apply: %v", err)
			}
		}()
	}
	wg.Wait()
	if len(won) != 1 {
		t.Fatalf("%d racing writers based on version 1 succeeded, want 1", len(won))
	}
	// Invalid: refused, nothing written.
	if _, err := s.Apply(ctx, []byte("nope"), 2, planstore.Change{}); !errors.Is(err, planstore.ErrInvalid) || !errors.Is(err, errBadPlan) {
		t.Fatalf("invalid apply: %v", err)
	}
	if p, _ := s.Get(ctx); p.Version != 2 {
		t.Fatalf("after the refused plan the store is at v%d, want 2", p.Version)
	}
	// History bounded (4) and ordered; rollbacks.
	mustApply(t, s, plan(30), 2)
	mustApply(t, s, plan(40), 3)
	p, err := s.Rollback(ctx, 0, 4, planstore.Change{Author: "oncall", Note: "back"})
	if err != nil || p.Version != 5 || p.RolledBackTo != 3 || string(p.Data) != string(plan(30)) {
		t.Fatalf("rollback to previous = %+v, %v", p, err)
	}
	p, err = s.Rollback(ctx, 4, planstore.AnyVersion, planstore.Change{Author: "oncall"})
	if err != nil || p.Version != 6 || string(p.Data) != string(plan(40)) {
		t.Fatalf("rollback to v4 = %+v, %v", p, err)
	}
	h, err := s.History(ctx, 0)
	if err != nil {
		t.Fatal(err)
	}
	var vs []int64
	for _, e := range h {
		vs = append(vs, e.Version)
	}
	if fmt.Sprint(vs) != "[6 5 4 3]" || h[1].Author != "oncall" || h[1].Note != "back" || h[1].Action != planstore.ActionRollback ||
		h[1].Diff != "@@ -1,1 +1,1 @@\n-canary: 40\n+canary: 30\n" {
		t.Fatalf("history = %v (entry 1: %+v), want versions [6 5 4 3] with the rollback's audit entry", vs, h[1])
	}
	if _, err := s.Rollback(ctx, 1, planstore.AnyVersion, planstore.Change{}); !errors.Is(err, planstore.ErrVersionNotFound) {
		t.Fatalf("rollback to a pruned version: %v", err)
	}
}

func TestRedisStoreWatchersAndOutage(t *testing.T) {
	pfx := redisPrefix(t)
	proxy := testenv.NewFaultProxy(t, testenv.RedisAddr(t))
	near := redisStore(t, pfx, 0)
	far := redisStore(t, pfx, 0, proxy.Addr())
	ctx := ctxT(t)
	a, b := near.Watch(ctx), far.Watch(ctx)
	for i, ch := range []<-chan planstore.Plan{a, b} {
		if got := collect(ch, 1, 5*time.Second); fmt.Sprint(got) != "[0]" {
			t.Fatalf("watcher %d first delivery %v, want [0]", i, got)
		}
	}
	var wg sync.WaitGroup
	res := make([][]int64, 2)
	for i, ch := range []<-chan planstore.Plan{a, b} {
		wg.Add(1)
		go func() { defer wg.Done(); res[i] = collect(ch, 10, 10*time.Second) }()
	}
	for v := int64(0); v < 10; v++ {
		mustApply(t, near, plan(int(v)), v)
	}
	wg.Wait()
	for i, got := range res {
		if fmt.Sprint(got) != "[1 2 3 4 5 6 7 8 9 10]" {
			t.Errorf("watcher %d saw %v, want each write in order", i, got)
		}
	}
	next := int64(10)
	for _, mode := range []testenv.ProxyMode{testenv.ProxyCut, testenv.ProxyStall} {
		proxy.Set(mode)
		t0 := time.Now()
		if _, err := far.Get(ctx); !errors.Is(err, planstore.ErrUnavailable) || time.Since(t0) > 3*time.Second {
			t.Errorf("mode %d: Get = %v after %v, want ErrUnavailable within the op timeout", mode, err, time.Since(t0))
		}
		t0 = time.Now()
		if _, err := far.Apply(ctx, plan(1), planstore.AnyVersion, planstore.Change{}); !errors.Is(err, planstore.ErrUnavailable) || time.Since(t0) > 3*time.Second {
			t.Errorf("mode %d: Apply = %v after %v, want ErrUnavailable within the op timeout", mode, err, time.Since(t0))
		}
		mustApply(t, near, plan(int(next+1)), next)
		next++
		time.Sleep(1500 * time.Millisecond) // let the far watcher notice the outage
		proxy.Set(testenv.ProxyPass)
		got := collect(b, 1, 15*time.Second)
		if fmt.Sprint(got) != fmt.Sprintf("[%d]", next) {
			t.Fatalf("mode %d: after the outage the far watcher delivered %v, want [%d]", mode, got, next)
		}
	}
}

func TestNewConfigErrors(t *testing.T) {
	rdb := redis.NewClient(&redis.Options{Addr: "127.0.0.1:1"})
	t.Cleanup(func() { _ = rdb.Close() })
	for _, tc := range []struct {
		name string
		cfg  redisstore.Config
		want string
	}{
		{"no client", redisstore.Config{Validate: validate}, "redisstore.Config.Client is required"},
		{"nil *redis.Client", redisstore.Config{Client: (*redis.Client)(nil), Validate: validate}, "redisstore.Config.Client is a nil pointer"},
		{"no validate", redisstore.Config{Client: rdb}, "redisstore.Config.Validate is required"},
		{"negative history", redisstore.Config{Client: rdb, Validate: validate, HistoryLimit: -1}, "redisstore.Config.HistoryLimit"},
		{"negative timeout", redisstore.Config{Client: rdb, Validate: validate, OpTimeout: -1}, "redisstore.Config.OpTimeout"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s, err := redisstore.New(tc.cfg)
			if err == nil {
				_ = s.Close()
				t.Fatalf("New = nil error, want one naming %q", tc.want)
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("New: %v, want it to name %q", err, tc.want)
			}
		})
	}
}

// TestRedisStoreKeyLayout pins the keys (the layout the store had in package
// planstore), so a store written by an older version stays readable.
func TestRedisStoreKeyLayout(t *testing.T) {
	if redisstore.DefaultPrefix != "{canary-plan}:" {
		t.Fatalf("DefaultPrefix = %q, want {canary-plan}:", redisstore.DefaultPrefix)
	}
	pfx := redisPrefix(t)
	rdb := redis.NewClient(&redis.Options{Addr: testenv.RedisAddr(t)})
	t.Cleanup(func() { _ = rdb.Close() })
	ctx := ctxT(t)
	// A record as an older version wrote it: read as it is, written on top.
	old := `{"version":7,"plan":"canary: 7\n","author":"bob","time":"2024-01-02T03:04:05Z","action":"apply","from":6}`
	if err := rdb.Set(ctx, pfx+"current", old, 0).Err(); err != nil {
		t.Fatal(err)
	}
	s := redisStore(t, pfx, 0)
	if p, err := s.Get(ctx); err != nil || p.Version != 7 || string(p.Data) != "canary: 7\n" || p.Author != "bob" || p.From != 6 {
		t.Fatalf("Get of an existing record = %+v, %v", p, err)
	}
	mustApply(t, s, plan(8), 7)
	var r planstore.Record
	if b, err := rdb.Get(ctx, pfx+"current").Bytes(); err != nil || json.Unmarshal(b, &r) != nil || r.Version != 8 || r.Diff != "" {
		t.Fatalf("%scurrent after the write: %+v, %v", pfx, r, err)
	}
	hist, err := rdb.LRange(ctx, pfx+"history", 0, -1).Result()
	if err != nil || len(hist) != 1 || json.Unmarshal([]byte(hist[0]), &r) != nil || r.Version != 8 || r.Diff == "" {
		t.Fatalf("%shistory after the write: %q, %v; want one record of v8 with its diff", pfx, hist, err)
	}
}
