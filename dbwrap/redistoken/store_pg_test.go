package redistoken

import (
	"context"
	"fmt"
	"net/url"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/reqcanary/canary/dbwrap"
	"github.com/reqcanary/canary/internal/testenv"
	"github.com/reqcanary/canary/tenant"
)

// Two instances share a Redis token store: the user's write through one is
// read by the user's next request on the other, while the replica is paused.
func TestPGRedisTokenStoreAcrossInstances(t *testing.T) {
	e := newPGEnv(t, true)
	c := redisClient(t)
	store := mustNew(t, c, fmt.Sprintf("canary:test:redistoken:%d:", time.Now().UnixNano()))
	closeStore(t, store)
	cfg := e.config()
	cfg.MaxReplicaLag = time.Hour
	cfg.TokenStore = store
	a, b := e.open(t, cfg), e.open(t, cfg)
	tbl := e.table(t, "id int")
	e.pauseReplay(t)

	bg := context.Background()
	user := tenant.Labels{Tenant: "acme", UserHash: strings.Repeat("9a", 16)}
	if _, err := a.ExecContext(tenant.NewContext(bg, user), "insert into "+tbl+" values (1)"); err != nil {
		t.Fatal(err)
	}
	var n int
	if err := b.QueryRowContext(tenant.NewContext(bg, user), "select count(*) from "+tbl).Scan(&n); err != nil || n != 1 {
		t.Errorf("the user's next request on the other instance sees %d rows (err %v), want 1", n, err)
	}
	anon := tenant.NewContext(bg, tenant.Labels{Tenant: "acme"})
	if err := b.QueryRowContext(anon, "select count(*) from "+tbl).Scan(&n); err != nil || n != 0 {
		t.Errorf("a request without the user sees %d rows (err %v), want 0 from the paused replica", n, err)
	}
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
	e := newPGEnv(t, true)
	proxy := testenv.NewFaultProxy(t, testenv.RedisAddr(t))
	faulty := redis.NewClient(&redis.Options{Addr: proxy.Addr()})
	t.Cleanup(func() { faulty.Close() })
	direct := redisClient(t)
	prefix := fmt.Sprintf("canary:test:redistoken:outage:%d:", time.Now().UnixNano())
	storeA := mustNew(t, faulty, prefix) // the defaults
	closeStore(t, storeA)
	storeB := mustNew(t, direct, prefix)
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

// cutDialect is dbwrap's PostgreSQL dialect, except that once armed, the
// next WritePosition of a write (a context marked with cutKey) cuts every
// connection to the primary (through a FaultProxy) just before it reads:
// the write has committed, its position cannot be read, as when the primary
// goes down right after a write.
//
// The poller's calls (contexts without cutKey) read the primary's flushed
// position, the lag sample dbwrap's own PostgreSQL dialect gives its poller
// (an unexported method a wrapper from this package cannot forward): the
// insert position may stay ahead of anything the replica can replay on an
// idle primary.
type cutDialect struct {
	dbwrap.Dialect
	proxy *testenv.FaultProxy
	armed atomic.Bool
	cut   atomic.Int32 // positions reads cut
}

// cutKey marks the contexts of the writes whose position read may be cut
// (not the poller's).
type cutKey struct{}

func (d *cutDialect) WritePosition(ctx context.Context, q dbwrap.Querier) (uint64, error) {
	if ctx.Value(cutKey{}) == nil {
		return flushPosition(ctx, q)
	}
	if d.armed.CompareAndSwap(true, false) {
		d.cut.Add(1)
		d.proxy.Set(testenv.ProxyCut)
		defer d.proxy.Set(testenv.ProxyPass)
	}
	return d.Dialect.WritePosition(ctx, q)
}

// flushPosition reads the primary's flushed WAL position.
func flushPosition(ctx context.Context, q dbwrap.Querier) (uint64, error) {
	row, err := q.QueryRow(ctx, "SELECT (pg_current_wal_flush_lsn() - '0/0'::pg_lsn)::bigint")
	if err != nil {
		return 0, err
	}
	if len(row) != 1 {
		return 0, fmt.Errorf("flush position: got %d columns", len(row))
	}
	v, ok := row[0].(int64)
	if !ok {
		return 0, fmt.Errorf("flush position: got %T", row[0])
	}
	return uint64(v), nil
}

// viaProxy returns dsn with its host:port replaced by the proxy's.
func viaProxy(t *testing.T, dsn string, p *testenv.FaultProxy) string {
	t.Helper()
	u, err := url.Parse(dsn)
	if err != nil {
		t.Fatal(err)
	}
	u.Host = p.Addr()
	return u.String()
}

// hostPort returns the host:port of a postgres:// DSN.
func hostPort(t *testing.T, dsn string) string {
	t.Helper()
	u, err := url.Parse(dsn)
	if err != nil {
		t.Fatal(err)
	}
	return u.Host
}

// A write whose position cannot be read (the primary's connection is cut
// right after it) leaves the unknown position, which sends the user's reads
// to the primary. It must not pin the user there: the user's next write,
// whose position is known, replaces it, for the request and in the Redis
// store (dbwrap's test of the same name covers its memory store).
func TestPGUnknownPositionReplacedByNextWrite(t *testing.T) {
	e := newPGEnv(t, false)
	proxy := testenv.NewFaultProxy(t, hostPort(t, e.primaryDSN))
	d := &cutDialect{Dialect: dbwrap.Postgres(), proxy: proxy}
	cfg := e.config()
	cfg.Primary = viaProxy(t, e.primaryDSN, proxy)
	cfg.Dialect = d
	cfg.MaxReplicaLag = time.Hour
	cfg.TokenTTL = time.Minute
	store := mustNew(t, redisClient(t), fmt.Sprintf("canary:test:redistoken:unknown:%d:", time.Now().UnixNano()))
	closeStore(t, store)
	cfg.TokenStore = store
	db := e.open(t, cfg)
	tbl := e.table(t, "id int")
	bg := context.WithValue(context.Background(), cutKey{}, true)
	user := tenant.Labels{Tenant: "acme", UserHash: strings.Repeat("7c", 16), Cohort: tenant.Stable}

	req := tenant.NewContext(bg, user)
	d.armed.Store(true)
	if _, err := db.ExecContext(req, "insert into "+tbl+" values (1)"); err != nil {
		t.Fatalf("the write itself failed: %v", err)
	}
	if d.cut.Load() != 1 {
		t.Fatal("the position read was not cut")
	}
	if r, err := dbwrap.Explain(req, db, "select 1"); err != nil || r.Reason != dbwrap.ReasonSticky || r.Token != "unknown" {
		t.Fatalf("after the write of unknown position: %v, %v; want the primary, sticky, token unknown", r, err)
	}
	if r, _ := dbwrap.Explain(tenant.NewContext(bg, user), db, "select 1"); r.Reason != dbwrap.ReasonSticky {
		t.Fatalf("the user's next request: %v; want sticky", r)
	}

	// The next write of the user, in the same request and in a new one,
	// records a known position: it replaces the unknown one.
	var err error
	for i := 0; i < 5; i++ { // the conn cut above may still be handed out once
		if _, err = db.ExecContext(req, "insert into "+tbl+" values (2)"); err == nil {
			break
		}
	}
	if err != nil {
		t.Fatal(err)
	}
	if tok, ok := dbwrap.ConsistencyToken(req); !ok || tok == "FFFFFFFF/FFFFFFFF" {
		t.Fatalf("the request's token after a known write is %q, %v; want a known position", tok, ok)
	}
	e.waitReplicated(t)
	caughtUp := func(ctx context.Context) bool {
		r, err := dbwrap.Explain(ctx, db, "select 1")
		return err == nil && r.Target == dbwrap.TargetReplica && r.Reason == dbwrap.ReasonCaughtUp
	}
	// The poller sees the replica's position within a few polls (50 ms).
	within(t, 3*time.Second, "the request's reads go to the caught-up replica", func() bool { return caughtUp(req) })
	within(t, 3*time.Second, "the user's next requests read from the caught-up replica", func() bool {
		return caughtUp(tenant.NewContext(bg, user))
	})
	var n int
	if err := db.QueryRowContext(tenant.NewContext(bg, user), "select count(*) from "+tbl).Scan(&n); err != nil || n != 2 {
		t.Errorf("the user's next request sees %d rows (err %v), want 2", n, err)
	}
}
