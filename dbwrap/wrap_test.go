package dbwrap

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"io"
	"os"
	"strings"
	"syscall"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/reqcanary/canary/tenant"
)

type fakeEnv struct {
	log     *fakeLog
	primary *fakeConnector
	replica *fakeConnector
	db      *sql.DB
}

func newFakeEnv(t *testing.T, minimal bool, cfg Config) *fakeEnv {
	t.Helper()
	log := &fakeLog{}
	e := &fakeEnv{
		log:     log,
		primary: &fakeConnector{server: "primary", minimal: minimal, log: log},
		replica: &fakeConnector{server: "replica", minimal: minimal, log: log},
	}
	db, err := OpenDB(Connectors{Primary: e.primary, Replicas: []driver.Connector{e.replica}}, cfg)
	if err != nil {
		t.Fatal(err)
	}
	e.db = db
	t.Cleanup(func() { db.Close() })
	if !cfg.DeferStart {
		waitPolled(t, db)
	}
	return e
}

// server runs query with QueryRowContext and returns the server column.
func (e *fakeEnv) server(t *testing.T, ctx context.Context, query string, args ...any) string {
	t.Helper()
	var s string
	if err := e.db.QueryRowContext(ctx, query, args...).Scan(&s); err != nil {
		t.Fatalf("%s: %v", query, err)
	}
	return s
}

func TestRoutingRules(t *testing.T) {
	e := newFakeEnv(t, false, Config{})
	ctx := context.Background()
	cases := []struct {
		ctx   context.Context
		query string
		want  string
	}{
		{ctx, "select 1", "replica"},
		{ctx, "with x as (select 1) select * from x", "replica"},
		{ctx, "insert into t values (1) returning id", "primary"},
		{ctx, "select * from t for update", "primary"},
		{ctx, "with d as (delete from t returning *) select * from d", "primary"},
		{ctx, "select nextval('s')", "primary"},
		{ctx, "/* canary:primary */ select 1", "primary"},
		{WithPrimary(ctx), "select 1", "primary"},
	}
	for _, c := range cases {
		if got := e.server(t, c.ctx, c.query); got != c.want {
			t.Errorf("%q went to %s, want %s", c.query, got, c.want)
		}
	}
	if _, err := e.db.ExecContext(ctx, "select 1"); err != nil {
		t.Fatal(err)
	}
	if last := e.log.all()[len(e.log.all())-1]; last != "primary:exec:select 1" {
		t.Errorf("Exec ran as %q, want on the primary", last)
	}
}

func TestExplainReasons(t *testing.T) {
	e := newFakeEnv(t, false, Config{})
	bg := context.Background()
	cases := []struct {
		ctx    context.Context
		query  string
		target Target
		reason string
	}{
		{bg, "select 1", TargetReplica, ReasonRead},
		{bg, "update t set a = 1 returning a", TargetPrimary, "returning"},
		{bg, "select * from t for share", TargetPrimary, "locking-clause"},
		{bg, "select pg_advisory_lock(1)", TargetPrimary, "session:advisory-lock"},
		{bg, "/* canary:primary */ select 1", TargetPrimary, ReasonHint},
		{WithPrimary(bg), "select 1", TargetPrimary, ReasonWithPrimary},
		{WithConsistencyToken(bg, "0/10"), "select 1", TargetPrimary, ReasonTokenAhead}, // no dialect: replica positions are never known
	}
	for _, c := range cases {
		r, err := Explain(c.ctx, e.db, c.query)
		if err != nil {
			t.Fatal(err)
		}
		if r.Target != c.target || r.Reason != c.reason {
			t.Errorf("Explain(%q) = %v, want %v (%s)", c.query, r, c.target, c.reason)
		}
	}
	plain, _ := sql.Open("pgx", "postgres://127.0.0.1:1/x")
	defer plain.Close()
	if _, err := Explain(bg, plain, "select 1"); !errors.Is(err, ErrNotDBWrap) {
		t.Errorf("Explain on a plain DB: %v, want ErrNotDBWrap", err)
	}
}

