package fxmodule_test

import (
	"context"
	"database/sql"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/jmoiron/sqlx"
	"github.com/redis/go-redis/v9"
	"go.opentelemetry.io/otel/metric"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"
	"go.uber.org/fx"
	"go.uber.org/fx/fxtest"
	"google.golang.org/grpc"
	_ "modernc.org/sqlite"

	_ "github.com/jackc/pgx/v5/stdlib"

	"github.com/reqcanary/canary"
	"github.com/reqcanary/canary/dbwrap"
	"github.com/reqcanary/canary/dbwrap/redistoken"
	"github.com/reqcanary/canary/fallback"
	"github.com/reqcanary/canary/fxmodule"
	"github.com/reqcanary/canary/fxmodule/fxredis"
	"github.com/reqcanary/canary/internal/testenv"
	"github.com/reqcanary/canary/tenant"
)

// provided is everything the module provides, as an application asks for it.
type provided struct {
	fx.In
	Engine       *canary.Engine
	Middleware   func(http.Handler) http.Handler   `name:"canary"`
	Group        []func(http.Handler) http.Handler `group:"canary.middleware"`
	UnaryServer  grpc.UnaryServerInterceptor       `name:"canary"`
	StreamServer grpc.StreamServerInterceptor      `name:"canary"`
	UnaryClient  grpc.UnaryClientInterceptor       `name:"canary"`
	StreamClient grpc.StreamClientInterceptor      `name:"canary"`
	Fallbacks    fxmodule.Fallbacks
}

// cohortOf sends a request with headers (name, value pairs) from peer
// through mw and returns the labels the handler saw.
func cohortOf(t *testing.T, mw func(http.Handler) http.Handler, peer string, kv ...string) tenant.Labels {
	t.Helper()
	var got tenant.Labels
	h := mw(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got, _ = tenant.FromContext(r.Context())
	}))
	req := httptest.NewRequest("GET", "/", nil)
	req.RemoteAddr = peer
	for i := 0; i+1 < len(kv); i += 2 {
		req.Header.Set(kv[i], kv[i+1])
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	if rec.Code != http.StatusOK {
		t.Fatalf("status %d: %s", rec.Code, rec.Body)
	}
	return got
}

func TestModuleWithoutConfig(t *testing.T) {
	var p provided
	app := fxtest.New(t, fxmodule.Module, fx.Populate(&p))
	app.RequireStart()
	defer app.RequireStop()

	if p.Engine == nil || p.UnaryServer == nil || p.StreamServer == nil || p.UnaryClient == nil || p.StreamClient == nil {
		t.Fatalf("missing values: %+v", p)
	}
	if len(p.Group) != 1 || len(p.Fallbacks) != 0 {
		t.Errorf("group has %d middleware, fallbacks %d; want 1 and 0", len(p.Group), len(p.Fallbacks))
	}
	// The default plan: nobody canary, overrides honoured from loopback.
	if l := cohortOf(t, p.Middleware, "192.0.2.1:1", tenant.HeaderTenant, "acme"); l.Cohort != tenant.Stable || l.Reason != tenant.ReasonPercent {
		t.Errorf("default plan: %+v, want stable by percent", l)
	}
	if l := cohortOf(t, p.Group[0], "127.0.0.1:1", tenant.HeaderTenant, "acme", "X-Canary", "canary"); l.Cohort != tenant.Canary {
		t.Errorf("the grouped middleware ignored a loopback override: %+v", l)
	}
	if _, err := p.Fallbacks.Transport("pricing"); err == nil || !strings.Contains(err.Error(), `"pricing"`) {
		t.Errorf("unknown fallback: %v, want an error naming it", err)
	}
}

