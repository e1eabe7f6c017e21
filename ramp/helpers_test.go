package ramp_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"net/http"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"

	"github.com/reqcanary/canary"
	"github.com/reqcanary/canary/internal/testenv"
	"github.com/reqcanary/canary/planstore"
	"github.com/reqcanary/canary/planstore/etcdstore"
	"github.com/reqcanary/canary/ramp"
	"github.com/reqcanary/canary/tenant"
)

// etcdClient returns a client of the test etcd, closed when the test ends.
func etcdClient(t *testing.T) *clientv3.Client {
	t.Helper()
	cli, err := clientv3.New(clientv3.Config{Endpoints: testenv.EtcdEndpoints(t), DialTimeout: 3 * time.Second,
		Logger: zap.NewNop()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cli.Close() })
	return cli
}

// testPrefix returns a key prefix of the test's own, deleted when it ends.
func testPrefix(t *testing.T) string {
	t.Helper()
	p := fmt.Sprintf("/canary-test/%s-%d-%d/", strings.ReplaceAll(t.Name(), "/", "_"), os.Getpid(), time.Now().UnixNano())
	cli := etcdClient(t)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_, _ = cli.Delete(ctx, p, clientv3.WithPrefix())
	})
	return p
}

// newStore opens a plan store under prefix+"plan/" on cli (or its own
// client when cli is nil).
func newStore(t *testing.T, prefix string, cli *clientv3.Client) planstore.Store {
	t.Helper()
	cfg := etcdstore.Config{Client: cli, Prefix: prefix + "plan/", Validate: canary.ValidatePlan,
		OpTimeout: 2 * time.Second, RetryInterval: 100 * time.Millisecond}
	if cli == nil {
		cfg.Endpoints = testenv.EtcdEndpoints(t)
	}
	s, err := etcdstore.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s
}

// ctxT is a context ended when the test ends (or after d).
func ctxT(t *testing.T, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

// fleet is n engines following one plan store, each publishing its guard's
// figures, with traffic.
type fleet struct {
	t       *testing.T
	prefix  string
	store   planstore.Store
	engines []*canary.Engine
}

func newFleet(t *testing.T, prefix string, n int, plan string) *fleet {
	t.Helper()
	f := &fleet{t: t, prefix: prefix, store: newStore(t, prefix, nil)}
	if _, err := f.store.Apply(ctxT(t, 10*time.Second), []byte(plan), planstore.AnyVersion,
		planstore.Change{Author: "alice", Note: "the plan with its ramp"}); err != nil {
		t.Fatal(err)
	}
	cli := etcdClient(t)
	for i := range n {
		e, err := canary.New(canary.WithPlanStore(newStore(t, prefix, nil)))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = e.Close() })
		pub, err := ramp.NewPublisher(cli, e, ramp.PublisherConfig{Prefix: prefix + "ramp/",
			Instance: fmt.Sprintf("engine-%d", i), Interval: 200 * time.Millisecond, TTL: 2 * time.Second})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = pub.Close() })
		f.engines = append(f.engines, e)
	}
	return f
}

// traffic sends about rate requests a second to each engine until the test
// ends: users drawn at random, stable failing with pStable, canary with
// pCanary(percent in force).
func (f *fleet) traffic(rate int, pStable float64, pCanary func(pct float64) float64) {
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	f.t.Cleanup(func() { cancel(); wg.Wait() })
	for i, e := range f.engines {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rng := rand.New(rand.NewPCG(uint64(i), 42))
			tick := time.NewTicker(10 * time.Millisecond)
			defer tick.Stop()
			for {
				select {
				case <-ctx.Done():
					return
				case <-tick.C:
				}
				pc := pCanary(e.Plan().CanaryPercent)
				for range rate / 100 {
					user := fmt.Sprintf("user-%d", rng.IntN(1_000_000))
					l, err := e.Decide(ctx, tenant.Request{Source: http.Header{
						http.CanonicalHeaderKey(tenant.HeaderTenant): {"shop"},
						http.CanonicalHeaderKey(tenant.HeaderUser):   {user}}, Wire: tenant.HTTP})
					if err != nil {
						continue
					}
					p := pStable
					if l.Cohort == tenant.Canary {
						p = pc
					}
					k := canary.OutcomeSuccess
					if rng.Float64() < p {
						k = canary.OutcomeFailure
					}
					e.Record(tenant.NewContext(ctx, l), canary.Outcome{Cohort: l.Cohort, Kind: k,
						Latency: time.Duration(5+rng.IntN(5)) * time.Millisecond})
				}
			}
		}()
	}
}

// controller starts a controller on cli (its own store on cli) and runs it
// until the test ends; stop ends it early.
func startController(t *testing.T, prefix, name string, cli *clientv3.Client, mod func(*ramp.Config)) (c *ramp.Controller, stop func()) {
	t.Helper()
	cfg := ramp.Config{Client: cli, Store: newStore(t, prefix, cli), Prefix: prefix + "ramp/", Instance: name,
		LeaseTTL: 2 * time.Second, RetryInterval: 200 * time.Millisecond, FiguresMaxAge: 2 * time.Second}
	if mod != nil {
		mod(&cfg)
	}
	c, err := ramp.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); _ = c.Run(ctx) }()
	var once sync.Once
	stop = func() { once.Do(func() { cancel(); <-done }) }
	t.Cleanup(stop)
	return c, stop
}

// waitPhase waits until the ramp's phase is one of want, and returns the
// status.
func waitPhase(t *testing.T, c *ramp.Controller, d time.Duration, want ...string) ramp.Status {
	t.Helper()
	deadline := time.Now().Add(d)
	var st ramp.Status
	for time.Now().Before(deadline) {
		s, err := c.Status(context.Background())
		if err == nil {
			st = s
			for _, w := range want {
				if s.Phase == w {
					return s
				}
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("ramp not %v within %v: %+v", want, d, st)
	return st
}

// rampHistory returns the notes of the plan history, oldest first.
func rampHistory(t *testing.T, s planstore.Store) []planstore.Entry {
	t.Helper()
	h, err := s.History(context.Background(), 0)
	if err != nil {
		t.Fatal(err)
	}
	for i, j := 0, len(h)-1; i < j; i, j = i+1, j-1 {
		h[i], h[j] = h[j], h[i]
	}
	return h
}

// waitLastNote waits until the newest history entry's note starts with
// prefix and returns the history, oldest first. The controller commits a
// phase in its state first and writes the audit entry to the plan store
// right after, so a phase seen by Status may precede its entry by a tick.
func waitLastNote(t *testing.T, s planstore.Store, d time.Duration, prefix string) []planstore.Entry {
	t.Helper()
	deadline := time.Now().Add(d)
	for {
		h := rampHistory(t, s)
		if len(h) > 0 && strings.HasPrefix(h[len(h)-1].Note, prefix) {
			return h
		}
		if time.Now().After(deadline) {
			last := planstore.Entry{}
			if len(h) > 0 {
				last = h[len(h)-1]
			}
			t.Fatalf("no history entry %q within %v; the last: %s %q", prefix, d, last.Author, last.Note)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// stepNotes returns the step numbers of the history's step writes, in order
// ("ramp step K/N" notes, and step 1 from the start).
func stepNotes(h []planstore.Entry) []string {
	var out []string
	for _, e := range h {
		switch {
		case strings.Contains(e.Note, "ramp started"):
			out = append(out, "1")
		case strings.HasPrefix(e.Note, "ramp step "):
			k, _, _ := strings.Cut(strings.TrimPrefix(e.Note, "ramp step "), "/")
			out = append(out, k)
		}
	}
	return out
}
