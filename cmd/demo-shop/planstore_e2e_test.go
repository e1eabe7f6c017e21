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
