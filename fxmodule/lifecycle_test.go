package fxmodule_test

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"go.uber.org/fx"
	"go.uber.org/fx/fxtest"
	"go.uber.org/goleak"

	"github.com/reqcanary/canary"
	"github.com/reqcanary/canary/dbwrap"
	"github.com/reqcanary/canary/fleetswitch/redisswitch"
	"github.com/reqcanary/canary/fxmodule"
	"github.com/reqcanary/canary/internal/testenv"
)

// leakEnv is what the lifecycle tests share: a plan file, the real
// PostgreSQL pair under an application_name of the test's own, Redis with a
// fleet prefix of the test's own, and plain pools to count what the module
// left behind on each server.
type leakEnv struct {
	planFile         string
	app              string // application_name of the module's connections
	primary, replica string // DSNs with app
	prefix           string // fleet key prefix
	rdb              *redis.Client
	checkPrimary     *sql.DB
	checkReplica     *sql.DB
}

func newLeakEnv(t *testing.T) *leakEnv {
	t.Helper()
	primary, replica, redisAddr := testenv.PGPrimary(t), testenv.PGReplica(t), testenv.RedisAddr(t)
	testenv.LockReplicaShared(t)
	id := rand.Uint64()
	e := &leakEnv{
		planFile: filepath.Join(t.TempDir(), "plan.yaml"),
		app:      fmt.Sprintf("fxmodule_lifecycle_%x", id),
		prefix:   fmt.Sprintf("canary-test:fxmodule:%x:", id),
		rdb:      redis.NewClient(&redis.Options{Addr: redisAddr}),
	}
	t.Cleanup(func() {
		e.rdb.Del(context.Background(), e.prefix+"kill-switch")
		e.rdb.Close()
	})
	if err := os.WriteFile(e.planFile, []byte("version: 1\ntenants:\n  canary: [acme]\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	e.primary = primary + "&application_name=" + e.app
	e.replica = replica + "&application_name=" + e.app
	var err error
	if e.checkPrimary, err = sql.Open("pgx", primary); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { e.checkPrimary.Close() })
	if e.checkReplica, err = sql.Open("pgx", replica); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { e.checkReplica.Close() })
	// Open the check pools' connections now, so that goleak.IgnoreCurrent
	// taken after this covers their goroutines.
	e.backends(t, e.checkPrimary)
	e.backends(t, e.checkReplica)
	return e
}

// options are the module and its configuration: a watched plan file, the
// guard, the fleet's switch on Redis and the dbwrap database with a replica
// (polled every 20ms).
func (e *leakEnv) options() []fx.Option {
	return []fx.Option{
		fxmodule.Module,
		fx.Supply(fxmodule.Config{
			PlanFile: e.planFile,
			EngineOptions: []canary.Option{
				canary.WithPlanPollInterval(10 * time.Millisecond),
				canary.WithGuard(canary.GuardConfig{Enabled: true}),
				canary.WithFleetSwitch(redisswitch.New(e.rdb), canary.FleetConfig{Prefix: e.prefix}),
			},
			DB: &dbwrap.Config{DriverName: "pgx", Primary: e.primary, Replicas: []string{e.replica},
				PollInterval: 20 * time.Millisecond},
		}),
		fx.Supply(e.rdb),
	}
}

