package rediscache_test

import (
	"bytes"
	"context"
	"errors"
	"net/http"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/reqcanary/canary/fallback"
	"github.com/reqcanary/canary/fallback/rediscache"
	"github.com/reqcanary/canary/tenant"
)

func TestNewErrors(t *testing.T) {
	client := redis.NewClient(&redis.Options{Addr: "127.0.0.1:1"})
	defer client.Close()
	for _, tc := range []struct {
		name   string
		client *redis.Client
		ttl    time.Duration
		opts   []rediscache.Option
	}{
		{"client", nil, time.Minute, nil},
		{"ttl", client, 0, nil},
		{"ttl", client, time.Millisecond - 1, nil},
		{"WithMaxKeys", client, time.Minute, []rediscache.Option{rediscache.WithMaxKeys(-1)}},
		{"WithMaxTenantKeys", client, time.Minute, []rediscache.Option{rediscache.WithMaxTenantKeys(-1)}},
	} {
		if _, err := rediscache.New(tc.client, tc.ttl, tc.opts...); err == nil || !strings.Contains(err.Error(), "rediscache: "+tc.name+":") {
			t.Errorf("bad %s: error %v does not name it", tc.name, err)
		}
	}
	if c, err := rediscache.New(client, time.Millisecond, nil, rediscache.WithMaxKeys(0)); c == nil || err != nil {
		t.Errorf("defaults and a nil option: %v, %v", c, err)
	}
}

func TestCacheRoundTripAndTTL(t *testing.T) {
	c, client, prefix := newCache(t, 2*time.Second)
	ctx := context.Background()
	key := "canary:fallback:test:" + t.Name()
	if _, ok, err := c.Get(ctx, key); ok || err != nil {
		t.Fatalf("empty key: ok=%v err=%v", ok, err)
	}
	want := &fallback.Entry{Status: 203, Header: http.Header{"Content-Type": {"text/plain"}, "X-Multi": {"a", "b"}},
		Body: []byte("body\x00bytes"), Stored: time.Unix(1700000000, 123)}
	if err := c.Set(ctx, key, want); err != nil {
		t.Fatal(err)
	}
	got, ok, err := c.Get(ctx, key)
	if err != nil || !ok {
		t.Fatalf("Get: ok=%v err=%v", ok, err)
	}
	if got.Status != want.Status || !reflect.DeepEqual(got.Header, want.Header) || !bytes.Equal(got.Body, want.Body) || !got.Stored.Equal(want.Stored) {
		t.Fatalf("got %+v, want %+v", got, want)
	}
	// The entry is stored as it always was: under the prefix and the key,
	// in fallback.EncodeEntry's encoding, so earlier entries stay readable.
	// (Headers are encoded in map order: decode to compare.)
	raw, err := client.Get(ctx, prefix+key).Bytes()
	if err != nil {
		t.Fatalf("the entry is not under %s: %v", prefix+key, err)
	}
	if stored, err := fallback.DecodeEntry(raw); err != nil || stored.Status != want.Status ||
		!reflect.DeepEqual(stored.Header, want.Header) || !bytes.Equal(stored.Body, want.Body) || !stored.Stored.Equal(want.Stored) {
		t.Fatalf("Redis holds %q under %s: %+v, %v; want the encoded entry", raw, prefix+key, stored, err)
	}
	ttl, err := client.PTTL(ctx, prefix+key).Result()
	if err != nil || ttl <= 0 || ttl > 2*time.Second {
		t.Fatalf("PTTL = %v, %v: the entry does not expire after the cache's ttl", ttl, err)
	}
	client.Set(ctx, prefix+key, "garbage", time.Minute)
	if _, _, err := c.Get(ctx, key); !errors.Is(err, fallback.ErrCacheEntry) {
		t.Fatalf("malformed entry: error %v, want ErrCacheEntry", err)
	}
}

// TestCacheSharedByTransports: two transports (two processes) sharing
// one Redis serve each other's answers for the same dependency and tenant.
func TestCacheSharedByTransports(t *testing.T) {
	c1, _, prefix := newCache(t, time.Minute)
	c2, err := rediscache.New(redisClient(t), time.Minute, rediscache.WithPrefix(prefix))
	if err != nil {
		t.Fatal(err)
	}
	name := "shared-" + time.Now().Format(time.RFC3339Nano)
	stable, sw := stableServer(t, nil)
	tr1 := newTransport(t, fallback.Config{Name: name, Stable: stable, Cache: c1})
	tr2 := newTransport(t, fallback.Config{Name: name, Stable: stable, Cache: c2})
	other := newTransport(t, fallback.Config{Name: name + "-other", Stable: stable, Cache: c2})
	ctx := labelled(tenant.Stable, "acme", "")
	first := do(t, tr1, ctx, "GET", "http://dep/r")
	if first.servedBy != "stable" {
		t.Fatalf("%+v", first)
	}
	sw.broken.Store(true)
	if r := do(t, tr2, ctx, "GET", "http://dep/r"); r.servedBy != "cache" || r.body != first.body {
		t.Fatalf("second transport: %+v, want the answer the first one stored", r)
	}
	if r := do(t, other, ctx, "GET", "http://dep/r"); r.servedBy == "cache" {
		t.Fatal("another dependency read this one's answer")
	}
}

func TestCacheDownKeepsServing(t *testing.T) {
	client := redis.NewClient(&redis.Options{Addr: refusedAddr(t), MaxRetries: -1})
	t.Cleanup(func() { client.Close() })
	c, err := rediscache.New(client, time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	tr, sw := cacheSetup(t, c, nil, nil)
	ctx := labelled(tenant.Stable, "acme", "")
	if r := do(t, tr, ctx, "GET", "http://dep/x"); r.servedBy != "stable" || r.status != 200 {
		t.Fatalf("%+v", r)
	}
	sw.broken.Store(true)
	if r := do(t, tr, ctx, "GET", "http://dep/x"); r.servedBy != "stable" || r.status != 503 {
		t.Fatalf("%+v", r)
	}
}