// A plan file, a SQLite database (writer + read-only pool) and a fallback
// transport; the optional logger and meter provider are used; everything is
// closed on stop.
func TestModuleWithConfig(t *testing.T) {
	dir := t.TempDir()
	planFile := filepath.Join(dir, "plan.yaml")
	if err := os.WriteFile(planFile, []byte("version: 3\ntenants:\n  canary: [acme]\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	dbFile := "file:" + filepath.Join(dir, "app.db")
	// The read-only pool needs the file to exist when dbwrap first checks it.
	setup, err := sql.Open("sqlite", dbFile)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := setup.Exec("CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT)"); err != nil {
		t.Fatal(err)
	}
	setup.Close()
	stable := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "stable") }))
	defer stable.Close()
	canarySrv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "canary") }))
	defer canarySrv.Close()
	reader := sdkmetric.NewManualReader()
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(reader))
	defer mp.Shutdown(context.Background())

	var (
		p    provided
		db   *sql.DB
		xdb  *sqlx.DB
		logs strings.Builder
	)
	app := fxtest.New(t,
		fxmodule.Module,
		fx.Supply(fxmodule.Config{
			PlanFile: planFile,
			DB: &dbwrap.Config{
				DriverName: "sqlite",
				Primary:    dbFile + "?_pragma=journal_mode(WAL)&_pragma=busy_timeout(5000)",
				Replicas:   []string{dbFile + "?mode=ro&_pragma=busy_timeout(5000)"},
			},
			SQLXDriverName: "sqlite3",
			Fallback:       map[string]fallback.Config{"pricing": {Stable: stable.URL, Canary: canarySrv.URL}},
		}),
		fx.Provide(func() metric.MeterProvider { return mp }),
		fx.Provide(func() *slog.Logger { return slog.New(slog.NewTextHandler(&logs, nil)) }),
		fx.Populate(&p, &db, &xdb),
	)
	app.RequireStart()

	if got := p.Engine.Plan().Version; got != 3 {
		t.Errorf("plan version %d, want 3 from the file", got)
	}
	l := cohortOf(t, p.Middleware, "192.0.2.1:1", tenant.HeaderTenant, "acme", "X-Canary", "stable")
	if l.Cohort != tenant.Canary || l.Reason != tenant.ReasonTenantCanary {
		t.Errorf("acme: %+v, want canary by the plan file's tenant list", l)
	}
	// The untrusted override was counted on the application's meter provider.
	var rm metricdata.ResourceMetrics
	if err := reader.Collect(context.Background(), &rm); err != nil {
		t.Fatal(err)
	}
	if !hasMetric(rm, "canary.override.untrusted") {
		t.Errorf("canary.override.untrusted is not on the application's meter provider")
	}

	// The fallback transport sends acme's requests to the canary.
	rt, err := p.Fallbacks.Transport("pricing")
	if err != nil {
		t.Fatal(err)
	}
	req := httptest.NewRequest("GET", "http://pricing/", nil).WithContext(tenant.NewContext(context.Background(), l))
	resp, err := rt.RoundTrip(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if string(body) != "canary" || resp.Header.Get(fallback.HeaderServedBy) != "canary" {
		t.Errorf("pricing for acme: %q served by %q, want the canary", body, resp.Header.Get(fallback.HeaderServedBy))
	}

	// sqlx over dbwrap: writes to the writer, reads from the read-only pool.
	ctx := context.Background()
	if _, err := xdb.ExecContext(ctx, xdb.Rebind("INSERT INTO t (v) VALUES (?)"), "x"); err != nil {
		t.Fatal(err)
	}
	// The replica serves reads once the poller, started with the
	// application, has found it fit.
	wctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	if err := dbwrap.WaitPolled(wctx, db); err != nil {
		t.Fatal(err)
	}
	route, err := dbwrap.Explain(ctx, db, "SELECT v FROM t")
	if err != nil || route.Target != dbwrap.TargetReplica {
		t.Errorf("a fresh read goes to %v (%v), want the read-only pool", route, err)
	}
	var v string
	if err := xdb.GetContext(ctx, &v, "SELECT v FROM t"); err != nil || v != "x" {
		t.Errorf("read %q, %v", v, err)
	}

	app.RequireStop()
	if err := db.Ping(); err == nil || !strings.Contains(err.Error(), "closed") {
		t.Errorf("the database is still open after stop: %v", err)
	}
}

func hasMetric(rm metricdata.ResourceMetrics, name string) bool {
	for _, sm := range rm.ScopeMetrics {
		for _, m := range sm.Metrics {
			if m.Name == name {
				return true
			}
		}
	}
	return false
}

func TestModuleErrors(t *testing.T) {
	plan := canary.Plan{}
	tests := []struct {
		name  string
		opts  []fx.Option
		want  string
		isErr error
	}{
		{"plan and plan file", []fx.Option{fx.Supply(fxmodule.Config{PlanFile: "x.yaml", Plan: &plan}), fx.Invoke(func(*canary.Engine) {})},
			"Config.PlanFile and Config.Plan", nil},
		{"missing plan file", []fx.Option{fx.Supply(fxmodule.Config{PlanFile: filepath.Join(t.TempDir(), "none.yaml")}), fx.Invoke(func(*canary.Engine) {})},
			"none.yaml", nil},
		{"no database", []fx.Option{fx.Invoke(func(*sqlx.DB) {})}, "Config.DB is nil", fxmodule.ErrNoDB},
		{"bad database", []fx.Option{fx.Supply(fxmodule.Config{DB: &dbwrap.Config{}}), fx.Invoke(func(*sql.DB) {})},
			"Config.DB: dbwrap: invalid config", dbwrap.ErrInvalidConfig},
		{"bad fallback", []fx.Option{fx.Supply(fxmodule.Config{Fallback: map[string]fallback.Config{"pricing": {}}}), fx.Invoke(func(fxmodule.Fallbacks) {})},
			`Config.Fallback["pricing"]: fallback: Config.Stable`, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			app := fx.New(append([]fx.Option{fx.NopLogger, fxmodule.Module}, tt.opts...)...)
			err := app.Err()
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("error %v, want one saying %q", err, tt.want)
			}
			if tt.isErr != nil && !errors.Is(err, tt.isErr) {
				t.Errorf("error %v does not match %v", err, tt.isErr)
			}
		})
	}
}

