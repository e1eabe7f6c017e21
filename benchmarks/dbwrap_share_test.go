package benchmarks

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"fmt"
	"math/rand/v2"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/stdlib"

	"github.com/reqcanary/canary/dbwrap"
	"github.com/reqcanary/canary/internal/testenv"
	"github.com/reqcanary/canary/tenant"
)

// BenchmarkDBWrapReplicaShare runs the write-heavy mix of issue 11 on the real
// primary and replica for a fixed window (SHARE_WINDOW, default 10 s) and
// reports where the reads went:
//
//   - SHARE_USERS users (default 100), each writing every ~2 s (jittered) in
//     a new request and reading its write right after, in the same request
//     (so every read carries the token of the write just made);
//   - the default PollInterval (1 s); ConsistencyWait off (the baseline) or
//     50 ms;
//   - a sampler reads the replica's replay position every 2 ms on its own
//     connection, so that each read can be classed as "the replica reached
//     its token within 50 ms of the read" (eligible) or not.
//
// Metrics: replica-%: reads served by the replica; eligible-replica-%: the
// same among eligible reads (the goal: >= 90 %); eligible-%: the
// share of eligible reads; probe-q/s: the replica position queries the
// waiting reads cost the replica (the poller's and the sampler's are not
// counted); read-p50-ms, read-p99-ms: the reads' latency.
func BenchmarkDBWrapReplicaShare(b *testing.B) {
	primary, replica := os.Getenv("CANARY_PG_PRIMARY"), os.Getenv("CANARY_PG_REPLICA")
	if primary == "" || replica == "" {
		b.Skip("CANARY_PG_PRIMARY / CANARY_PG_REPLICA not set: run `make bench`")
	}
	testenv.LockReplicaShared(b)
	window := envDuration(b, "SHARE_WINDOW", 10*time.Second)
	users := envInt(b, "SHARE_USERS", 100)
	for _, wait := range []time.Duration{0, 50 * time.Millisecond} {
		b.Run("wait="+wait.String(), func(b *testing.B) {
			r := runShareMix(b, primary, replica, wait, users, window)
			b.ReportMetric(r.replicaShare, "replica-%")
			b.ReportMetric(r.eligibleReplicaShare, "eligible-replica-%")
			b.ReportMetric(r.eligibleShare, "eligible-%")
			b.ReportMetric(r.probeRate, "probe-q/s")
			b.ReportMetric(r.p50, "read-p50-ms")
			b.ReportMetric(r.p99, "read-p99-ms")
			b.ReportMetric(float64(r.reads), "reads")
			b.ReportMetric(r.reach50, "replayed-p50-ms")
		})
	}
}

type shareResult struct {
	reads                              int
	replicaShare, eligibleReplicaShare float64
	eligibleShare, probeRate, p50, p99 float64
	reach50                            float64 // ms from a read's start until the sampler saw its token replayed (eligible reads)
}

// probeCounter counts the replay-position probes of waiting reads (the exact
// text of the Postgres dialect's probe; the poller's status query differs).
type probeCounter struct{ n atomic.Int64 }

func (p *probeCounter) TraceQueryStart(ctx context.Context, _ *pgx.Conn, d pgx.TraceQueryStartData) context.Context {
	if d.SQL == "SELECT pg_last_wal_replay_lsn()::text" {
		p.n.Add(1)
	}
	return ctx
}

func (*probeCounter) TraceQueryEnd(context.Context, *pgx.Conn, pgx.TraceQueryEndData) {}

type replaySample struct {
	at  time.Time
	pos uint64
}

type shareRead struct {
	start   time.Time
	token   uint64
	replica bool
	took    time.Duration
}

