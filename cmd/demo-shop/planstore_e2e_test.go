//go:build !demo_embedded

package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"

	"github.com/reqcanary/canary"
	"github.com/reqcanary/canary/internal/testenv"
	"github.com/reqcanary/canary/planstore"
	"github.com/reqcanary/canary/planstore/etcdstore"
)

// planState is the part of GET /admin/canary about the plan and its store.
type planState struct {
	Plan struct {
		CanaryPercent float64 `json:"canary_percent"`
	} `json:"plan"`
	PlanStore *struct {
		Source  string `json:"source"`
		Version int64  `json:"version"`
		Author  string `json:"author"`
	} `json:"plan_store"`
}

func (p *shopProc) planState() planState {
	p.t.Helper()
	a := p.adminDo("GET", "/admin/canary", "")
	var st planState
	if a.status != http.StatusOK || json.Unmarshal([]byte(a.raw), &st) != nil {
		p.t.Fatalf("GET /admin/canary: %d %s", a.status, a.raw)
	}
	return st
}

// TestEtcdPlanStore: two shops on one etcd (-etcd) start on the seeded
// embedded plan and both follow a plan applied to the store.
func TestEtcdPlanStore(t *testing.T) {
	eps := strings.Join(testenv.EtcdEndpoints(t), ",")
	prefix := fmt.Sprintf("/canary-test/demo-shop-%d-%d/", os.Getpid(), time.Now().UnixNano())
	store, err := etcdstore.New(etcdstore.Config{Endpoints: testenv.EtcdEndpoints(t), Prefix: prefix, Validate: canary.ValidatePlan})
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	cli, err := clientv3.New(clientv3.Config{Endpoints: testenv.EtcdEndpoints(t), DialTimeout: 3 * time.Second, Logger: zap.NewNop()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_, _ = cli.Delete(context.Background(), prefix, clientv3.WithPrefix())
		_ = cli.Close()
	})

	shops := []*shopProc{
		startShop(t, nil, "-etcd", eps, "-etcd-prefix", prefix),
		startShop(t, nil, "-etcd", eps, "-etcd-prefix", prefix),
	}
	for i, s := range shops {
		st := s.planState()
		if st.PlanStore == nil || st.PlanStore.Source != "store" || st.PlanStore.Version != 1 || st.PlanStore.Author != "demo-shop" || st.Plan.CanaryPercent != 20 {
			t.Fatalf("shop %d at start: %+v %+v; want the seeded embedded plan (20 %%, version 1 by demo-shop) from the store", i, st.Plan, st.PlanStore)
		}
	}
	ctx := context.Background()
	cur, err := store.Get(ctx)
	if err != nil {
		t.Fatal(err)
	}
	next := bytes.Replace(cur.Data, []byte("canary_percent: 20 "), []byte("canary_percent: 50 "), 1)
	if bytes.Equal(next, cur.Data) {
		t.Fatal("the embedded plan no longer has 'canary_percent: 20 '")
	}
	if _, err := store.Apply(ctx, next, 1, planstore.Change{Author: "e2e"}); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for i, s := range shops {
		for {
			st := s.planState()
			if st.Plan.CanaryPercent == 50 && st.PlanStore.Version == 2 {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("shop %d does not run the applied plan: %+v %+v", i, st.Plan, st.PlanStore)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}

	// A rollback through one shop's admin listener (the route canaryctl
	// --server uses) reaches both; without the token it is refused.
	if a := shops[0].adminDo("POST", "/admin/canary/plan/rollback", `{"note":"e2e"}`); a.status != http.StatusUnauthorized {
		t.Fatalf("rollback without the token: %d %s, want 401", a.status, a.raw)
	}
	a := shops[0].adminDo("POST", "/admin/canary/plan/rollback", `{"note":"e2e","author":"ops"}`, "Authorization: Bearer "+adminToken)
	if a.status != http.StatusOK || !strings.Contains(a.raw, `"rolled_back_to": 1`) {
		t.Fatalf("rollback through the admin listener: %d %s", a.status, a.raw)
	}
	deadline = time.Now().Add(5 * time.Second)
	for i, s := range shops {
		for {
			st := s.planState()
			if st.Plan.CanaryPercent == 20 && st.PlanStore.Version == 3 && st.PlanStore.Author == "ops" {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("shop %d does not run the rolled-back plan: %+v %+v", i, st.Plan, st.PlanStore)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}

	// The ramp: the shops run a controller (one leads); a plan with a ramp
	// section, started through one shop's admin listener, moves both to its
	// first step; aborted, both go back to 0 %.
	auth := "Authorization: Bearer " + adminToken
	if a := shops[0].adminDo("POST", "/admin/canary/ramp/start", `{"note":"e2e"}`, auth); a.status != http.StatusConflict ||
		!strings.Contains(a.raw, "no ramp section") {
		t.Fatalf("ramp start on a plan without a ramp section: %d %s, want 409", a.status, a.raw)
	}
	body, _ := json.Marshal(map[string]any{"plan": "salt: demo-ramp\ncanary_percent: 0\nramp:\n  steps: [5% 1h, 100%]\n", "author": "ops"})
	if a := shops[1].adminDo("POST", "/admin/canary/plan/apply", string(body), auth); a.status != http.StatusOK {
		t.Fatalf("apply a plan with a ramp: %d %s", a.status, a.raw)
	}
	if a := shops[0].adminDo("POST", "/admin/canary/ramp/start", `{"note":"e2e","author":"ops"}`, auth); a.status != http.StatusOK ||
		!strings.Contains(a.raw, `"phase": "running"`) {
		t.Fatalf("ramp start: %d %s", a.status, a.raw)
	}
	waitPercent := func(pct float64) {
		deadline := time.Now().Add(15 * time.Second)
		for i, s := range shops {
			for s.planState().Plan.CanaryPercent != pct {
				if time.Now().After(deadline) {
					t.Fatalf("shop %d does not run %g %%: %+v", i, pct, s.planState().Plan)
				}
				time.Sleep(50 * time.Millisecond)
			}
		}
	}
	waitPercent(5)
	if a := shops[1].adminDo("POST", "/admin/canary/ramp/abort", `{"note":"e2e done"}`, auth); a.status != http.StatusOK {
		t.Fatalf("ramp abort: %d %s", a.status, a.raw)
	}
	waitPercent(0)
}

func TestEtcdFlagErrors(t *testing.T) {
	noEnv := func(string) string { return "" }
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"-etcd", "127.0.0.1:2379", "-plan", "plan.yaml"}, "-etcd (or DEMO_SHOP_ETCD) and -plan"},
		{[]string{"-etcd", "127.0.0.1:2379,"}, "-etcd (or DEMO_SHOP_ETCD): empty endpoint"},
		{[]string{"-etcd", "127.0.0.1:2379", "-etcd-prefix", "canary/"}, "-etcd-prefix (or DEMO_SHOP_ETCD_PREFIX)"},
	} {
		_, err := parseFlags(tc.args, noEnv, io.Discard)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("parseFlags(%q) = %v, want an error containing %q", tc.args, err, tc.want)
		}
	}
}

// TestDefaultEtcdPrefix checks the default of -etcd-prefix, written out in
// flags.go so that the embedded build needs no etcd package, against the
// plan store's own default.
func TestDefaultEtcdPrefix(t *testing.T) {
	if defaultEtcdPrefix != etcdstore.DefaultPrefix {
		t.Fatalf("-etcd-prefix defaults to %q, the plan store to %q", defaultEtcdPrefix, etcdstore.DefaultPrefix)
	}
}
