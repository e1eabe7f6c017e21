package redistoken

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"go.uber.org/goleak"

	"github.com/reqcanary/canary/dbwrap"
	"github.com/reqcanary/canary/dbwrap/tokenstoretest"
	"github.com/reqcanary/canary/internal/testenv"
)

// redisClient returns a client of the test Redis, closed at the end of the
// test.
func redisClient(t *testing.T) *redis.Client {
	t.Helper()
	c := redis.NewClient(&redis.Options{Addr: testenv.RedisAddr(t)})
	t.Cleanup(func() { c.Close() })
	if err := c.Ping(context.Background()).Err(); err != nil {
		t.Fatal(err)
	}
	return c
}

// mustNew is New, failing the test on an error.
func mustNew(t *testing.T, c redis.UniversalClient, prefix string) *Store {
	t.Helper()
	s, err := New(c, prefix)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// A nil client, also a nil *redis.Client in the interface, is a
// configuration error naming the field, never a panic at the first call.
func TestRedisTokenStoreNilClient(t *testing.T) {
	for name, c := range map[string]redis.UniversalClient{"nil": nil, "nil *redis.Client": (*redis.Client)(nil),
		"nil *redis.ClusterClient": (*redis.ClusterClient)(nil)} {
		if _, err := New(c, ""); !errors.Is(err, dbwrap.ErrInvalidConfig) || !strings.Contains(err.Error(), "redistoken.Config.Client") {
			t.Errorf("New(%s): %v, want dbwrap.ErrInvalidConfig naming redistoken.Config.Client", name, err)
		}
		if _, err := NewWithConfig(Config{Client: c}); !errors.Is(err, dbwrap.ErrInvalidConfig) {
			t.Errorf("NewWithConfig(%s): %v, want dbwrap.ErrInvalidConfig", name, err)
		}
	}
}

// closeStore closes s at the end of the test.
func closeStore(t *testing.T, s *Store) {
	t.Helper()
	t.Cleanup(func() { s.Close() })
}

func TestRedisTokenStore(t *testing.T) {
	t.Parallel()
	c := redisClient(t)
	prefix := fmt.Sprintf("canary:test:redistoken:%d:", time.Now().UnixNano())
	s := mustNew(t, c, prefix)
	closeStore(t, s)
	tokenstoretest.Contract(t, s, "3:acme:u1")
	// The key layout: prefix + key, the position as 16 hex digits, a TTL.
	if v, err := c.Get(context.Background(), prefix+"3:acme:u1").Result(); err != nil || v != "0000000000000150" {
		t.Errorf("Redis holds %q (err %v) under the prefixed key, want 0000000000000150", v, err)
	}
	if ttl, err := c.PTTL(context.Background(), prefix+"3:acme:u1").Result(); err != nil || ttl <= 0 || ttl > time.Minute {
		t.Errorf("the key's TTL = %v (err %v), want at most a minute", ttl, err)
	}
	c.Del(context.Background(), prefix+"3:acme:u1")
}

// New with an empty prefix keys under DefaultPrefix.
func TestRedisTokenStoreDefaultPrefix(t *testing.T) {
	t.Parallel()
	c := redisClient(t)
	key := fmt.Sprintf("4:test:%d", time.Now().UnixNano())
	s := mustNew(t, c, "")
	closeStore(t, s)
	if err := s.Save(context.Background(), key, 7, time.Minute); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Del(context.Background(), DefaultPrefix+key) })
	if n, err := c.Exists(context.Background(), DefaultPrefix+key).Result(); err != nil || n != 1 {
		t.Errorf("no key %s%s in Redis (err %v)", DefaultPrefix, key, err)
	}
}

// A Save while Redis is down starts the write-back; Close stops it at once
// and leaves no goroutine, even with calls stalled in flight.
func TestRedisTokenStoreCloseStopsWriteBack(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	proxy := testenv.NewFaultProxy(t, testenv.RedisAddr(t))
	defer proxy.Close()
	c := redis.NewClient(&redis.Options{Addr: proxy.Addr()})
	defer c.Close()
	s, err := NewWithConfig(Config{Client: c, Prefix: "canary:test:redistoken:close:", BreakerDelay: 20 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	proxy.Set(testenv.ProxyStall)
	if err := s.Save(ctx, "3:acme:u1", 42, time.Minute); !errors.Is(err, ErrUnavailable) {
		t.Fatalf("Save with Redis stalled = %v, want ErrUnavailable", err)
	}
	if p, err := s.Load(ctx, "3:acme:u1"); err != nil || p != 42 {
		t.Errorf("Load with Redis stalled = %d, %v; want 42 from the local copy", p, err)
	}
	time.Sleep(100 * time.Millisecond) // the write-back tries (and stalls) meanwhile
	done := make(chan struct{})
	go func() {
		proxy.Set(testenv.ProxyCut) // the stalled calls end with the connections
		s.Close()
		close(done)
	}()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("Close did not return")
	}
	if err := s.Save(ctx, "3:acme:u1", 43, time.Minute); !errors.Is(err, ErrUnavailable) || !errors.Is(err, dbwrap.ErrClosed) {
		t.Errorf("Save after Close = %v, want ErrUnavailable and dbwrap.ErrClosed", err)
	}
	if err := s.Close(); err != nil {
		t.Errorf("second Close = %v", err)
	}
}

func TestRedisTokenConfigErrors(t *testing.T) {
	c := redis.NewClient(&redis.Options{Addr: "127.0.0.1:1"})
	defer c.Close()
	for _, tc := range []struct {
		cfg   Config
		field string
	}{
		{Config{}, "Config.Client"},
		{Config{Client: c, Timeout: -1}, "Config.Timeout"},
		{Config{Client: c, BreakerDelay: -1}, "Config.BreakerDelay"},
	} {
		_, err := NewWithConfig(tc.cfg)
		if err == nil || !strings.Contains(err.Error(), tc.field) || !errors.Is(err, dbwrap.ErrInvalidConfig) {
			t.Errorf("%+v: err = %v, want dbwrap.ErrInvalidConfig naming %s", tc.cfg, err, tc.field)
		}
	}
}
