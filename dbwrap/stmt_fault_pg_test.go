package dbwrap

import (
	"context"
	"testing"
	"time"

	"github.com/reqcanary/canary/internal/testenv"
)

// A statement prepared on a conn whose replica connection the network has
// cut, with the replica then unreachable: the prepare is retried as a query
// would be (a new connection to the replica, then another server), so the
// caller gets a working statement answered by the primary, never the
// connection error. Review of issue 11: with lib/pq (whose stale connection
// says driver.ErrBadConn) Prepare retried the same replica once and returned
// its connect error.
func TestPGPrepareFailsOverFromDeadReplica(t *testing.T) {
	for _, drv := range faultDrivers {
		t.Run(drv, func(t *testing.T) { testPrepareFailsOver(t, drv) })
	}
}

func testPrepareFailsOver(t *testing.T, drv string) {
	e := newPGEnv(t)
	proxy := testenv.NewFaultProxy(t, hostPort(t, e.replicaDSN))
	cfg := e.config()
	cfg.DriverName = drv
	cfg.Replicas = []string{viaProxy(t, e.replicaDSN, proxy)}
	cfg.PollInterval = time.Hour // the poller must not notice the cut first
	db := e.open(t, cfg)
	ctx := context.Background()
	conn, err := db.Conn(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if a := who(t, ctx, conn); !a.InRecovery {
		t.Fatalf("the read before the cut went to %+v, want the replica", a)
	}
	proxy.Set(testenv.ProxyCut)
	time.Sleep(20 * time.Millisecond) // the reset reaches the client side
	st, err := conn.PrepareContext(ctx, whoQuery)
	if err != nil {
		t.Fatalf("prepare with the replica cut: %v", err)
	}
	defer st.Close()
	var a answer
	if err := st.QueryRowContext(ctx).Scan(&a.InRecovery, &a.Port, &a.PID); err != nil {
		t.Fatalf("the prepared statement: %v", err)
	}
	if a.InRecovery {
		t.Fatalf("answered by the cut replica %+v", a)
	}
}