func TestNoDialectStickyAfterWrite(t *testing.T) {
	e := newFakeEnv(t, false, Config{})
	req := tenant.NewContext(context.Background(), tenant.Labels{Tenant: "acme"})
	if got := e.server(t, req, "select 1"); got != "replica" {
		t.Fatalf("read before the write went to %s", got)
	}
	if _, err := e.db.ExecContext(req, "insert into t values (1)"); err != nil {
		t.Fatal(err)
	}
	if got := e.server(t, req, "select 1"); got != "primary" {
		t.Errorf("read after the request's write went to %s, want the primary", got)
	}
	if tok, ok := ConsistencyToken(req); !ok || tok != formatLSN(positionUnknown) {
		t.Errorf("ConsistencyToken = %q, %v; want the unknown position", tok, ok)
	}
	if r, err := Explain(req, e.db, "select 1"); err != nil || r.Target != TargetPrimary || r.Token != "unknown" ||
		strings.Contains(r.String(), "FFFFFFFF") {
		t.Errorf("Explain after a write without a dialect = %v, %v; want the primary with token unknown", r, err)
	}
	other := tenant.NewContext(context.Background(), tenant.Labels{Tenant: "acme"})
	if got := e.server(t, other, "select 1"); got != "replica" {
		t.Errorf("another request's read went to %s, want the replica", got)
	}
	// The same user's next request sticks to the primary too.
	user := tenant.Labels{Tenant: "acme", UserHash: strings.Repeat("12", 16)}
	if _, err := e.db.ExecContext(tenant.NewContext(context.Background(), user), "delete from t"); err != nil {
		t.Fatal(err)
	}
	if got := e.server(t, tenant.NewContext(context.Background(), user), "select 1"); got != "primary" {
		t.Errorf("the same user's next request read from %s, want the primary", got)
	}
}

func TestCustomArgumentTypesReachTheDriversChecker(t *testing.T) {
	// otelsql#117: the wrapper must not replace the driver's own checker by
	// the default converter, which would reject fakeType.
	e := newFakeEnv(t, false, Config{})
	var server, arg string
	if err := e.db.QueryRow("select $1", fakeType{"x"}).Scan(&server, &arg); err != nil {
		t.Fatal(err)
	}
	if arg != "fake:x" {
		t.Errorf("argument arrived as %q, want the driver's conversion", arg)
	}
	st, err := e.db.Prepare("select $1")
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	if err := st.QueryRow(fakeType{"y"}).Scan(&server, &arg); err != nil || arg != "fake:y" {
		t.Errorf("prepared: %q, %v; want fake:y", arg, err)
	}
}

func TestMinimalDriverFallbacks(t *testing.T) {
	// A driver with neither ExecerContext nor QueryerContext: database/sql
	// falls back to preparing through the wrapper, which still routes.
	e := newFakeEnv(t, true, Config{})
	var server string
	var n int64
	if err := e.db.QueryRow("select $1", int32(5)).Scan(&server, &n); err != nil {
		t.Fatal(err)
	}
	if server != "replica" || n != 5 {
		t.Errorf("got %s, %d; want replica, 5 (default conversion of int32)", server, n)
	}
	if _, err := e.db.Exec("insert into t values ($1)", 1); err != nil {
		t.Fatal(err)
	}
	calls := e.log.all()
	if last := calls[len(calls)-1]; last != "primary:stmt-exec:insert into t values ($1)" {
		t.Errorf("exec ran as %q", last)
	}
	if _, err := e.db.Query("select $1", fakeType{"x"}); err == nil {
		t.Error("a driver without a checker accepted a custom type")
	}
	// Read-only transactions need ConnBeginTx: database/sql's error.
	if _, err := e.db.BeginTx(context.Background(), &sql.TxOptions{ReadOnly: true}); err == nil {
		t.Error("read-only transaction on a driver without ConnBeginTx")
	}
}

