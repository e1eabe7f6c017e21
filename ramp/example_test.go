package ramp_test

import (
	"context"
	"log"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/reqcanary/canary"
	"github.com/reqcanary/canary/planstore"
	"github.com/reqcanary/canary/planstore/etcdstore"
	"github.com/reqcanary/canary/ramp"
)

// Every instance runs an engine on the fleet's plan store, publishes its
// guard's figures, and runs a controller; one controller leads. An operator
// starts the ramp from any instance.
func Example() {
	ctx := context.Background()
	cli, err := clientv3.New(clientv3.Config{Endpoints: []string{"127.0.0.1:2379"}, DialTimeout: 3 * time.Second})
	if err != nil {
		log.Fatal(err)
	}
	defer cli.Close()
	store, err := etcdstore.New(etcdstore.Config{Client: cli, Validate: canary.ValidatePlan})
	if err != nil {
		log.Fatal(err)
	}
	defer store.Close()

	engine, err := canary.New(canary.WithPlanStore(store)) // the plan turns its guard on
	if err != nil {
		log.Fatal(err)
	}
	defer engine.Close()
	pub, err := ramp.NewPublisher(cli, engine, ramp.PublisherConfig{Instance: "web-1"})
	if err != nil {
		log.Fatal(err)
	}
	defer pub.Close()

	ctl, err := ramp.New(ramp.Config{Client: cli, Store: store, Instance: "web-1",
		PrometheusURL: "http://127.0.0.1:9090"})
	if err != nil {
		log.Fatal(err)
	}
	runCtx, stop := context.WithCancel(ctx)
	defer stop()
	go func() { _ = ctl.Run(runCtx) }()

	st, err := ctl.Start(ctx, planstore.Change{Author: "alice", Note: "release 42"})
	if err != nil {
		log.Fatal(err)
	}
	log.Printf("ramp %s: step %d/%d at %g%%", st.Phase, st.Step+1, st.Steps, st.Percent)
}