func runShareMix(b *testing.B, primaryDSN, replicaDSN string, wait time.Duration, users int, window time.Duration) shareResult {
	b.Helper()
	var probes probeCounter
	rc, err := pgx.ParseConfig(replicaDSN)
	if err != nil {
		b.Fatal(err)
	}
	rc.Tracer = &probes
	db, err := dbwrap.OpenDB(dbwrap.Connectors{
		Primary:  pgConnector(b, primaryDSN),
		Replicas: []driver.Connector{stdlib.GetConnector(*rc)},
	}, dbwrap.Config{DriverName: "pgx", ConsistencyWait: wait})
	if err != nil {
		b.Fatal(err)
	}
	defer db.Close()
	ctx := context.Background()
	if err := dbwrap.WaitPolled(ctx, db); err != nil {
		b.Fatal(err)
	}
	db.SetMaxIdleConns(users)
	tbl := fmt.Sprintf("bench_share_%d", time.Now().UnixNano())
	if _, err := db.ExecContext(ctx, "create table "+tbl+" (u int, n int)"); err != nil {
		b.Fatal(err)
	}
	defer db.ExecContext(context.Background(), "drop table "+tbl)
	sampler, err := sql.Open("pgx", replicaDSN)
	if err != nil {
		b.Fatal(err)
	}
	defer sampler.Close()
	time.Sleep(200 * time.Millisecond) // the replica has the table

	var (
		mu      sync.Mutex
		samples []replaySample
		reads   []shareRead
		fails   atomic.Int64
		wg      sync.WaitGroup
	)
	stop := make(chan struct{})
	wg.Add(1)
	go func() {
		defer wg.Done()
		t := time.NewTicker(2 * time.Millisecond)
		defer t.Stop()
		for {
			var s string
			if err := sampler.QueryRowContext(ctx, "select pg_last_wal_replay_lsn()::text").Scan(&s); err == nil {
				if p, ok := parseLSN(s); ok {
					mu.Lock()
					samples = append(samples, replaySample{at: time.Now(), pos: p})
					mu.Unlock()
				}
			}
			select {
			case <-stop:
				return
			case <-t.C:
			}
		}
	}()
	probes.n.Store(0)
	began := time.Now()
	for u := 0; u < users; u++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			user := tenant.Labels{Tenant: "bench", UserHash: fmt.Sprintf("%032x", u), Cohort: tenant.Stable}
			next := time.Now().Add(time.Duration(rand.Int64N(int64(2 * time.Second))))
			for n := 1; ; n++ {
				select {
				case <-stop:
					return
				case <-time.After(time.Until(next)):
				}
				next = next.Add(2*time.Second + time.Duration(rand.Int64N(int64(200*time.Millisecond))) - 100*time.Millisecond)
				req := tenant.NewContext(ctx, user)
				if _, err := db.ExecContext(req, "insert into "+tbl+" values ($1, $2)", u, n); err != nil {
					fails.Add(1)
					continue
				}
				tok, _ := dbwrap.ConsistencyToken(req)
				p, _ := parseLSN(tok)
				start := time.Now()
				var inRecovery bool
				var got int
				err := db.QueryRowContext(req, "select pg_is_in_recovery(), count(*) from "+tbl+" where u = $1", u).Scan(&inRecovery, &got)
				took := time.Since(start)
				if err != nil || got != n {
					fails.Add(1)
					continue
				}
				mu.Lock()
				reads = append(reads, shareRead{start: start, token: p, replica: inRecovery, took: took})
				mu.Unlock()
			}
		}()
	}
	time.Sleep(window)
	close(stop)
	wg.Wait()
	elapsed := time.Since(began)
	if f := fails.Load(); f > 0 {
		b.Errorf("%d writes or reads failed or read stale", f)
	}

	var r shareResult
	r.reads = len(reads)
	var onReplica, eligible, eligibleOnReplica int
	lat := make([]time.Duration, 0, len(reads))
	var reach []time.Duration
	for _, rd := range reads {
		lat = append(lat, rd.took)
		if rd.replica {
			onReplica++
		}
		// The first sample at which the replica had replayed the token.
		i, _ := slices.BinarySearchFunc(samples, rd.start, func(s replaySample, t time.Time) int { return s.at.Compare(t) })
		for ; i < len(samples) && samples[i].at.Sub(rd.start) <= 50*time.Millisecond; i++ {
			if samples[i].pos >= rd.token {
				reach = append(reach, samples[i].at.Sub(rd.start))
				eligible++
				if rd.replica {
					eligibleOnReplica++
				}
				break
			}
		}
	}
	pct := func(a, n int) float64 {
		if n == 0 {
			return 0
		}
		return 100 * float64(a) / float64(n)
	}
	r.replicaShare = pct(onReplica, len(reads))
	r.eligibleShare = pct(eligible, len(reads))
	r.eligibleReplicaShare = pct(eligibleOnReplica, eligible)
	r.probeRate = float64(probes.n.Load()) / elapsed.Seconds()
	slices.Sort(lat)
	slices.Sort(reach)
	if len(reach) > 0 {
		r.reach50 = float64(reach[len(reach)/2]) / 1e6
	}
	if len(lat) > 0 {
		r.p50 = float64(lat[len(lat)/2]) / 1e6
		r.p99 = float64(lat[min(len(lat)-1, len(lat)*99/100)]) / 1e6
	}
	return r
}

func parseLSN(s string) (uint64, bool) {
	hi, lo, ok := strings.Cut(s, "/")
	if !ok {
		return 0, false
	}
	h, err1 := strconv.ParseUint(hi, 16, 32)
	l, err2 := strconv.ParseUint(lo, 16, 32)
	return h<<32 | l, err1 == nil && err2 == nil
}

func envDuration(b *testing.B, name string, def time.Duration) time.Duration {
	if v := os.Getenv(name); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil {
			b.Fatalf("%s: %v", name, err)
		}
		return d
	}
	return def
}

func envInt(b *testing.B, name string, def int) int {
	if v := os.Getenv(name); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil {
			b.Fatalf("%s: %v", name, err)
		}
		return n
	}
	return def
}
