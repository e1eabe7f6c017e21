package ramp_test

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/reqcanary/canary"
	"github.com/reqcanary/canary/planstore"
	"github.com/reqcanary/canary/ramp"
	"github.com/reqcanary/canary/ramp/spec"
	"github.com/reqcanary/canary/tenant"
)

func TestPublisherFollowsTheGuard(t *testing.T) {
	prefix := testPrefix(t)
	cli := etcdClient(t)
	store := newStore(t, prefix, nil)
	ctx := ctxT(t, 30*time.Second)
	if _, err := store.Apply(ctx, []byte("canary_percent: 50\nguard: {enabled: true}\n"), planstore.AnyVersion, alice); err != nil {
		t.Fatal(err)
	}
	e, err := canary.New(canary.WithPlanStore(store))
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	for range 3 {
		e.RecordOutcome(ctx, tenant.Canary, true, 5*time.Millisecond)
	}
	pub, err := ramp.NewPublisher(cli, e, ramp.PublisherConfig{Prefix: prefix + "ramp/", Instance: "web-1",
		Interval: 50 * time.Millisecond, TTL: 2 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer pub.Close()
	if pub.Key() != prefix+"ramp/figures/web-1" {
		t.Fatalf("key = %s", pub.Key())
	}
	read := func() (spec.Figures, bool) {
		resp, err := cli.Get(ctx, pub.Key())
		if err != nil {
			t.Fatal(err)
		}
		if len(resp.Kvs) == 0 {
			return spec.Figures{}, false
		}
		if resp.Kvs[0].Lease == 0 {
			t.Fatal("figures published without a lease")
		}
		var f spec.Figures
		if err := json.Unmarshal(resp.Kvs[0].Value, &f); err != nil {
			t.Fatal(err)
		}
		return f, true
	}
	eventually(t, 5*time.Second, "the figures published", func() bool {
		f, ok := read()
		return ok && f.Canary.Samples == 3 && f.Canary.Failures == 3 && f.Instances == 1
	})
	// The plan turns the guard off: the figures are taken back.
	cur, _ := store.Get(ctx)
	if _, err := store.Apply(ctx, []byte("canary_percent: 50\n"), cur.Version, alice); err != nil {
		t.Fatal(err)
	}
	eventually(t, 5*time.Second, "the figures removed with the guard off", func() bool { _, ok := read(); return !ok })
	// Back on, then Close removes them at once.
	cur, _ = store.Get(ctx)
	if _, err := store.Apply(ctx, []byte("canary_percent: 50\nguard: {enabled: true}\n"), cur.Version, alice); err != nil {
		t.Fatal(err)
	}
	eventually(t, 5*time.Second, "the figures back", func() bool { _, ok := read(); return ok })
	_ = pub.Close()
	if _, ok := read(); ok {
		t.Fatal("the figures outlived Close")
	}
}

func TestConfigErrorsNameTheField(t *testing.T) {
	cli := &clientv3.Client{} // never contacted: the configuration is refused first
	cases := []struct {
		cfg  ramp.Config
		want string
	}{
		{ramp.Config{}, "Config.Client"},
		{ramp.Config{Client: cli}, "Config.Store"},
	}
	for _, c := range cases {
		if _, err := ramp.New(c.cfg); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("New(%+v) = %v, want an error naming %s", c.cfg, err, c.want)
		}
	}
	var s planstore.Store = unusedStore{}
	for _, c := range []struct {
		cfg  ramp.Config
		want string
	}{
		{ramp.Config{Client: cli, Store: s, Prefix: "/x"}, "Config.Prefix"},
		{ramp.Config{Client: cli, Store: s, LeaseTTL: 1500 * time.Millisecond}, "Config.LeaseTTL"},
		{ramp.Config{Client: cli, Store: s, OpTimeout: -1}, "Config.OpTimeout"},
	} {
		if _, err := ramp.New(c.cfg); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("New(%+v) = %v, want an error naming %s", c.cfg, err, c.want)
		}
	}
	for _, c := range []struct {
		cfg  ramp.PublisherConfig
		want string
	}{
		{ramp.PublisherConfig{}, "PublisherConfig.Instance"},
		{ramp.PublisherConfig{Instance: "a/b"}, "PublisherConfig.Instance"},
		{ramp.PublisherConfig{Instance: "a", TTL: time.Second}, "PublisherConfig.TTL"},
	} {
		if _, err := ramp.NewPublisher(cli, nopSource{}, c.cfg); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("NewPublisher(%+v) = %v, want an error naming %s", c.cfg, err, c.want)
		}
	}
	if _, err := ramp.NewPublisher(nil, nopSource{}, ramp.PublisherConfig{Instance: "a"}); err == nil {
		t.Error("NewPublisher accepted a nil client")
	}
}

type nopSource struct{}

func (nopSource) GuardFigures() (spec.Figures, bool) { return spec.Figures{}, false }

// unusedStore fills Config.Store in configuration checks; it is never called.
type unusedStore struct{ planstore.Store }

func eventually(t *testing.T, d time.Duration, what string, ok func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !ok() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %v", what, d)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
