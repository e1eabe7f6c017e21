package dbwrap

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/go-sql-driver/mysql"

	"github.com/reqcanary/canary/internal/testenv"
)

// The MariaDB primary cut under read and write load: reads go on from the
// replica without an error, writes fail fast (ErrPrimaryUnavailable, or the
// driver's error for a statement in flight at the cut), resume soon after
// the primary is back, and no acknowledged write is lost.
func TestMySQLPrimaryCutUnderLoad(t *testing.T) {
	e := newMyEnv(t)
	tbl := e.table(t, "id BIGINT PRIMARY KEY")
	port := myWho(t, context.Background(), e.primary).Port
	proxy := testenv.NewFaultProxy(t, fmt.Sprintf("127.0.0.1:%d", port))
	pc, err := mysql.ParseDSN(e.primaryDSN)
	if err != nil {
		t.Fatal(err)
	}
	pc.Addr, pc.Timeout = proxy.Addr(), 2*time.Second
	cfg := e.config()
	cfg.Primary = pc.FormatDSN()
	cfg.MaxReplicaLag = time.Hour // the cut primary cannot be sampled
	db := e.open(t, cfg)

	const writers, readers = 2, 2
	var (
		stop, cutting  atomic.Bool
		restored       atomic.Int64
		firstAfter     atomic.Int64
		mu             sync.Mutex
		acked          []int64
		writeFails     int
		raw, readErrs  []error
		readsCut       atomic.Int64
		slowestFailure time.Duration
	)
	ctx := context.Background()
	var wg sync.WaitGroup
	for w := 0; w < writers; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			for i := int64(0); !stop.Load(); i++ {
				id := int64(w)*1_000_000 + i
				start := time.Now()
				_, err := db.ExecContext(ctx, "INSERT INTO "+tbl+" VALUES (?)", id)
				mu.Lock()
				if err == nil {
					acked = append(acked, id)
					if r := restored.Load(); r != 0 && start.UnixNano() >= r {
						firstAfter.CompareAndSwap(0, time.Now().UnixNano())
					}
				} else {
					writeFails++
					slowestFailure = max(slowestFailure, time.Since(start))
					if !errors.Is(err, ErrPrimaryUnavailable) {
						raw = append(raw, err)
					}
				}
				mu.Unlock()
				if err != nil {
					time.Sleep(5 * time.Millisecond)
				}
			}
		}(w)
	}
	for r := 0; r < readers; r++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for !stop.Load() {
				var one int
				if err := db.QueryRowContext(ctx, "SELECT 1").Scan(&one); err != nil {
					mu.Lock()
					readErrs = append(readErrs, err)
					mu.Unlock()
					continue
				}
				if cutting.Load() {
					readsCut.Add(1)
				}
			}
		}()
	}
	time.Sleep(300 * time.Millisecond)
	cutting.Store(true)
	proxy.Set(testenv.ProxyCut)
	time.Sleep(1500 * time.Millisecond)
	cutting.Store(false)
	restored.Store(time.Now().UnixNano())
	proxy.Set(testenv.ProxyPass)
	eventually(t, "a write succeeds after the primary is back", func() bool { return firstAfter.Load() != 0 })
	stop.Store(true)
	wg.Wait()

	if len(readErrs) > 0 {
		t.Errorf("%d reads failed while the primary was cut, e.g. %v", len(readErrs), readErrs[0])
	}
	if readsCut.Load() == 0 {
		t.Error("no read completed while the primary was cut")
	}
	if writeFails == 0 {
		t.Fatal("no write failed while the primary was cut")
	}
	if len(raw) > writers+readers {
		t.Errorf("%d write failures do not match ErrPrimaryUnavailable, e.g. %v", len(raw), raw[0])
	}
	if slowestFailure > 5*time.Second {
		t.Errorf("a write took %v to fail", slowestFailure)
	}
	if rec := time.Duration(firstAfter.Load() - restored.Load()); rec > DefaultPrimaryRetryInterval+3*time.Second {
		t.Errorf("writes resumed %v after the restore", rec)
	}
	rows, err := e.primary.QueryContext(ctx, "SELECT id FROM "+tbl)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	present := map[int64]bool{}
	for rows.Next() {
		var id int64
		if err := rows.Scan(&id); err != nil {
			t.Fatal(err)
		}
		present[id] = true
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	for _, id := range acked {
		if !present[id] {
			t.Errorf("acknowledged write %d is not on the primary", id)
			break
		}
	}
	t.Logf("writes: %d acknowledged, %d failed (slowest %v), %d with the driver's own error; reads during the cut: %d",
		len(acked), writeFails, slowestFailure, len(raw), readsCut.Load())
}
