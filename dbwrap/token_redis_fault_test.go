package dbwrap

import (
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"go.uber.org/goleak"

	"github.com/reqcanary/canary/internal/testenv"
	"github.com/reqcanary/canary/tenant"
)

func closeStore(t *testing.T, s TokenStore) {
	t.Helper()
	t.Cleanup(func() {
		if c, ok := s.(io.Closer); ok {
			c.Close()
		}
	})
}

// quantile returns the q-quantile of ds (sorted in place).
func quantile(ds []time.Duration, q float64) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	slices.Sort(ds)
	return ds[min(len(ds)-1, int(q*float64(len(ds))))]
}

// Redis, behind a FaultProxy, is cut then stalled while 8 workers each write
// and then read as one user, in new requests each time, with replay paused on
// the replica (a read that misses its user's token reads stale rows).
// What the callers see: every write and read succeeds, every read sees all
// its user's writes (read-your-writes on this instance, through the local
// copy), and reads stay fast during the outage (p50/p99 logged). Nothing is
// lost: the positions of writes made only during the outage are in Redis
// soon after it comes back (time logged), and a second instance sharing
// Redis reads those writes.
func TestPGRedisTokenStoreOutage(t *testing.T) {
	e := newPGEnv(t)
	proxy := testenv.NewFaultProxy(t, testenv.RedisAddr(t))
	faulty := redis.NewClient(&redis.Options{Addr: proxy.Addr()})
	t.Cleanup(func() { faulty.Close() })
	direct := redisClient(t)
	prefix := fmt.Sprintf("canary:test:dbwrap:outage:%d:", time.Now().UnixNano())
	storeA := NewRedisTokenStore(faulty, prefix) // the defaults
	closeStore(t, storeA)
	storeB := NewRedisTokenStore(direct, prefix)
	closeStore(t, storeB)

	cfg := e.config()
	cfg.MaxReplicaLag = time.Hour
	cfg.TokenTTL = time.Minute
	cfg.TokenStore = storeA
	a := e.open(t, cfg)
	cfg.TokenStore = storeB
	b := e.open(t, cfg)
	tbl := e.table(t, "u text, n int")
	e.pauseReplay(t)

	const (
		healthy = iota
		cut
		stall
		restored
		phases
	)
	names := [phases]string{"healthy", "cut", "stall", "restored"}
	var phase atomic.Int32
	bg := context.Background()
	userOf := func(name string) tenant.Labels {
		return tenant.Labels{Tenant: "acme", UserHash: fmt.Sprintf("%032x", name), Cohort: tenant.Stable}
	}
	const workers = 8
	var (
		wg        sync.WaitGroup
		stop      atomic.Bool
		mu        sync.Mutex
		latencies [phases][]time.Duration
		failures  []string
	)
	fail := func(format string, args ...any) {
		mu.Lock()
		if len(failures) < 10 {
			failures = append(failures, fmt.Sprintf(format, args...))
		}
		mu.Unlock()
	}
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			name := fmt.Sprintf("worker-%d", w)
			user := userOf(name)
			var lat [phases][]time.Duration
			for n := 1; !stop.Load(); n++ {
				if _, err := a.ExecContext(tenant.NewContext(bg, user), "insert into "+tbl+" values ($1, $2)", name, n); err != nil {
					fail("%s: write %d: %v", name, n, err)
					return
				}
				ph := phase.Load()
				start := time.Now()
				var got int
				err := a.QueryRowContext(tenant.NewContext(bg, user), "select count(*) from "+tbl+" where u = $1", name).Scan(&got)
				lat[ph] = append(lat[ph], time.Since(start))
				if err != nil {
					fail("%s: read after write %d (%s): %v", name, n, names[ph], err)
					return
				}
				if got != n {
					fail("%s: read after write %d (%s) sees %d rows: stale", name, n, names[ph], got)
					return
				}
			}
			mu.Lock()
			for i := range lat {
				latencies[i] = append(latencies[i], lat[i]...)
			}
			mu.Unlock()
		}()
	}
	// Users that write only while Redis is away, once each.
	outageWrite := func(ph int) []string {
		var users []string
		for i := 0; i < 4; i++ {
			name := fmt.Sprintf("%s-only-%d", names[ph], i)
			if _, err := a.ExecContext(tenant.NewContext(bg, userOf(name)), "insert into "+tbl+" values ($1, 1)", name); err != nil {
				t.Errorf("write of %s during the outage: %v", name, err)
			}
			users = append(users, name)
		}
		return users
	}
	time.Sleep(time.Second)
	phase.Store(cut)
	proxy.Set(testenv.ProxyCut)
	time.Sleep(time.Second)
	outageUsers := outageWrite(cut)
	time.Sleep(time.Second)
	phase.Store(stall)
	proxy.Set(testenv.ProxyStall)
	time.Sleep(time.Second)
	outageUsers = append(outageUsers, outageWrite(stall)...)
	time.Sleep(time.Second)
	phase.Store(restored)
	proxy.Set(testenv.ProxyPass)
	back := time.Now()

	// Recovery: every outage-time position reaches Redis.
	var recovered time.Duration
	within(t, 10*time.Second, "the outage-time positions are written back to Redis", func() bool {
		for _, u := range outageUsers {
			if n, err := direct.Exists(bg, prefix+userKey(userOf(u))).Result(); err != nil || n != 1 {
				return false
			}
		}
		recovered = time.Since(back)
		return true
	})
	time.Sleep(time.Second)
	stop.Store(true)
	wg.Wait()
	for _, f := range failures {
		t.Error(f)
	}
	for ph := range latencies {
		ds := latencies[ph]
		t.Logf("reads %-8s n=%5d p50=%v p99=%v max=%v", names[ph], len(ds), quantile(ds, .5), quantile(ds, .99), quantile(ds, 1))
	}
	t.Logf("outage-time positions all in Redis %v after it came back", recovered)
	for _, ph := range []int{cut, stall} {
		if p99 := quantile(latencies[ph], .99); p99 > time.Second {
			t.Errorf("reads during the %s: p99 %v, want them bounded well under go-redis's own timeouts", names[ph], p99)
		}
	}
	// The other instance, sharing Redis, reads the outage-time writes (the
	// replica is paused: only the token sends them to the primary).
	for _, u := range outageUsers {
		var n int
		if err := b.QueryRowContext(tenant.NewContext(bg, userOf(u)), "select count(*) from "+tbl+" where u = $1", u).Scan(&n); err != nil || n != 1 {
			t.Errorf("the other instance reads %d rows of %s (err %v), want its outage-time write", n, u, err)
		}
	}
}

