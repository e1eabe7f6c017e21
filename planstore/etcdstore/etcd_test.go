package etcdstore_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"github.com/reqcanary/canary/planstore/etcdstore"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"

	"github.com/reqcanary/canary/internal/testenv"
	"github.com/reqcanary/canary/planstore"
)

// errBadPlan is what the test validator returns.
var errBadPlan = errors.New("plan: line 1: want `canary: N`")

// validate stands in for the engine's parser: a plan is "canary: N".
func validate(b []byte) error {
	if !bytes.HasPrefix(b, []byte("canary: ")) {
		return errBadPlan
	}
	return nil
}

func plan(pct int) []byte { return fmt.Appendf(nil, "canary: %d\nnote: x\n", pct) }

// prefix returns a key prefix of the test's own, deleted when it ends.
func prefix(t *testing.T, cli *clientv3.Client) string {
	t.Helper()
	p := fmt.Sprintf("/canary-test/%s-%d-%d/", strings.ReplaceAll(t.Name(), "/", "_"), os.Getpid(), time.Now().UnixNano())
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_, _ = cli.Delete(ctx, p, clientv3.WithPrefix())
	})
	return p
}

// rawClient returns a plain etcd client to the test etcd.
func rawClient(t *testing.T) *clientv3.Client {
	t.Helper()
	cli, err := clientv3.New(clientv3.Config{Endpoints: testenv.EtcdEndpoints(t), DialTimeout: 3 * time.Second, Logger: zap.NewNop()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cli.Close() })
	return cli
}

func newStore(t *testing.T, cfg etcdstore.Config) planstore.Store {
	t.Helper()
	if cfg.Validate == nil {
		cfg.Validate = validate
	}
	if cfg.Client == nil && cfg.Endpoints == nil {
		cfg.Endpoints = testenv.EtcdEndpoints(t)
	}
	s, err := etcdstore.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s
}

func ctxT(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func mustApply(t *testing.T, s planstore.Store, data []byte, expect int64) planstore.Plan {
	t.Helper()
	p, err := s.Apply(ctxT(t), data, expect, planstore.Change{Author: "alice", Note: "step"})
	if err != nil {
		t.Fatalf("Apply(expect %d): %v", expect, err)
	}
	return p
}

func TestEtcdApplyCompareAndSwap(t *testing.T) {
	cli := rawClient(t)
	s := newStore(t, etcdstore.Config{Prefix: prefix(t, cli)})
	ctx := ctxT(t)

	if p, err := s.Get(ctx); err != nil || p.Version != 0 || p.Data != nil {
		t.Fatalf("empty store: Get = %+v, %v; want version 0, no data", p, err)
	}
	p1 := mustApply(t, s, plan(5), 0)
	if p1.Version != 1 || p1.From != 0 || p1.Author != "alice" || p1.Action != planstore.ActionApply {
		t.Fatalf("first apply = %+v", p1)
	}
	// A second writer still based on version 0 is refused, naming both versions.
	_, err := s.Apply(ctx, plan(25), 0, planstore.Change{Author: "bob"})
	var ce *planstore.ConflictError
	if !errors.Is(err, planstore.ErrVersionConflict) || !errors.As(err, &ce) || ce.Expected != 0 || ce.Current != 1 {
		t.Fatalf("stale apply: err = %v; want ConflictError{Expected 0, Current 1}", err)
	}
	if !strings.Contains(err.Error(), "expected version 0") || !strings.Contains(err.Error(), "current version is 1") {
		t.Errorf("conflict message %q does not name both versions", err)
	}
	if got, _ := s.Get(ctx); string(got.Data) != string(plan(5)) || got.Version != 1 {
		t.Fatalf("after refused apply: %+v", got)
	}

	// Two writers based on the same version at once: exactly one wins.
	var wg sync.WaitGroup
	errs := make([]error, 8)
	for i := range errs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, errs[i] = s.Apply(ctx, plan(10+i), 1, planstore.Change{Author: fmt.Sprint("w", i)})
		}()
	}
	wg.Wait()
	won := 0
	for _, err := range errs {
		switch {
		case err == nil:
			won++
		case !errors.Is(err, planstore.ErrVersionConflict):
			t.Errorf("racing apply: unexpected error %v", err)
		}
	}
	if won != 1 {
		t.Fatalf("%d of %d racing writers based on version 1 succeeded; want exactly 1", won, len(errs))
	}
	if got, _ := s.Get(ctx); got.Version != 2 {
		t.Fatalf("version after the race = %d, want 2", got.Version)
	}
	// AnyVersion writes on top of whatever is current.
	if p := mustApply(t, s, plan(50), planstore.AnyVersion); p.Version != 3 || p.From != 2 {
		t.Fatalf("AnyVersion apply = %+v, want version 3 from 2", p)
	}
}