// backends counts the connections of the module's application_name on
// db's server.
func (e *leakEnv) backends(t *testing.T, db *sql.DB) int {
	t.Helper()
	var n int
	if err := db.QueryRow("select count(*) from pg_stat_activity where application_name = $1", e.app).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

// subscribers counts the Redis connections subscribed to the fleet's
// channel.
func (e *leakEnv) subscribers(t *testing.T) int64 {
	t.Helper()
	n, err := e.rdb.PubSubNumSub(context.Background(), e.prefix+"kill-switch:changes").Result()
	if err != nil {
		t.Fatal(err)
	}
	return n[e.prefix+"kill-switch:changes"]
}

// When a constructor or invoke after the module's fails, fx.New returns the
// error and never runs OnStop hooks: the engine and the database the module
// built must then hold no goroutine (plan watcher, guard loop, fleet
// subscriber, replica poller) and no connection (poller, Redis
// subscription).
func TestModuleFailedNewLeavesNothing(t *testing.T) {
	e := newLeakEnv(t)
	ignore := goleak.IgnoreCurrent()

	boom := errors.New("a later constructor failed")
	var (
		eng *canary.Engine
		db  *sql.DB
	)
	t.Cleanup(func() { // the DB's opener goroutine ends only with Close; keep TestMain's check clean
		if eng != nil {
			eng.Close()
		}
		if db != nil {
			db.Close()
		}
	})
	app := fx.New(append(e.options(),
		fx.NopLogger,
		fx.Populate(&eng, &db),
		fx.Invoke(func(*canary.Engine, *sql.DB) error { return boom }),
	)...)
	if err := app.Err(); !errors.Is(err, boom) {
		t.Fatalf("fx.New: %v, want %v", err, boom)
	}
	if eng == nil || db == nil {
		t.Fatal("the module did not build the engine and the database: the test proves nothing")
	}
	// What was built still works without being started: the engine decides
	// with the plan file's content, and the database answers (an invoke may
	// run migrations).
	if got := eng.Plan().Version; got != 1 {
		t.Errorf("plan version %d before start, want 1", got)
	}
	var one int
	if err := db.QueryRowContext(dbwrap.WithPrimary(context.Background()), "select 1").Scan(&one); err != nil {
		t.Errorf("the database before start: %v", err)
	}

	// database/sql.OpenDB starts its opener goroutine in every *sql.DB; only
	// DB.Close ends it, and fx gives a module no hook when New fails. It
	// holds no connection.
	if err := goleak.Find(ignore, goleak.IgnoreTopFunction("database/sql.(*DB).connectionOpener")); err != nil {
		t.Errorf("goroutines left after fx.New failed: %v", err)
	}
	// That opener is the only goroutine ignored, and it is this DB's: once
	// the DB is closed, nothing at all is left.
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	if err := goleak.Find(ignore); err != nil {
		t.Errorf("goroutines left after fx.New failed and the DB was closed: %v", err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		p, r, s := e.backends(t, e.checkPrimary), e.backends(t, e.checkReplica), e.subscribers(t)
		if p == 0 && r == 0 && s == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Errorf("left after fx.New failed: %d connections on the primary, %d on the replica, %d Redis subscriptions to the fleet's channel", p, r, s)
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// When a later OnStart hook fails, fx stops the hooks that had started: the
// engine and the database the module started are closed, and nothing of
// theirs is left, not even database/sql's opener goroutine. (A hook that
// fails before the database's leaves that goroutine: see the package doc.)
func TestModuleFailedStartLeavesNothing(t *testing.T) {
	e := newLeakEnv(t)
	ignore := goleak.IgnoreCurrent()

	boom := errors.New("a later OnStart hook failed")
	app := fx.New(append(e.options(),
		fx.NopLogger,
		fx.Invoke(func(lc fx.Lifecycle, _ *canary.Engine, _ *sql.DB) {
			lc.Append(fx.StartHook(func() error { return boom }))
		}),
	)...)
	if err := app.Err(); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := app.Start(ctx); !errors.Is(err, boom) {
		t.Fatalf("Start: %v, want %v", err, boom)
	}
	if err := goleak.Find(ignore); err != nil {
		t.Errorf("goroutines left after Start failed: %v", err)
	}
	waitFor(t, "no connection or subscription is left after Start failed", func() bool {
		return e.backends(t, e.checkPrimary) == 0 && e.backends(t, e.checkReplica) == 0 && e.subscribers(t) == 0
	})
}

// On start the module's engine and database start their background work
// (the plan file is watched, the fleet followed, the replica polled and
// read from); on stop nothing of theirs is left.
func TestModuleStartStop(t *testing.T) {
	e := newLeakEnv(t)
	ignore := goleak.IgnoreCurrent()

	var (
		eng *canary.Engine
		db  *sql.DB
	)
	app := fxtest.New(t, append(e.options(), fx.Populate(&eng, &db))...)
	app.RequireStart()

	if err := os.WriteFile(e.planFile, []byte("version: 2\ntenants:\n  canary: [acme]\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the plan file's change is applied", func() bool { return eng.Plan().Version == 2 })
	waitFor(t, "the engine follows the fleet's channel", func() bool { return e.subscribers(t) == 1 })
	waitFor(t, "the replica serves reads", func() bool {
		r, err := dbwrap.Explain(context.Background(), db, "select 1")
		return err == nil && r.Target == dbwrap.TargetReplica
	})
	waitFor(t, "the poller is connected to both servers", func() bool {
		return e.backends(t, e.checkPrimary) > 0 && e.backends(t, e.checkReplica) > 0
	})
	if err := eng.TurnKillSwitch(context.Background(), true, "fxmodule test"); err != nil {
		t.Fatal(err)
	}
	if !eng.KillSwitch() {
		t.Error("the fleet's kill switch is not in force after TurnKillSwitch")
	}

	app.RequireStop()
	if err := goleak.Find(ignore); err != nil {
		t.Errorf("goroutines left after stop: %v", err)
	}
	waitFor(t, "no connection or subscription is left after stop", func() bool {
		return e.backends(t, e.checkPrimary) == 0 && e.backends(t, e.checkReplica) == 0 && e.subscribers(t) == 0
	})
}

// waitFor retries f every 10ms until it returns true, failing the test
// after 10s.
func waitFor(t *testing.T, what string, f func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !f() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting until %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