// A Save while Redis is down starts the write-back; Close stops it at once
// and leaves no goroutine, even with calls stalled in flight.
func TestRedisTokenStoreCloseStopsWriteBack(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	proxy := testenv.NewFaultProxy(t, testenv.RedisAddr(t))
	defer proxy.Close()
	c := redis.NewClient(&redis.Options{Addr: proxy.Addr()})
	defer c.Close()
	s, err := NewRedisTokenStoreConfig(RedisTokenConfig{Client: c, Prefix: "canary:test:dbwrap:close:", BreakerDelay: 20 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	proxy.Set(testenv.ProxyStall)
	if err := s.Save(ctx, "3:acme:u1", 42, time.Minute); !errors.Is(err, ErrTokenStoreUnavailable) {
		t.Fatalf("Save with Redis stalled = %v, want ErrTokenStoreUnavailable", err)
	}
	if p, err := s.Load(ctx, "3:acme:u1"); err != nil || p != 42 {
		t.Errorf("Load with Redis stalled = %d, %v; want 42 from the local copy", p, err)
	}
	time.Sleep(100 * time.Millisecond) // the write-back tries (and stalls) meanwhile
	done := make(chan struct{})
	go func() {
		proxy.Set(testenv.ProxyCut) // the stalled calls end with the connections
		s.(io.Closer).Close()
		close(done)
	}()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("Close did not return")
	}
	if err := s.Save(ctx, "3:acme:u1", 43, time.Minute); !errors.Is(err, ErrTokenStoreUnavailable) {
		t.Errorf("Save after Close = %v, want ErrTokenStoreUnavailable", err)
	}
}

func TestRedisTokenConfigErrors(t *testing.T) {
	c := redis.NewClient(&redis.Options{Addr: "127.0.0.1:1"})
	defer c.Close()
	for _, tc := range []struct {
		cfg   RedisTokenConfig
		field string
	}{
		{RedisTokenConfig{}, "Client"},
		{RedisTokenConfig{Client: c, Timeout: -1}, "Timeout"},
		{RedisTokenConfig{Client: c, BreakerDelay: -1}, "BreakerDelay"},
	} {
		_, err := NewRedisTokenStoreConfig(tc.cfg)
		if err == nil || !strings.Contains(err.Error(), tc.field) {
			t.Errorf("%+v: err = %v, want one naming %s", tc.cfg, err, tc.field)
		}
	}
}