func TestEtcdInvalidPlanNeverReachesKey(t *testing.T) {
	cli := rawClient(t)
	pfx := prefix(t, cli)
	s := newStore(t, etcdstore.Config{Prefix: pfx})
	ctx := ctxT(t)
	mustApply(t, s, plan(5), 0)
	before, err := cli.Get(ctx, pfx, clientv3.WithPrefix())
	if err != nil {
		t.Fatal(err)
	}

	_, err = s.Apply(ctx, []byte("canary = 5"), 1, planstore.Change{Author: "mallory"})
	if !errors.Is(err, planstore.ErrInvalid) || !errors.Is(err, errBadPlan) {
		t.Fatalf("invalid apply: err = %v; want ErrInvalid wrapping the validator's error", err)
	}
	if !strings.Contains(err.Error(), "line 1") {
		t.Errorf("error %q lost the validator's message", err)
	}
	_, err = s.Apply(ctx, append([]byte("canary: 1\n"), bytes.Repeat([]byte("#"), planstore.MaxPlanBytes)...), 1, planstore.Change{})
	if !errors.Is(err, planstore.ErrInvalid) {
		t.Fatalf("oversized apply: err = %v; want ErrInvalid", err)
	}
	after, err := cli.Get(ctx, pfx, clientv3.WithPrefix())
	if err != nil {
		t.Fatal(err)
	}
	if after.Header.Revision != before.Header.Revision || len(after.Kvs) != len(before.Kvs) {
		t.Fatalf("refused plans changed etcd: revision %d -> %d, keys %d -> %d",
			before.Header.Revision, after.Header.Revision, len(before.Kvs), len(after.Kvs))
	}
	for i := range after.Kvs {
		if after.Kvs[i].ModRevision != before.Kvs[i].ModRevision {
			t.Fatalf("key %s was rewritten", after.Kvs[i].Key)
		}
	}
}

func TestEtcdHistoryBoundedAndOrdered(t *testing.T) {
	cli := rawClient(t)
	pfx := prefix(t, cli)
	const limit = 5
	s := newStore(t, etcdstore.Config{Prefix: pfx, HistoryLimit: limit})
	ctx := ctxT(t)
	start := time.Now().Add(-time.Second)
	for v := int64(0); v < 8; v++ {
		if _, err := s.Apply(ctx, plan(int(v+1)*10), v, planstore.Change{Author: fmt.Sprint("op", v+1), Note: fmt.Sprint("to ", (v+1)*10, "%")}); err != nil {
			t.Fatal(err)
		}
	}
	h, err := s.History(ctx, 0)
	if err != nil {
		t.Fatal(err)
	}
	if len(h) != limit {
		t.Fatalf("history holds %d entries, want %d", len(h), limit)
	}
	for i, e := range h {
		want := int64(8 - i)
		if e.Version != want || e.From != want-1 || e.Author != fmt.Sprint("op", want) || e.Note != fmt.Sprint("to ", want*10, "%") {
			t.Errorf("history[%d] = v%d from %d by %q (%q); want v%d from %d by op%d", i, e.Version, e.From, e.Author, e.Note, want, want-1, want)
		}
		if e.Time.Before(start) || e.Time.After(time.Now().Add(time.Second)) {
			t.Errorf("history[%d].Time = %v, not the time of the write", i, e.Time)
		}
		wantDiff := fmt.Sprintf("@@ -1,1 +1,1 @@\n-canary: %d\n+canary: %d\n", (want-1)*10, want*10)
		if e.Diff != wantDiff {
			t.Errorf("history[%d].Diff = %q, want %q", i, e.Diff, wantDiff)
		}
	}
	if h2, _ := s.History(ctx, 2); len(h2) != 2 || h2[0].Version != 8 || h2[1].Version != 7 {
		t.Errorf("History(2) = %d entries (first %v), want v8, v7", len(h2), h2)
	}
	keys, err := cli.Get(ctx, pfx+"history/", clientv3.WithPrefix(), clientv3.WithCountOnly())
	if err != nil {
		t.Fatal(err)
	}
	if keys.Count != limit {
		t.Fatalf("etcd holds %d history keys, want %d (the bound)", keys.Count, limit)
	}
}

