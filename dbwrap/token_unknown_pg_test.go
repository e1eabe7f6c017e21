package dbwrap

import (
	"context"
	"net/url"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/reqcanary/canary/internal/testenv"
	"github.com/reqcanary/canary/tenant"
)

// cutDialect is the PostgreSQL dialect, except that once armed, the next
// WritePosition cuts every connection to the primary (through a FaultProxy)
// just before it reads: the write has committed, its position cannot be
// read, as when the primary goes down right after a write.
type cutDialect struct {
	Dialect
	proxy *testenv.FaultProxy
	armed atomic.Bool
	cut   atomic.Int32 // positions reads cut
}

// cutKey marks the contexts of the writes whose position read may be cut
// (not the poller's).
type cutKey struct{}

func (d *cutDialect) WritePosition(ctx context.Context, q Querier) (uint64, error) {
	if ctx.Value(cutKey{}) != nil && d.armed.CompareAndSwap(true, false) {
		d.cut.Add(1)
		d.proxy.Set(testenv.ProxyCut)
		defer d.proxy.Set(testenv.ProxyPass)
	}
	return d.Dialect.WritePosition(ctx, q)
}

// lagSample keeps the poller on the dialect's own lag sample, so that only
// a write's position read can take the armed cut.
func (d *cutDialect) lagSample(ctx context.Context, q Querier) (uint64, error) {
	return d.Dialect.(lagSampler).lagSample(ctx, q)
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
// whose position is known, replaces it (for the request and in the token
// store; the Redis store's case is in redistoken), and an unknown position
// that no write replaces expires after TokenTTL.
func TestPGUnknownPositionReplacedByNextWrite(t *testing.T) {
	e := newPGEnv(t)
	proxy := testenv.NewFaultProxy(t, hostPort(t, e.primaryDSN))
	d := &cutDialect{Dialect: Postgres(), proxy: proxy}
	cfg := e.config()
	cfg.Primary = viaProxy(t, e.primaryDSN, proxy)
	cfg.Dialect = d
	cfg.MaxReplicaLag = time.Hour
	cfg.TokenTTL = time.Minute
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
	if r, err := Explain(req, db, "select 1"); err != nil || r.Reason != ReasonSticky || r.Token != "unknown" {
		t.Fatalf("after the write of unknown position: %v, %v; want the primary, sticky, token unknown", r, err)
	}
	if r, _ := Explain(tenant.NewContext(bg, user), db, "select 1"); r.Reason != ReasonSticky {
		t.Fatalf("the user's next request: %v; want sticky", r)
	}

	// The next write of the user, in the same request and in a new
	// one, records a known position: it replaces the unknown one.
	var err error
	for i := 0; i < 5; i++ { // the conn cut above may still be handed out once
		if _, err = db.ExecContext(req, "insert into "+tbl+" values (2)"); err == nil {
			break
		}
	}
	if err != nil {
		t.Fatal(err)
	}
	tok, ok := ConsistencyToken(req)
	if !ok || tok == formatLSN(positionUnknown) {
		t.Fatalf("the request's token after a known write is %q, %v; want a known position", tok, ok)
	}
	e.waitReplicated(t)
	caughtUp := func(ctx context.Context) bool {
		r, err := Explain(ctx, db, "select 1")
		return err == nil && r.Target == TargetReplica && r.Reason == ReasonCaughtUp
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

// An unknown position that no later write replaces expires after TokenTTL:
// the user's requests then read from the replica again.
func TestPGUnknownPositionExpires(t *testing.T) {
	e := newPGEnv(t)
	proxy := testenv.NewFaultProxy(t, hostPort(t, e.primaryDSN))
	d := &cutDialect{Dialect: Postgres(), proxy: proxy}
	cfg := e.config()
	cfg.Primary = viaProxy(t, e.primaryDSN, proxy)
	cfg.Dialect = d
	cfg.MaxReplicaLag = time.Hour
	cfg.TokenTTL = time.Second
	db := e.open(t, cfg)
	tbl := e.table(t, "id int")
	bg := context.WithValue(context.Background(), cutKey{}, true)
	user := tenant.Labels{Tenant: "acme", UserHash: strings.Repeat("8d", 16), Cohort: tenant.Stable}
	d.armed.Store(true)
	if _, err := db.ExecContext(tenant.NewContext(bg, user), "insert into "+tbl+" values (1)"); err != nil {
		t.Fatal(err)
	}
	if d.cut.Load() != 1 {
		t.Fatal("the position read was not cut")
	}
	start := time.Now()
	if r, _ := Explain(tenant.NewContext(bg, user), db, "select 1"); r.Reason != ReasonSticky {
		t.Fatalf("the user's next request: %v; want sticky", r)
	}
	within(t, 5*time.Second, "the unknown position expires", func() bool {
		r, err := Explain(tenant.NewContext(bg, user), db, "select 1")
		return err == nil && r.Target == TargetReplica && r.Reason == ReasonRead
	})
	if el := time.Since(start); el < 900*time.Millisecond {
		t.Errorf("the unknown position was gone after %v, before its TTL (1 s)", el)
	}
}

// within retries f every 10 ms until it returns true or d passes.
func within(t *testing.T, d time.Duration, what string, f func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !f() {
		if time.Now().After(deadline) {
			t.Fatalf("not within %v: %s", d, what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