// On the real PostgreSQL pair, with the application's Redis through
// fxredis.Module: the sqlx DB
// binds $1 placeholders, writes go to the primary, and a labelled write
// leaves the user's read-your-writes token in Redis.
func TestModulePostgresRedis(t *testing.T) {
	primary, replica, redisAddr := testenv.PGPrimary(t), testenv.PGReplica(t), testenv.RedisAddr(t)
	testenv.LockReplicaShared(t) // dbwrap tests stop the replica under an exclusive hold
	rdb := redis.NewClient(&redis.Options{Addr: redisAddr})
	defer rdb.Close()

	var xdb *sqlx.DB
	var eng *canary.Engine
	app := fxtest.New(t,
		fxmodule.Module,
		fxredis.Module,
		fx.Supply(fxmodule.Config{DB: &dbwrap.Config{DriverName: "pgx", Primary: primary, Replicas: []string{replica}}}),
		fx.Supply(rdb),
		fx.Populate(&xdb, &eng),
	)
	app.RequireStart()
	defer app.RequireStop()

	if got := xdb.Rebind("?"); got != "$1" {
		t.Errorf("sqlx binds %q, want $1 for pgx", got)
	}
	ctx := context.Background()
	var inRecovery bool
	if err := xdb.QueryRowxContext(dbwrap.WithPrimary(ctx), "select pg_is_in_recovery()").Scan(&inRecovery); err != nil || inRecovery {
		t.Fatalf("a primary statement ran on a server in recovery (%v)", err)
	}

	// A labelled write saves the user's position in Redis.
	l := cohortOf(t, eng.Middleware, "192.0.2.1:1", tenant.HeaderTenant, "fxmodule-test", tenant.HeaderUser, "u1")
	lctx := tenant.NewContext(ctx, l)
	if _, err := xdb.ExecContext(lctx, "create table if not exists fxmodule_t (id int)"); err != nil {
		t.Fatal(err)
	}
	if _, err := xdb.ExecContext(lctx, "insert into fxmodule_t values (1)"); err != nil {
		t.Fatal(err)
	}
	keys, err := rdb.Keys(ctx, redistoken.DefaultPrefix+"*").Result()
	if err != nil || len(keys) == 0 {
		t.Errorf("no token in Redis after a labelled write (%v)", err)
	}
}

// TestModuleTransport checks that the provided transport writes the calling
// request's labels onto outgoing requests and never the raw user id.
func TestModuleTransport(t *testing.T) {
	var got http.Header
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got = r.Header.Clone()
	}))
	defer srv.Close()

	var p struct {
		fx.In
		Transport http.RoundTripper `name:"canary"`
	}
	app := fxtest.New(t, fxmodule.Module, fx.Populate(&p))
	app.RequireStart()
	defer app.RequireStop()

	ctx := tenant.NewContext(context.Background(), tenant.Labels{
		Tenant: "acme", UserHash: strings.Repeat("ab", 16), Bucket: 12, Cohort: tenant.Canary, Reason: tenant.ReasonTenantCanary,
	})
	req, err := http.NewRequestWithContext(ctx, "GET", srv.URL, nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set(tenant.HeaderUser, "alice@example.com")
	resp, err := (&http.Client{Transport: p.Transport}).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if g := got.Get(tenant.HeaderTenant); g != "acme" {
		t.Errorf("%s = %q, want acme", tenant.HeaderTenant, g)
	}
	if g := got.Get(tenant.HeaderOverride); g != "canary" {
		t.Errorf("%s = %q, want canary", tenant.HeaderOverride, g)
	}
	if g := got.Get(tenant.HeaderUser); g != "" {
		t.Errorf("raw user id sent downstream: %s = %q", tenant.HeaderUser, g)
	}
	if req.Header.Get(tenant.HeaderUser) != "alice@example.com" {
		t.Error("the transport changed the caller's request")
	}
}