func TestEtcdRollback(t *testing.T) {
	cli := rawClient(t)
	s := newStore(t, etcdstore.Config{Prefix: prefix(t, cli), HistoryLimit: 4})
	ctx := ctxT(t)
	if _, err := s.Rollback(ctx, 0, planstore.AnyVersion, planstore.Change{}); !errors.Is(err, planstore.ErrVersionNotFound) {
		t.Fatalf("rollback on an empty store: %v, want ErrVersionNotFound", err)
	}
	mustApply(t, s, plan(5), 0)
	mustApply(t, s, plan(25), 1)
	mustApply(t, s, plan(50), 2)

	// Back to the previous version: a new version with the old text.
	p, err := s.Rollback(ctx, 0, 3, planstore.Change{Author: "oncall", Note: "errors up"})
	if err != nil {
		t.Fatal(err)
	}
	if p.Version != 4 || p.From != 3 || p.RolledBackTo != 2 || p.Action != planstore.ActionRollback || string(p.Data) != string(plan(25)) {
		t.Fatalf("rollback to previous = v%d from %d to %d (%s) %q", p.Version, p.From, p.RolledBackTo, p.Action, p.Data)
	}
	if got, _ := s.Get(ctx); got.Version != 4 || string(got.Data) != string(plan(25)) {
		t.Fatalf("Get after rollback = v%d %q", got.Version, got.Data)
	}
	// To a named version.
	p, err = s.Rollback(ctx, 1, planstore.AnyVersion, planstore.Change{Author: "oncall", Note: "back to 5%"})
	if err != nil || p.Version != 5 || p.RolledBackTo != 1 || string(p.Data) != string(plan(5)) {
		t.Fatalf("rollback to v1 = %+v, %v", p, err)
	}
	h, err := s.History(ctx, 2)
	if err != nil {
		t.Fatal(err)
	}
	if h[0].Action != planstore.ActionRollback || h[0].Author != "oncall" || h[0].Note != "back to 5%" || h[0].RolledBackTo != 1 ||
		h[0].Diff != "@@ -1,1 +1,1 @@\n-canary: 25\n+canary: 5\n" {
		t.Errorf("audit entry of the rollback = %+v", h[0])
	}
	if h[1].Action != planstore.ActionRollback || h[1].RolledBackTo != 2 || h[1].Note != "errors up" {
		t.Errorf("audit entry of the first rollback = %+v", h[1])
	}
	// Stale expect, and versions the history no longer keeps.
	if _, err := s.Rollback(ctx, 0, 4, planstore.Change{}); !errors.Is(err, planstore.ErrVersionConflict) {
		t.Errorf("rollback expecting v4 while v5 is current: %v, want ErrVersionConflict", err)
	}
	if _, err := s.Rollback(ctx, 1, planstore.AnyVersion, planstore.Change{}); !errors.Is(err, planstore.ErrVersionNotFound) {
		t.Errorf("rollback to v1, pruned from a history of 4: %v, want ErrVersionNotFound", err)
	}
	if _, err := s.Rollback(ctx, 9, planstore.AnyVersion, planstore.Change{}); !errors.Is(err, planstore.ErrVersionNotFound) {
		t.Errorf("rollback to v9 (future): %v, want ErrVersionNotFound", err)
	}
}

// collect reads versions from ch until it has n or the deadline passes.
func collect(ch <-chan planstore.Plan, n int, d time.Duration) []int64 {
	var got []int64
	deadline := time.After(d)
	for len(got) < n {
		select {
		case p, ok := <-ch:
			if !ok {
				return got
			}
			got = append(got, p.Version)
		case <-deadline:
			return got
		}
	}
	return got
}

func TestEtcdTwoWatchersSeeEachWriteInOrder(t *testing.T) {
	cli := rawClient(t)
	pfx := prefix(t, cli)
	w := newStore(t, etcdstore.Config{Prefix: pfx})
	s := newStore(t, etcdstore.Config{Prefix: pfx})
	ctx, cancel := context.WithCancel(ctxT(t))
	a, b := w.Watch(ctx), s.Watch(ctx)
	if got := collect(a, 1, 5*time.Second); len(got) != 1 || got[0] != 0 {
		t.Fatalf("watcher a first delivery = %v, want the empty plan (v0)", got)
	}
	if got := collect(b, 1, 5*time.Second); len(got) != 1 || got[0] != 0 {
		t.Fatalf("watcher b first delivery = %v, want v0", got)
	}
	const n = 10
	var wg sync.WaitGroup
	res := make([][]int64, 2)
	for i, ch := range []<-chan planstore.Plan{a, b} {
		wg.Add(1)
		go func() { defer wg.Done(); res[i] = collect(ch, n, 10*time.Second) }()
	}
	for v := int64(0); v < n; v++ {
		mustApply(t, s, plan(int(v)), v)
	}
	wg.Wait()
	want := fmt.Sprint([]int64{1, 2, 3, 4, 5, 6, 7, 8, 9, 10})
	for i, got := range res {
		if fmt.Sprint(got) != want {
			t.Errorf("watcher %d saw %v, want %s", i, got, want)
		}
	}
	cancel()
	for _, ch := range []<-chan planstore.Plan{a, b} {
		select {
		case _, ok := <-ch:
			for ok {
				_, ok = <-ch
			}
		case <-time.After(5 * time.Second):
			t.Fatal("watch channel not closed after its context ended")
		}
	}
}

