package redisswitch

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/reqcanary/canary/fleetswitch"
	"github.com/reqcanary/canary/internal/testenv"
	"go.uber.org/goleak"
)

// fleetEnv is a unique prefix on the test Redis, shared by the instances of
// one test.
type fleetEnv struct {
	t      *testing.T
	addr   string
	prefix string
	admin  *redis.Client
}

func newFleetEnv(t *testing.T) *fleetEnv {
	t.Helper()
	addr := testenv.RedisAddr(t)
	e := &fleetEnv{
		t:      t,
		addr:   addr,
		prefix: fmt.Sprintf("canary-test:%s:%x:", t.Name(), rand.Uint64()),
		admin:  redis.NewClient(&redis.Options{Addr: addr}),
	}
	t.Cleanup(func() {
		e.admin.Del(context.Background(), Key(e.prefix))
		e.admin.Close()
	})
	return e
}

// client returns a new Redis client (an instance's own connections), named
// so that the test can kill its connections.
func (e *fleetEnv) client(name string) *redis.Client {
	c := redis.NewClient(&redis.Options{Addr: e.addr, ClientName: name})
	e.t.Cleanup(func() { c.Close() })
	return c
}

// start returns a started Switch on a client of its own.
func (e *fleetEnv) start(name string, opts fleetswitch.Options) *redisSwitch {
	e.t.Helper()
	opts.Prefix = e.prefix
	s, err := open(e.client(name), opts)
	if err != nil {
		e.t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := s.Start(ctx); err != nil {
		e.t.Fatal(err)
	}
	e.t.Cleanup(func() {
		if err := s.Close(); err != nil {
			e.t.Errorf("Close: %v", err)
		}
	})
	return s
}

// open opens a switch the way the engine does, through the backend of New,
// and returns the implementation.
func open(client *redis.Client, opts fleetswitch.Options) (*redisSwitch, error) {
	sw, err := New(client).Open(opts)
	if err != nil {
		return nil, err
	}
	return sw.(*redisSwitch), nil
}

// eventually fails the test unless cond holds within d.
func eventually(t *testing.T, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %v", what, d)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func set(t *testing.T, s *redisSwitch, on bool, reason, actor string) {
	t.Helper()
	if err := s.Set(context.Background(), on, reason, actor); err != nil {
		t.Fatal(err)
	}
}

func TestFleetFollowsWithinASecond(t *testing.T) {
	e := newFleetEnv(t)
	var fleet []*redisSwitch
	var mu sync.Mutex
	seen := map[string][]fleetswitch.State{} // OnChange calls per instance
	for i := range 4 {
		name := fmt.Sprintf("instance-%d", i)
		s := e.start(name, fleetswitch.Options{})
		s.OnChange(func(st fleetswitch.State) {
			mu.Lock()
			seen[name] = append(seen[name], st)
			mu.Unlock()
		})
		if s.State().On || s.State().Version != 0 {
			t.Fatalf("%s: a fresh fleet's state is %+v, want off", name, s.State())
		}
		fleet = append(fleet, s)
	}

	before := time.Now()
	set(t, fleet[0], true, "guard", "instance-0")
	if st := fleet[0].State(); !st.On || st.Reason != "guard" || st.Actor != "instance-0" || st.Version == 0 {
		t.Fatalf("the setter's own state after Set: %+v", st)
	} else if st.At.Before(before.Add(-time.Second)) || st.At.After(time.Now().Add(time.Second)) {
		t.Errorf("At = %v, want about now", st.At)
	}
	want := fleet[0].State()
	for i, s := range fleet[1:] {
		eventually(t, time.Second, fmt.Sprintf("instance-%d follows on", i+1), func() bool { return s.State() == want })
	}
	for i := range fleet {
		name := fmt.Sprintf("instance-%d", i)
		eventually(t, time.Second, name+"'s OnChange", func() bool {
			mu.Lock()
			defer mu.Unlock()
			return len(seen[name]) == 1 && seen[name][0] == want
		})
	}

	// A new instance reads the state when it starts.
	late := e.start("late", fleetswitch.Options{})
	if st := late.State(); st != want {
		t.Fatalf("an instance started afterwards reads %+v, want %+v", st, want)
	}

	// Off again, from another instance.
	set(t, fleet[2], false, "re-armed", "operator@example.com")
	off := fleet[2].State()
	if off.On || off.Version <= want.Version {
		t.Fatalf("after off: %+v", off)
	}
	for i, s := range append(fleet, late) {
		eventually(t, time.Second, fmt.Sprintf("instance %d follows off", i), func() bool { return s.State() == off })
	}

	// The key holds the state as JSON.
	raw, err := e.admin.Get(context.Background(), late.Key()).Result()
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(raw, `{"seq":`) || !strings.Contains(raw, `"on":false,"reason":"re-armed","actor":"operator@example.com","at":"`) {
		t.Errorf("key holds %s", raw)
	}
}

func TestVersionsNeverGoBack(t *testing.T) {
	s, err := open(redis.NewClient(&redis.Options{Addr: "127.0.0.1:1"}), fleetswitch.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.rdb.Close()
	if !s.apply(fleetswitch.State{On: true, Version: 10}) {
		t.Fatal("a newer state was not applied")
	}
	if s.apply(fleetswitch.State{On: false, Version: 9}) || s.apply(fleetswitch.State{On: false, Version: 10}) {
		t.Fatal("an older or equal version was applied")
	}
	if st := s.State(); !st.On || st.Version != 10 {
		t.Fatalf("state %+v", st)
	}
}

// Concurrent Sets from several instances: every instance ends on the state
// with the highest version, which is the one the key holds.
func TestConcurrentSetsConverge(t *testing.T) {
	e := newFleetEnv(t)
	var fleet []*redisSwitch
	for i := range 3 {
		fleet = append(fleet, e.start(fmt.Sprintf("i%d", i), fleetswitch.Options{}))
	}
	var wg sync.WaitGroup
	for i, s := range fleet {
		wg.Go(func() {
			for j := range 20 {
				if err := s.Set(context.Background(), j%2 == 0, fmt.Sprintf("r%d-%d", i, j), "t"); err != nil {
					t.Error(err)
				}
			}
		})
	}
	wg.Wait()
	raw, err := e.admin.Get(context.Background(), fleet[0].Key()).Result()
	if err != nil {
		t.Fatal(err)
	}
	final, err := decodeState(raw)
	if err != nil {
		t.Fatal(err)
	}
	for i, s := range fleet {
		eventually(t, time.Second, fmt.Sprintf("instance %d converges", i), func() bool { return s.State() == final })
	}
}

// A change that reaches the key but whose message is missed (here: written
// without publishing) is caught up by the periodic re-read.
func TestResyncCatchesMissedChange(t *testing.T) {
	e := newFleetEnv(t)
	s := e.start("follower", fleetswitch.Options{ResyncInterval: 200 * time.Millisecond})
	missed := fmt.Sprintf(`{"seq":%d,"on":true,"reason":"missed","actor":"x","at":"2026-01-01T00:00:00Z"}`, time.Now().UnixMicro())
	if err := e.admin.Set(context.Background(), s.Key(), missed, 0).Err(); err != nil {
		t.Fatal(err)
	}
	eventually(t, time.Second, "the re-read adopts the key", func() bool {
		st := s.State()
		return st.On && st.Reason == "missed"
	})
}

// killClients kills every connection named name.
func killClients(t *testing.T, admin *redis.Client, name string) int {
	t.Helper()
	list, err := admin.ClientList(context.Background()).Result()
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, line := range strings.Split(list, "\n") {
		var id string
		named := false
		for _, f := range strings.Fields(line) {
			if v, ok := strings.CutPrefix(f, "id="); ok {
				id = v
			}
			if f == "name="+name {
				named = true
			}
		}
		if named && id != "" {
			if err := admin.Do(context.Background(), "CLIENT", "KILL", "ID", id).Err(); err == nil {
				n++
			}
		}
	}
	return n
}

// Killing an instance's connections (its subscription included) does not
// break it: it reconnects, catches up on what it missed, and follows later
// changes again.
func TestConnectionKilledThenCaughtUp(t *testing.T) {
	e := newFleetEnv(t)
	name := fmt.Sprintf("victim-%x", rand.Uint32())
	victim := e.start(name, fleetswitch.Options{ResyncInterval: 500 * time.Millisecond, Timeout: time.Second})
	setter := e.start("setter", fleetswitch.Options{})

	if n := killClients(t, e.admin, name); n == 0 {
		t.Fatal("no connection of the victim found to kill")
	}
	set(t, setter, true, "while-down", "setter") // may be published while the victim is away
	want := setter.State()
	eventually(t, 3*time.Second, "the victim catches up after the kill", func() bool { return victim.State() == want })

	// Kill again, and let the re-read be the only way back: change the key
	// without publishing.
	killClients(t, e.admin, name)
	missed := fmt.Sprintf(`{"seq":%d,"on":false,"reason":"quiet","actor":"x","at":"2026-01-01T00:00:00Z"}`, want.Version+1)
	if err := e.admin.Set(context.Background(), victim.Key(), missed, 0).Err(); err != nil {
		t.Fatal(err)
	}
	eventually(t, 3*time.Second, "the victim re-reads the key", func() bool { return victim.State().Reason == "quiet" })

	// Messages flow again.
	set(t, setter, true, "after", "setter")
	want = setter.State()
	eventually(t, time.Second, "the victim follows a message after reconnecting", func() bool { return victim.State() == want })
	if err := victim.LastError(); err != nil {
		t.Errorf("LastError after recovery: %v", err)
	}
}

// Closing the Redis client under a running Switch neither panics nor
// leaks: the Switch reports the error and Close still ends its goroutines.
func TestClientClosedUnderneath(t *testing.T) {
	ignore := goleak.IgnoreCurrent()
	t.Cleanup(func() { goleak.VerifyNone(t, ignore) }) // after every other cleanup
	e := newFleetEnv(t)
	opts := fleetswitch.Options{Prefix: e.prefix, ResyncInterval: 50 * time.Millisecond, Timeout: 500 * time.Millisecond}
	c := redis.NewClient(&redis.Options{Addr: e.addr})
	s, err := open(c, opts)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	eventually(t, 2*time.Second, "LastError reports the closed client", func() bool { return s.LastError() != nil })
	if err := s.Set(context.Background(), true, "x", "y"); err == nil {
		t.Error("Set on a closed client succeeded")
	}
	if err := s.Close(); err != nil && !strings.Contains(err.Error(), "closed") {
		t.Errorf("Close: %v", err)
	}
}

// If the key vanishes (Redis restarted without persistence) while the
// switch is on, an instance writes it back: new instances must not turn the
// canary on again by accident.
func TestVanishedKeyIsRestored(t *testing.T) {
	e := newFleetEnv(t)
	s := e.start("keeper", fleetswitch.Options{ResyncInterval: 100 * time.Millisecond})
	set(t, s, true, "guard", "keeper")
	if err := e.admin.Del(context.Background(), s.Key()).Err(); err != nil {
		t.Fatal(err)
	}
	eventually(t, 2*time.Second, "the key is restored", func() bool {
		raw, err := e.admin.Get(context.Background(), s.Key()).Result()
		if err != nil {
			return false
		}
		st, err := decodeState(raw)
		return err == nil && st.On && st.Reason == "guard"
	})
	if late := e.start("late", fleetswitch.Options{}); !late.State().On {
		t.Error("a new instance does not read the restored state")
	}
	// An off switch is not written back: off is what a missing key means.
	set(t, s, false, "", "")
	e.admin.Del(context.Background(), s.Key())
	time.Sleep(300 * time.Millisecond)
	if n := e.admin.Exists(context.Background(), s.Key()).Val(); n != 0 {
		t.Error("an off switch was written back")
	}
}

func TestMalformedStates(t *testing.T) {
	e := newFleetEnv(t)
	s := e.start("reader", fleetswitch.Options{ResyncInterval: time.Hour})
	if err := e.admin.Publish(context.Background(), s.channel, "not json").Err(); err != nil {
		t.Fatal(err)
	}
	eventually(t, time.Second, "LastError reports the malformed message", func() bool { return s.LastError() != nil })
	if st := s.State(); st.On || st.Version != 0 {
		t.Errorf("state after a malformed message: %+v", st)
	}
	// A malformed key makes Start fail, naming the key.
	e.admin.Set(context.Background(), s.Key(), `{"on":true}`, 0) // no version
	s2, err := open(e.client("s2"), fleetswitch.Options{Prefix: e.prefix})
	if err != nil {
		t.Fatal(err)
	}
	defer s2.Close()
	if err := s2.Start(context.Background()); err == nil || !strings.Contains(err.Error(), s.Key()) {
		t.Errorf("Start over a malformed key: %v", err)
	}
}

func TestStartFailsWithoutRedis(t *testing.T) {
	ignore := goleak.IgnoreCurrent()
	t.Cleanup(func() { goleak.VerifyNone(t, ignore) })
	c := redis.NewClient(&redis.Options{Addr: "127.0.0.1:1", DialTimeout: 200 * time.Millisecond, MaxRetries: -1})
	defer c.Close()
	s, err := open(c, fleetswitch.Options{})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	if err := s.Start(ctx); err == nil {
		t.Fatal("Start succeeded without Redis")
	}
	if err := s.Set(ctx, true, "", ""); !errors.Is(err, fleetswitch.ErrNotStarted) {
		t.Errorf("Set before a successful Start: %v, want fleetswitch.ErrNotStarted", err)
	}
	if err := s.Close(); err != nil {
		t.Errorf("Close: %v", err)
	}
}

func TestLifecycleAndArguments(t *testing.T) {
	if _, err := open(nil, fleetswitch.Options{}); !errors.Is(err, fleetswitch.ErrInvalidOption) || !strings.Contains(err.Error(), "client") {
		t.Errorf("New(nil).Open: %v", err)
	}
	if sw, err := (*backend)(nil).Open(fleetswitch.Options{}); !errors.Is(err, fleetswitch.ErrInvalidOption) || sw != nil {
		t.Errorf("Open on a nil backend: %v, %v; want no switch and an invalid option", sw, err)
	}
	unused := redis.NewClient(&redis.Options{Addr: "127.0.0.1:1"})
	defer unused.Close()
	for _, o := range []fleetswitch.Options{{ResyncInterval: -1}, {Timeout: -1}} {
		if _, err := open(unused, o); !errors.Is(err, fleetswitch.ErrInvalidOption) {
			t.Errorf("Open(%+v): %v", o, err)
		}
	}
	if got := Key(""); got != "canary:kill-switch" {
		t.Errorf("default key %q", got)
	}
	if got := Channel("shop:"); got != "shop:kill-switch:changes" {
		t.Errorf("channel %q", got)
	}

	e := newFleetEnv(t)
	s := e.start("s", fleetswitch.Options{})
	ctx := context.Background()
	if err := s.Start(ctx); !errors.Is(err, fleetswitch.ErrStarted) {
		t.Errorf("second Start: %v", err)
	}
	for _, c := range []struct{ reason, actor, field string }{
		{strings.Repeat("r", fleetswitch.MaxReasonLen+1), "", "reason"},
		{"", strings.Repeat("a", fleetswitch.MaxActorLen+1), "actor"},
	} {
		err := s.Set(ctx, true, c.reason, c.actor)
		if !errors.Is(err, fleetswitch.ErrInvalidArgument) || !strings.Contains(err.Error(), c.field) {
			t.Errorf("Set with a long %s: %v", c.field, err)
		}
	}
	if s.State().On {
		t.Error("a rejected Set changed the state")
	}
	// Odd but valid text survives the round trip.
	set(t, s, true, `quote " backslash \ newline `+"\n"+` ünïcode`, "")
	if got := e.start("reader", fleetswitch.Options{}).State().Reason; got != `quote " backslash \ newline `+"\n"+` ünïcode` {
		t.Errorf("reason read back as %q", got)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
	if err := s.Set(ctx, false, "", ""); !errors.Is(err, fleetswitch.ErrClosed) {
		t.Errorf("Set after Close: %v", err)
	}
	if err := s.Start(ctx); !errors.Is(err, fleetswitch.ErrClosed) {
		t.Errorf("Start after Close: %v", err)
	}
	if !s.State().On {
		t.Error("the state is not readable after Close")
	}
}

// Load reads the fleet's state before Start without leaving anything
// running: no goroutine, no subscription.
func TestLoadBeforeStart(t *testing.T) {
	e := newFleetEnv(t)
	set(t, e.start("writer", fleetswitch.Options{}), true, "operator: load test", "writer")

	ignore := goleak.IgnoreCurrent()
	s, err := open(e.client("loader"), fleetswitch.Options{Prefix: e.prefix})
	if err != nil {
		t.Fatal(err)
	}
	var heard []fleetswitch.State
	var mu sync.Mutex
	s.OnChange(func(st fleetswitch.State) { mu.Lock(); heard = append(heard, st); mu.Unlock() })
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := s.Load(ctx); err != nil {
		t.Fatal(err)
	}
	if st := s.State(); !st.On || st.Reason != "operator: load test" {
		t.Errorf("state after Load: %+v, want the writer's", st)
	}
	if err := goleak.Find(ignore); err != nil {
		t.Errorf("Load left goroutines: %v", err)
	}
	n, err := e.admin.PubSubNumSub(ctx, s.channel).Result()
	if err != nil {
		t.Fatal(err)
	}
	if n[s.channel] != 1 { // the writer's only
		t.Errorf("%d subscribers after Load, want the writer's 1", n[s.channel])
	}

	if err := s.Start(ctx); err != nil {
		t.Fatalf("Start after Load: %v", err)
	}
	eventually(t, time.Second, "the listener hears of the loaded state once started", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(heard) == 1 && heard[0].On
	})
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if err := s.Load(ctx); !errors.Is(err, fleetswitch.ErrClosed) {
		t.Errorf("Load after Close: %v, want fleetswitch.ErrClosed", err)
	}
}

func TestLoadFailsWithoutRedis(t *testing.T) {
	c := redis.NewClient(&redis.Options{Addr: "127.0.0.1:1", DialTimeout: 200 * time.Millisecond, MaxRetries: -1})
	defer c.Close()
	s, err := open(c, fleetswitch.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	if err := s.Load(ctx); err == nil || !strings.Contains(err.Error(), "read canary:kill-switch") {
		t.Errorf("Load without Redis: %v, want an error naming the key", err)
	}
}
