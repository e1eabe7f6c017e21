package fallback

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

	"github.com/reqcanary/canary/internal/testenv"
	"github.com/reqcanary/canary/tenant"
)

// redisCache returns a Redis cache on the test Redis, closing its client at
// the end of the test.
func testRedisCache(t *testing.T, ttl time.Duration) Cache {
	t.Helper()
	client := redisClient(t)
	c, err := NewRedisCache(client, ttl)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func redisClient(t *testing.T) *redis.Client {
	t.Helper()
	client := redis.NewClient(&redis.Options{Addr: testenv.RedisAddr(t)})
	t.Cleanup(func() { client.Close() })
	if err := client.Ping(context.Background()).Err(); err != nil {
		if testenv.InCI() {
			t.Fatalf("redis: %v", err)
		}
		t.Skipf("redis: %v", err)
	}
	return client
}

func TestNewRedisCacheErrors(t *testing.T) {
	if _, err := NewRedisCache(nil, time.Minute); err == nil {
		t.Error("nil client accepted")
	}
	client := redis.NewClient(&redis.Options{Addr: "127.0.0.1:1"})
	defer client.Close()
	if _, err := NewRedisCache(client, 0); err == nil {
		t.Error("ttl 0 accepted")
	}
	for field, c := range map[string]RedisCacheConfig{
		"MaxKeys":       {Client: client, TTL: time.Minute, MaxKeys: -1},
		"MaxTenantKeys": {Client: client, TTL: time.Minute, MaxTenantKeys: -1},
		"TTL":           {Client: client},
		"Client":        {TTL: time.Minute},
	} {
		if _, err := NewRedisCacheWith(c); err == nil || !strings.Contains(err.Error(), "RedisCacheConfig."+field) {
			t.Errorf("bad %s: error %v does not name it", field, err)
		}
	}
}

func TestRedisCacheRoundTripAndTTL(t *testing.T) {
	client := redisClient(t)
	c, _ := NewRedisCache(client, 2*time.Second)
	ctx := context.Background()
	key := "canary:fallback:test:" + t.Name() + time.Now().String()
	t.Cleanup(func() { client.Del(context.Background(), key) })
	if _, ok, err := c.Get(ctx, key); ok || err != nil {
		t.Fatalf("empty key: ok=%v err=%v", ok, err)
	}
	want := &Entry{Status: 203, Header: http.Header{"Content-Type": {"text/plain"}, "X-Multi": {"a", "b"}},
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
	ttl, err := client.PTTL(ctx, key).Result()
	if err != nil || ttl <= 0 || ttl > 2*time.Second {
		t.Fatalf("PTTL = %v, %v: the entry does not expire after the cache's ttl", ttl, err)
	}
	client.Set(ctx, key, "garbage", time.Minute)
	if _, _, err := c.Get(ctx, key); !errors.Is(err, ErrCacheEntry) {
		t.Fatalf("malformed entry: error %v, want ErrCacheEntry", err)
	}
}

// TestRedisCacheSharedByTransports: two transports (two processes) sharing
// one Redis serve each other's answers for the same dependency and tenant.
func TestRedisCacheSharedByTransports(t *testing.T) {
	c1, c2 := testRedisCache(t, time.Minute), testRedisCache(t, time.Minute)
	name := "shared-" + time.Now().Format(time.RFC3339Nano)
	sw := &switchable{serve: ok200}
	stable := newServer(t, "stable", sw.handler).URL
	tr1 := mustTransport(t, Config{Name: name, Stable: stable, Cache: c1})
	tr2 := mustTransport(t, Config{Name: name, Stable: stable, Cache: c2})
	other := mustTransport(t, Config{Name: name + "-other", Stable: stable, Cache: c2})
	ctx := labelled(tenant.Stable, "acme", "")
	if r := do(t, tr1, ctx, "GET", "http://dep/r", ""); r.servedBy != "stable" {
		t.Fatalf("%+v", r)
	}
	sw.broken.Store(true)
	if r := do(t, tr2, ctx, "GET", "http://dep/r", ""); r.servedBy != "cache" || r.body != "hello from stable /r" {
		t.Fatalf("second transport: %+v, want the answer the first one stored", r)
	}
	if r := do(t, other, ctx, "GET", "http://dep/r", ""); r.servedBy == "cache" {
		t.Fatal("another dependency read this one's answer")
	}
}

func TestRedisCacheDownKeepsServing(t *testing.T) {
	client := redis.NewClient(&redis.Options{Addr: refusedURL(t)[len("http://"):], MaxRetries: -1})
	t.Cleanup(func() { client.Close() })
	c, _ := NewRedisCache(client, time.Minute)
	tr, sw := cacheSetup(t, c, nil, nil)
	ctx := labelled(tenant.Stable, "acme", "")
	if r := do(t, tr, ctx, "GET", "http://dep/x", ""); r.servedBy != "stable" || r.status != 200 {
		t.Fatalf("%+v", r)
	}
	sw.broken.Store(true)
	if r := do(t, tr, ctx, "GET", "http://dep/x", ""); r.servedBy != "stable" || r.status != 503 {
		t.Fatalf("%+v", r)
	}
}

func TestEntryCodecRoundTrip(t *testing.T) {
	for _, e := range []*Entry{
		{Status: 200, Stored: time.Unix(0, 0)},
		{Status: 204, Header: http.Header{}, Body: nil, Stored: time.Unix(-5, 7)},
		{Status: 299, Header: http.Header{"A": {""}, "B": {"1", "2", "3"}}, Body: bytes.Repeat([]byte{0xff}, 300), Stored: time.Unix(1e9, 1)},
	} {
		got, err := decodeEntry(encodeEntry(e))
		if err != nil {
			t.Fatalf("decode(encode(%+v)): %v", e, err)
		}
		if got.Status != e.Status || len(got.Header) != len(e.Header) || !bytes.Equal(got.Body, e.Body) || !got.Stored.Equal(e.Stored) {
			t.Fatalf("got %+v, want %+v", got, e)
		}
		for k, v := range e.Header {
			if !reflect.DeepEqual(got.Header[k], v) {
				t.Fatalf("header %s = %v, want %v", k, got.Header[k], v)
			}
		}
	}
}

func FuzzDecodeEntry(f *testing.F) {
	f.Add(encodeEntry(&Entry{Status: 200, Header: http.Header{"A": {"b"}}, Body: []byte("x")}))
	f.Add([]byte{1, 200, 1})
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, b []byte) {
		e, err := decodeEntry(b)
		if err != nil {
			if !errors.Is(err, ErrCacheEntry) {
				t.Fatalf("error %v is not ErrCacheEntry", err)
			}
			return
		}
		again, err := decodeEntry(encodeEntry(e))
		if err != nil || again.Status != e.Status || !bytes.Equal(again.Body, e.Body) || !reflect.DeepEqual(again.Header, e.Header) {
			t.Fatalf("re-encoding %+v gives %+v, %v", e, again, err)
		}
	})
}
