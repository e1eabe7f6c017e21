package dbwrap

import (
	"context"
	"database/sql/driver"
	"testing"

	"github.com/reqcanary/canary/tenant"
)

// TestRouteAllocations pins the routing of reads that carry no token, and of
// reads whose token the polled replica position covers, at zero
// allocations: the replay probe (Config.ConsistencyWait) is reached only by
// a read whose token is ahead of the polled position.
func TestRouteAllocations(t *testing.T) {
	if raceEnabled {
		t.Skip("allocation counts are meaningless under the race detector (make test runs this without it)")
	}
	log := &fakeLog{}
	d := &posDialect{write: 100, replay: map[string]uint64{"r1": 100}}
	cn, err := newConnector(Connectors{
		Primary:  &fakeConnector{server: "primary", log: log},
		Replicas: []driver.Connector{&fakeConnector{server: "r1", log: log}},
	}, nil, Config{Dialect: d, MaxReplicaLag: -1, ConsistencyWait: 50e6})
	if err != nil {
		t.Fatal(err)
	}
	defer cn.Close()
	<-cn.polled
	c := newConn(cn)
	const q = "SELECT id FROM products WHERE category_id = $1"
	st := classifyCached(cn, q)
	bg := context.Background()
	anon := tenant.NewContext(bg, tenant.Labels{Tenant: "acme"})
	caughtUp := WithConsistencyToken(bg, formatLSN(100))
	for name, ctx := range map[string]context.Context{"no-context": bg, "request-without-user": anon, "token-replayed": caughtUp} {
		want := ReasonRead
		if ctx == caughtUp {
			want = ReasonCaughtUp
		}
		if d := c.route(ctx, st, opQuery); d.srv.target != TargetReplica || d.reason != want {
			t.Fatalf("%s: routed to %s (%s), want the replica (%s)", name, d.srv.name, d.reason, want)
		}
		if n := testing.AllocsPerRun(200, func() { _ = c.route(ctx, st, opQuery) }); n != 0 {
			t.Errorf("%s: route allocates %.0f times per read, want 0", name, n)
		}
	}
}
