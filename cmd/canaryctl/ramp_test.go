package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"

	"github.com/reqcanary/canary"
	"github.com/reqcanary/canary/internal/testenv"
	"github.com/reqcanary/canary/planstore"
	"github.com/reqcanary/canary/planstore/etcdstore"
	"github.com/reqcanary/canary/ramp"
)

// TestRampThroughCanaryctl drives a real ramp controller on etcd through
// the admin API with the built canaryctl: start (the leader writes step 1 to
// the plan, the engine follows), pause, a refused second pause (exit 8),
// status, abort (0 %), and the audit in the plan history.
func TestRampThroughCanaryctl(t *testing.T) {
	eps := testenv.EtcdEndpoints(t)
	prefix := fmt.Sprintf("/canary-test/canaryctl-ramp-%d-%d/", os.Getpid(), time.Now().UnixNano())
	cli, err := clientv3.New(clientv3.Config{Endpoints: eps, DialTimeout: 3 * time.Second, Logger: zap.NewNop()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_, _ = cli.Delete(ctx, prefix, clientv3.WithPrefix())
		_ = cli.Close()
	})
	store, err := etcdstore.New(etcdstore.Config{Client: cli, Prefix: prefix + "plan/", Validate: canary.ValidatePlan})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = store.Close() })
	plan := "salt: ramp\ncanary_percent: 0\nramp:\n  steps: [5% 1h, 50% 1h, 100%]\n"
	if _, err := store.Apply(context.Background(), []byte(plan), 0, planstore.Change{Author: "seed"}); err != nil {
		t.Fatal(err)
	}
	eng, err := canary.New(canary.WithPlanStore(store), canary.WithPlanCacheFile(filepath.Join(t.TempDir(), "cache.yaml")))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = eng.Close() })
	controller, err := ramp.New(ramp.Config{Client: cli, Store: store, Prefix: prefix + "ramp/", Instance: "i-1",
		LeaseTTL: 2 * time.Second, RetryInterval: 100 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	runCtx, stop := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); _ = controller.Run(runCtx) }()
	t.Cleanup(func() { stop(); <-done })

	srv := httptest.NewServer(canary.AdminHandler(eng, canary.WithAdminToken(fleetToken), canary.WithAdminRamp(controller)))
	t.Cleanup(srv.Close)
	env := []string{"CANARY_ADMIN_URL=" + srv.URL, "CANARY_ADMIN_TOKEN=" + fleetToken, "CANARY_ETCD_ENDPOINTS=", "USER=ops"}

	if r := ctl(t, env, "ramp", "start", "--note", "release 42"); r.code != 0 || !strings.Contains(r.stdout, "ramp        running, step 1/3 at 5 %") {
		t.Fatalf("ramp start: %+v", r)
	}
	waitAll(t, []*canary.Engine{eng}, 5, time.Now(), 10*time.Second) // the leader wrote step 1
	if r := ctl(t, env, "ramp", "pause", "--note", "looking at p95"); r.code != 0 || !strings.Contains(r.stdout, "ramp        paused") {
		t.Fatalf("ramp pause: %+v", r)
	}
	if r := ctl(t, env, "ramp", "pause"); r.code != exitRampRefused || !strings.Contains(r.stderr, "cannot pause a ramp that is paused") {
		t.Fatalf("second pause: %+v, want exit %d", r, exitRampRefused)
	}
	var st struct {
		Phase  string `json:"phase"`
		Step   int    `json:"step"`
		Leader string `json:"leader"`
	}
	if r := ctl(t, env, "--output", "json", "ramp", "status"); r.code != 0 || json.Unmarshal([]byte(r.stdout), &st) != nil ||
		st.Phase != "paused" || st.Step != 0 || st.Leader != "i-1" {
		t.Fatalf("ramp status: %+v (%+v)", r, st)
	}
	if r := ctl(t, env, "ramp", "abort", "--note", "not this week"); r.code != 0 {
		t.Fatalf("ramp abort: %+v", r)
	}
	waitAll(t, []*canary.Engine{eng}, 0, time.Now(), 10*time.Second)
	if r := ctl(t, env, "--token", "wrong", "ramp", "start"); r.code != exitUnauthorized {
		t.Fatalf("ramp start with a wrong token: %+v, want exit %d", r, exitUnauthorized)
	}
	h, err := store.History(context.Background(), 0)
	if err != nil {
		t.Fatal(err)
	}
	var notes []string
	for _, e := range h {
		notes = append(notes, e.Author+": "+e.Note)
	}
	all := strings.Join(notes, "\n")
	for _, want := range []string{"ramp started by ops: release 42", "ramp paused by ops: looking at p95", "not this week"} {
		if !strings.Contains(all, want) {
			t.Errorf("plan history lacks %q:\n%s", want, all)
		}
	}

	// Without a controller the ramp routes say so.
	bare := httptest.NewServer(canary.AdminHandler(eng, canary.WithAdminToken(fleetToken)))
	t.Cleanup(bare.Close)
	if r := ctl(t, []string{"CANARY_ADMIN_URL=" + bare.URL, "CANARY_ADMIN_TOKEN=" + fleetToken}, "ramp", "status"); r.code != exitRampRefused ||
		!strings.Contains(r.stderr, "no ramp controller") {
		t.Fatalf("ramp status without a controller: %+v", r)
	}
}
