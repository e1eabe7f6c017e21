package dbwrap

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/reqcanary/canary/internal/testenv"
)

// The primary becomes unreachable under load (every connection to it is cut
// through a FaultProxy, and new ones are refused) and comes back. What the
// caller sees: writes fail with errors that match ErrPrimaryUnavailable (the
// few statements in flight on a connection the cut broke return the driver's
// own connection error), quickly, while reads keep being served by the
// replica without an error; nothing whose write returned success is lost;
// writes succeed again within PrimaryRetryInterval plus a poll or two of the
// restore.
func TestPGPrimaryCutUnderLoad(t *testing.T) {
	e := newPGEnv(t)
	proxy := testenv.NewFaultProxy(t, hostPort(t, e.primaryDSN))
	cfg := e.config()
	cfg.Primary = viaProxy(t, e.primaryDSN, proxy) + "&connect_timeout=2"
	cfg.MaxReplicaLag = time.Hour // the cut primary cannot be sampled: judge the replica by its health
	db := e.open(t, cfg)
	tbl := e.table(t, "id bigint primary key")

	const writers, readers = 4, 4
	var (
		stop       atomic.Bool
		cut        atomic.Int64 // unix nanos of the cut, 0 before
		restored   atomic.Int64 // unix nanos of the restore, 0 before
		firstAfter atomic.Int64 // first successful write after the restore
		mu         sync.Mutex
		acked      []int64
		failLat    []time.Duration
		raw        []error // failures that do not match ErrPrimaryUnavailable
		readErrs   []error
		reads      atomic.Int64
		readsCut   atomic.Int64 // reads completed during the cut
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
				_, err := db.ExecContext(ctx, fmt.Sprintf("insert into %s values (%d)", tbl, id))
				now := time.Now()
				mu.Lock()
				if err == nil {
					acked = append(acked, id)
					if r := restored.Load(); r != 0 && start.UnixNano() >= r {
						firstAfter.CompareAndSwap(0, now.UnixNano())
					}
				} else {
					failLat = append(failLat, now.Sub(start))
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
				err := db.QueryRowContext(ctx, "select 1").Scan(&one)
				if err != nil {
					mu.Lock()
					readErrs = append(readErrs, err)
					mu.Unlock()
					continue
				}
				reads.Add(1)
				if cut.Load() != 0 && restored.Load() == 0 {
					readsCut.Add(1)
				}
			}
		}()
	}

	time.Sleep(300 * time.Millisecond)
	cut.Store(time.Now().UnixNano())
	proxy.Set(testenv.ProxyCut)
	time.Sleep(1500 * time.Millisecond)
	restored.Store(time.Now().UnixNano())
	proxy.Set(testenv.ProxyPass)
	within(t, 10*time.Second, "a write succeeds after the primary is back", func() bool { return firstAfter.Load() != 0 })
	time.Sleep(300 * time.Millisecond)
	stop.Store(true)
	wg.Wait()

	recovery := time.Duration(firstAfter.Load() - restored.Load())
	sort.Slice(failLat, func(i, j int) bool { return failLat[i] < failLat[j] })
	if len(failLat) == 0 {
		t.Fatal("no write failed while the primary was cut")
	}
	p50, pmax := failLat[len(failLat)/2], failLat[len(failLat)-1]
	t.Logf("writes: %d acknowledged, %d failed (p50 %v, max %v to fail), %d with the driver's own error; reads: %d (%d during the cut), %d failed; recovery: first write %v after the restore",
		len(acked), len(failLat), p50, pmax, len(raw), reads.Load(), readsCut.Load(), len(readErrs), recovery)

	if len(readErrs) > 0 {
		t.Errorf("%d reads failed while the primary was cut, e.g. %v", len(readErrs), readErrs[0])
	}
	if readsCut.Load() == 0 {
		t.Error("no read completed while the primary was cut")
	}
	// Each pooled connection can meet the cut once with a statement in
	// flight; every other failure must say the primary is unavailable.
	if len(raw) > writers+readers {
		t.Errorf("%d write failures do not match ErrPrimaryUnavailable, e.g. %v", len(raw), raw[0])
	}
	if pmax > 5*time.Second {
		t.Errorf("a write took %v to fail", pmax)
	}
	if limit := DefaultPrimaryRetryInterval + 3*time.Second; recovery > limit {
		t.Errorf("writes resumed %v after the restore, want within %v", recovery, limit)
	}

	// Nothing acknowledged is lost.
	rows, err := e.primary.QueryContext(ctx, "select id from "+tbl)
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
	lost := 0
	for _, id := range acked {
		if !present[id] {
			lost++
		}
	}
	if lost > 0 {
		t.Errorf("%d of %d acknowledged writes are not on the primary", lost, len(acked))
	}
}