func TestRowsOptionalInterfacesReachDatabaseSQL(t *testing.T) {
	e := newFakeEnv(t, false, Config{})
	rows, err := e.db.Query("select 1")
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	types, err := rows.ColumnTypes()
	if err != nil {
		t.Fatal(err)
	}
	if got := types[0].DatabaseTypeName(); got != "FAKETEXT" {
		t.Errorf("DatabaseTypeName = %q, want the driver's", got)
	}
	// Write rows are wrapped: they forward too.
	wr, err := e.db.Query("insert into t values (1) returning id")
	if err != nil {
		t.Fatal(err)
	}
	defer wr.Close()
	if types, err = wr.ColumnTypes(); err != nil || types[0].DatabaseTypeName() != "FAKETEXT" || types[0].ScanType().Kind().String() != "string" {
		t.Errorf("write rows column types: %v, %v", types, err)
	}
}

func TestTransactionsAndPins(t *testing.T) {
	e := newFakeEnv(t, false, Config{})
	ctx := context.Background()
	tx, err := e.db.BeginTx(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	var s string
	if err := tx.QueryRow("select 1").Scan(&s); err != nil || s != "primary" {
		t.Errorf("read in a transaction went to %s (%v)", s, err)
	}
	tx.Commit()
	ro, err := e.db.BeginTx(ctx, &sql.TxOptions{ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	if err := ro.QueryRow("select 1").Scan(&s); err != nil || s != "replica" {
		t.Errorf("read in a read-only transaction went to %s (%v)", s, err)
	}
	ro.Rollback()
	// A manual BEGIN through Exec pins the conn.
	c, err := e.db.Conn(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := c.ExecContext(ctx, "begin"); err != nil {
		t.Fatal(err)
	}
	if err := c.QueryRowContext(ctx, "select 1").Scan(&s); err != nil || s != "primary" {
		t.Errorf("read after a manual BEGIN went to %s (%v)", s, err)
	}
	// Raw reaches the primary's inner conn.
	err = c.Raw(func(dc any) error {
		inner := dc.(interface{ Raw() driver.Conn }).Raw()
		if _, ok := inner.(*fullConn); !ok {
			t.Errorf("Raw() = %T", inner)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

func TestReplicaConnErrorFailsOver(t *testing.T) {
	e := newFakeEnv(t, false, Config{})
	if got := e.server(t, context.Background(), "select 1"); got != "replica" {
		t.Fatalf("went to %s", got)
	}
	var refused error = syscall.ECONNREFUSED
	e.replica.fail.Store(&refused)
	for i := 0; i < 5; i++ {
		if got := e.server(t, context.Background(), "select 1"); got != "primary" {
			t.Errorf("read %d with the replica failing went to %s", i, got)
		}
	}
	r, _ := Explain(context.Background(), e.db, "select 1")
	if r.Reason != ReasonNoHealthyReplica {
		t.Errorf("Explain after the failure = %v, want %s", r, ReasonNoHealthyReplica)
	}
}

func TestPrimaryUnavailableFailsFast(t *testing.T) {
	e := newFakeEnv(t, false, Config{})
	var refused error = syscall.ECONNREFUSED
	e.primary.fail.Store(&refused)
	for i := 0; i < 2; i++ {
		_, err := e.db.Exec("insert into t values (1)")
		if !errors.Is(err, ErrPrimaryUnavailable) || !errors.Is(err, syscall.ECONNREFUSED) {
			t.Errorf("write %d: %v, want ErrPrimaryUnavailable wrapping the driver's error", i, err)
		}
	}
	if got := e.server(t, context.Background(), "select 1"); got != "replica" {
		t.Errorf("read with the primary down went to %s", got)
	}
	if err := e.db.Ping(); !errors.Is(err, ErrPrimaryUnavailable) {
		t.Errorf("Ping with the primary down: %v, want ErrPrimaryUnavailable", err)
	}
	e.primary.fail.Store(nil)
	if err := e.db.Ping(); err == nil {
		t.Error("Ping right after the failure did not fail fast")
	}
}

func TestNewConnectorCloseStopsPoller(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	log := &fakeLog{}
	c, err := NewConnector(Connectors{
		Primary:  &fakeConnector{server: "primary", log: log},
		Replicas: []driver.Connector{&fakeConnector{server: "replica", log: log}},
	}, Config{})
	if err != nil {
		t.Fatal(err)
	}
	if err := c.(io.Closer).Close(); err != nil {
		t.Fatal(err)
	}
	if err := c.(io.Closer).Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
}

func TestConfigErrorsNameTheField(t *testing.T) {
	cases := []struct {
		cfg   Config
		field string
	}{
		{Config{Primary: "x"}, "DriverName"},
		{Config{DriverName: "pgx"}, "Primary"},
		{Config{DriverName: "nope", Primary: "x"}, "DriverName"},
		{Config{DriverName: "pgx", Primary: "postgres://a/b", Replicas: []string{""}}, "Replicas"},
		{Config{DriverName: "pgx", Primary: "postgres://a/b", PollInterval: -1}, "PollInterval"},
		{Config{DriverName: "pgx", Primary: "postgres://a/b", TokenTTL: -1}, "TokenTTL"},
	}
	for _, c := range cases {
		_, err := Open(c.cfg)
		if !errors.Is(err, ErrInvalidConfig) || !strings.Contains(err.Error(), c.field) {
			t.Errorf("Open(%+v) = %v, want an ErrInvalidConfig naming %s", c.cfg, err, c.field)
		}
	}
	if _, err := NewConnector(Connectors{}, Config{}); !errors.Is(err, ErrInvalidConfig) {
		t.Errorf("NewConnector without a primary: %v", err)
	}
}

func TestCloseStopsPollerAndInnerConns(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	log := &fakeLog{}
	p := &fakeConnector{server: "primary", log: log}
	r := &fakeConnector{server: "replica", log: log}
	db, err := OpenDB(Connectors{Primary: p, Replicas: []driver.Connector{r}}, Config{})
	if err != nil {
		t.Fatal(err)
	}
	waitPolled(t, db)
	for i := 0; i < 10; i++ {
		db.Exec("insert into t values (1)")
		db.QueryRow("select 1").Scan(new(string))
	}
	if p.open.Load() == 0 || r.open.Load() == 0 {
		t.Fatal("no inner connections were opened")
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	if n, m := p.open.Load(), r.open.Load(); n != 0 || m != 0 {
		t.Errorf("after Close: %d primary and %d replica inner conns still open", n, m)
	}
}

// lapsedCtx is a context whose deadline has passed while its Err is still
// nil: the moment between a dialer timing out at the deadline and the
// context's timer marking it done.
type lapsedCtx struct{ context.Context }

func (lapsedCtx) Deadline() (time.Time, bool) { return time.Now().Add(-time.Millisecond), true }

// A connection to the primary that fails because the caller's deadline
// passed is the caller's failure: it answers context.DeadlineExceeded and is
// not stored as the primary's failure, which would fail the next callers
// fast for PrimaryRetryInterval (seen in CI: a read with a 2 ms deadline
// made the next statement, without one, fail with "connect to primary: i/o
// timeout").
func TestPrimaryDialAtCallersDeadlineIsNotTheServers(t *testing.T) {
	e := newFakeEnv(t, false, Config{PrimaryRetryInterval: time.Minute})
	dialTimeout := error(os.ErrDeadlineExceeded)
	e.primary.fail.Store(&dialTimeout)
	_, err := e.db.ExecContext(lapsedCtx{context.Background()}, "insert into t values (1)")
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("insert at the caller's deadline: %v, want context.DeadlineExceeded", err)
	}
	e.primary.fail.Store(nil)
	if got := e.server(t, WithPrimary(context.Background()), "select 1"); got != "primary" {
		t.Fatalf("the next statement ran on %q, want the primary", got)
	}
}

// The same on a replica: a read whose connection fails at the caller's
// deadline leaves the replica in service.
func TestReplicaDialAtCallersDeadlineKeepsReplica(t *testing.T) {
	e := newFakeEnv(t, false, Config{RecoverAfter: time.Hour})
	dialTimeout := error(os.ErrDeadlineExceeded)
	e.replica.fail.Store(&dialTimeout)
	var s string
	if err := e.db.QueryRowContext(lapsedCtx{context.Background()}, "select 1").Scan(&s); err == nil {
		t.Fatalf("a read whose connection failed answered %q", s)
	}
	e.replica.fail.Store(nil)
	if got := e.server(t, context.Background(), "select 1"); got != "replica" {
		t.Fatalf("the next read ran on %q, want the replica (still in service)", got)
	}
}
