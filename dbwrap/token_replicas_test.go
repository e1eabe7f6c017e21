package dbwrap

import (
	"context"
	"database/sql/driver"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/reqcanary/canary/tenant"
)

// posDialect reports, for the fake servers, the write position and each
// replica's replay position the test sets.
type posDialect struct {
	fakeDialect
	mu       sync.Mutex
	write    uint64
	replay   map[string]uint64 // by fake server name
	promoted map[string]bool
}

func (d *posDialect) WritePosition(context.Context, Querier) (uint64, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.write, nil
}

func (d *posDialect) ReplicaStatus(ctx context.Context, q Querier) (ReplicaStatus, error) {
	row, err := q.QueryRow(ctx, "status")
	if err != nil {
		return ReplicaStatus{}, err
	}
	name, _ := row[0].(string)
	d.mu.Lock()
	defer d.mu.Unlock()
	return ReplicaStatus{InRecovery: !d.promoted[name], Replay: d.replay[name]}, nil
}

func (d *posDialect) set(server string, pos uint64) {
	d.mu.Lock()
	d.replay[server] = pos
	d.mu.Unlock()
}

// GitLab#413203: a user's position is not cleared when one replica has
// caught up. With one replica caught up and another behind, the user's
// reads go only to the caught-up one; when it fails they go to the primary,
// never to the one behind; once that one catches up, it serves them.
func TestTokenKeptWhileAnyReplicaIsBehind(t *testing.T) {
	log := &fakeLog{}
	p := &fakeConnector{server: "primary", log: log}
	r1 := &fakeConnector{server: "r1", log: log}
	r2 := &fakeConnector{server: "r2", log: log}
	d := &posDialect{write: 100, replay: map[string]uint64{"r1": 100, "r2": 50}}
	db, err := OpenDB(Connectors{Primary: p, Replicas: []driver.Connector{r1, r2}}, Config{
		Dialect: d, PollInterval: 10 * time.Millisecond, MaxReplicaLag: -1,
	})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	env := &fakeEnv{log: log, db: db}
	bg := context.Background()
	user := tenant.Labels{Tenant: "acme", UserHash: strings.Repeat("5e", 16)}
	req := tenant.NewContext(bg, user)

	if _, err := db.ExecContext(req, "insert into t values (1)"); err != nil {
		t.Fatal(err)
	}
	token, ok := ConsistencyToken(req)
	if !ok || token != formatLSN(100) {
		t.Fatalf("ConsistencyToken = %q, %v; want %s", token, ok, formatLSN(100))
	}
	eventually(t, "the poller sees r1 caught up", func() bool {
		r, err := Explain(req, db, "select 1")
		return err == nil && r.Reason == ReasonCaughtUp && r.Server == "replica-0"
	})
	reads := func(what string, want string, ctxs ...context.Context) {
		t.Helper()
		for i := 0; i < 20; i++ {
			for _, ctx := range ctxs {
				if got := env.server(t, ctx, "select 1"); got != want {
					t.Fatalf("%s: read %d went to %s, want %s", what, i, got, want)
				}
			}
		}
	}
	next := func() context.Context { return tenant.NewContext(bg, user) }
	reads("r1 caught up, r2 behind", "r1", req, next())

	var refused error = syscall.ECONNREFUSED
	r1.fail.Store(&refused)
	reads("r1 down, r2 behind", "primary", req, next())
	if tok, _ := ConsistencyToken(req); tok != token {
		t.Errorf("the token changed to %q without a write", tok)
	}

	d.set("r2", 100)
	eventually(t, "the caught-up r2 serves the user's reads", func() bool {
		return env.server(t, next(), "select 1") == "r2"
	})
	reads("r2 caught up", "r2", req, next())
	if tok, _ := ConsistencyToken(req); tok != token {
		t.Errorf("the token changed to %q without a write", tok)
	}
}

// A replica that is no longer in recovery (promoted: its data may have
// diverged from the primary's) is taken out of service at the next poll;
// reads go to the primary (GORM dbresolver#47).
func TestPromotedReplicaTakenOut(t *testing.T) {
	log := &fakeLog{}
	p := &fakeConnector{server: "primary", log: log}
	r := &fakeConnector{server: "r1", log: log}
	d := &posDialect{write: 1, replay: map[string]uint64{"r1": 1}, promoted: map[string]bool{}}
	db, err := OpenDB(Connectors{Primary: p, Replicas: []driver.Connector{r}}, Config{
		Dialect: d, PollInterval: 10 * time.Millisecond,
	})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	waitPolled(t, db)
	env := &fakeEnv{log: log, db: db}
	bg := context.Background()
	if got := env.server(t, bg, "select 1"); got != "r1" {
		t.Fatalf("read before the promotion went to %s", got)
	}
	d.mu.Lock()
	d.promoted["r1"] = true
	d.mu.Unlock()
	eventually(t, "the promoted replica is taken out", func() bool {
		r, err := Explain(bg, db, "select 1")
		return err == nil && r.Target == TargetPrimary && r.Reason == ReasonNoHealthyReplica
	})
	for i := 0; i < 20; i++ {
		if got := env.server(t, bg, "select 1"); got != "primary" {
			t.Fatalf("read %d after the promotion went to %s, want the primary", i, got)
		}
	}
}