func TestEtcdWatchSurvivesCompaction(t *testing.T) {
	cli := rawClient(t)
	pfx := prefix(t, cli)
	proxy := testenv.NewFaultProxy(t, testenv.EtcdEndpoints(t)[0])
	w := newStore(t, etcdstore.Config{Prefix: pfx, Endpoints: []string{proxy.Addr()}, RetryInterval: 100 * time.Millisecond})
	s := newStore(t, etcdstore.Config{Prefix: pfx})
	ctx := ctxT(t)
	mustApply(t, s, plan(1), 0)
	ch := w.Watch(ctx)
	if got := collect(ch, 1, 5*time.Second); fmt.Sprint(got) != "[1]" {
		t.Fatalf("first delivery %v, want [1]", got)
	}
	// While the watcher is cut off, three writes land and the store is
	// compacted past them: the watch cannot resume where it was.
	proxy.Set(testenv.ProxyCut)
	for v := int64(1); v < 4; v++ {
		mustApply(t, s, plan(int(v+1)), v)
	}
	resp, err := cli.Get(ctx, pfx+"current")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := cli.Compact(ctx, resp.Header.Revision, clientv3.WithCompactPhysical()); err != nil {
		t.Fatal(err)
	}
	proxy.Set(testenv.ProxyPass)
	if got := collect(ch, 1, 15*time.Second); fmt.Sprint(got) != "[4]" {
		t.Fatalf("after compaction the watcher delivered %v, want [4] (the re-read current plan)", got)
	}
	mustApply(t, s, plan(5), 4)
	if got := collect(ch, 1, 10*time.Second); fmt.Sprint(got) != "[5]" {
		t.Fatalf("after catching up the watcher delivered %v, want [5]", got)
	}
}

func TestEtcdUnreachable(t *testing.T) {
	cli := rawClient(t)
	pfx := prefix(t, cli)
	proxy := testenv.NewFaultProxy(t, testenv.EtcdEndpoints(t)[0])
	const opTimeout = 500 * time.Millisecond
	far := newStore(t, etcdstore.Config{Prefix: pfx, Endpoints: []string{proxy.Addr()}, OpTimeout: opTimeout, RetryInterval: 100 * time.Millisecond})
	near := newStore(t, etcdstore.Config{Prefix: pfx})
	ctx := ctxT(t)
	mustApply(t, near, plan(1), 0)
	ch := far.Watch(ctx)
	if got := collect(ch, 1, 5*time.Second); fmt.Sprint(got) != "[1]" {
		t.Fatalf("first delivery %v, want [1]", got)
	}
	next := int64(1)
	for _, mode := range []testenv.ProxyMode{testenv.ProxyCut, testenv.ProxyStall} {
		name := map[testenv.ProxyMode]string{testenv.ProxyCut: "cut", testenv.ProxyStall: "stall"}[mode]
		proxy.Set(mode)
		for _, op := range []struct {
			name string
			f    func() error
		}{
			{"Get", func() error { _, err := far.Get(ctx); return err }},
			{"Apply", func() error { _, err := far.Apply(ctx, plan(99), planstore.AnyVersion, planstore.Change{}); return err }},
			{"History", func() error { _, err := far.History(ctx, 0); return err }},
			{"Rollback", func() error { _, err := far.Rollback(ctx, 0, planstore.AnyVersion, planstore.Change{}); return err }},
		} {
			t0 := time.Now()
			err := op.f()
			// Bounded: the per-call timeout plus scheduling slack (not a speed test).
			if took := time.Since(t0); !errors.Is(err, planstore.ErrUnavailable) || took > 4*opTimeout+2*time.Second {
				t.Errorf("%s: %s returned %v after %v; want ErrUnavailable within the op timeout (%v)", name, op.name, err, took, opTimeout)
			}
		}
		// Writes land elsewhere while this watcher is cut off.
		mustApply(t, near, plan(int(next+1)), next)
		mustApply(t, near, plan(int(next+2)), next+1)
		next += 2
		proxy.Set(testenv.ProxyPass)
		got := collect(ch, 2, 30*time.Second)
		if len(got) == 0 || got[len(got)-1] != next {
			t.Fatalf("%s: after the store came back the watcher delivered %v; want it to end at v%d", name, got, next)
		}
		if len(got) == 2 && got[0] != next-1 {
			t.Fatalf("%s: watcher delivered %v out of order", name, got)
		}
		if p, err := far.Get(ctx); err != nil || p.Version != next {
			t.Fatalf("%s: Get after the store returned = v%d, %v; want v%d", name, p.Version, err, next)
		}
	}
}
