package dbwrap

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/reqcanary/canary/internal/testenv"
	"github.com/reqcanary/canary/tenant"
)

func TestLSNRoundTrip(t *testing.T) {
	for _, s := range []string{"0/1", "16/B374D848", "FFFFFFFF/FFFFFFFF"} {
		p, err := parseLSN(s)
		if err != nil || formatLSN(p) != s {
			t.Errorf("parseLSN(%q) = %x, %v; formats as %q", s, p, err, formatLSN(p))
		}
	}
	for _, s := range []string{"", "/", "1/", "/1", "x/1", "1/2/3", "100000000/0"} {
		if _, err := parseLSN(s); err == nil {
			t.Errorf("parseLSN(%q) accepted", s)
		}
	}
	if _, ok := ConsistencyToken(WithConsistencyToken(context.Background(), "garbage")); ok {
		t.Error("a malformed token was attached")
	}
	a := WithConsistencyToken(context.Background(), "1/0")
	if tok, _ := ConsistencyToken(WithConsistencyToken(a, "0/FF")); tok != "1/0" {
		t.Errorf("a lower token replaced a higher one: %s", tok)
	}
}

// testStore checks a TokenStore's contract: the highest position wins, the
// TTL is refreshed, and an entry expires only after its TTL.
func testStore(t *testing.T, s TokenStore, key string) {
	ctx := context.Background()
	if p, err := s.Load(ctx, key); err != nil || p != 0 {
		t.Fatalf("empty Load = %x, %v", p, err)
	}
	if err := s.Save(ctx, key, 0x200, time.Minute); err != nil {
		t.Fatal(err)
	}
	if err := s.Save(ctx, key, 0x100, time.Minute); err != nil {
		t.Fatal(err)
	}
	if p, err := s.Load(ctx, key); err != nil || p != 0x200 {
		t.Errorf("Load after a lower Save = %x, %v; want 200", p, err)
	}
	if err := s.Save(ctx, key, positionUnknown, time.Minute); err != nil {
		t.Fatal(err)
	}
	if p, _ := s.Load(ctx, key); p != positionUnknown {
		t.Errorf("Load = %x, want the unknown position", p)
	}
	// A later write's known position replaces the unknown one, even a lower
	// one than before: it covers every earlier write.
	if err := s.Save(ctx, key, 0x150, time.Minute); err != nil {
		t.Fatal(err)
	}
	if p, _ := s.Load(ctx, key); p != 0x150 {
		t.Errorf("Load after a known position replaced the unknown one = %x, want 150", p)
	}
	short := key + "-short"
	if err := s.Save(ctx, short, 5, 100*time.Millisecond); err != nil {
		t.Fatal(err)
	}
	if p, _ := s.Load(ctx, short); p != 5 {
		t.Errorf("Load before the TTL = %d, want 5", p)
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		p, _ := s.Load(ctx, short)
		if p == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the entry did not expire")
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestMemoryTokenStore(t *testing.T) {
	t.Parallel()
	testStore(t, NewMemoryTokenStore(), "3:acme:u1")
}

func redisClient(t *testing.T) *redis.Client {
	t.Helper()
	c := redis.NewClient(&redis.Options{Addr: testenv.RedisAddr(t)})
	t.Cleanup(func() { c.Close() })
	if err := c.Ping(context.Background()).Err(); err != nil {
		t.Fatal(err)
	}
	return c
}

func TestRedisTokenStore(t *testing.T) {
	t.Parallel()
	c := redisClient(t)
	prefix := fmt.Sprintf("canary:test:dbwrap:%d:", time.Now().UnixNano())
	testStore(t, NewRedisTokenStore(c, prefix), "3:acme:u1")
	c.Del(context.Background(), prefix+"3:acme:u1")
}

// Two instances share a Redis token store: the user's write through one is
// read by the user's next request on the other, while the replica is paused.
func TestPGRedisTokenStoreAcrossInstances(t *testing.T) {
	e := newPGEnv(t)
	c := redisClient(t)
	store := NewRedisTokenStore(c, fmt.Sprintf("canary:test:dbwrap:%d:", time.Now().UnixNano()))
	cfg := e.config()
	cfg.MaxReplicaLag = time.Hour
	cfg.TokenStore = store
	a, b := e.open(t, cfg), e.open(t, cfg)
	tbl := e.table(t, "id int")
	e.pauseReplay(t)

	bg := context.Background()
	user := tenant.Labels{Tenant: "acme", UserHash: strings.Repeat("9a", 16)}
	if _, err := a.ExecContext(tenant.NewContext(bg, user), "insert into "+tbl+" values (1)"); err != nil {
		t.Fatal(err)
	}
	var n int
	if err := b.QueryRowContext(tenant.NewContext(bg, user), "select count(*) from "+tbl).Scan(&n); err != nil || n != 1 {
		t.Errorf("the user's next request on the other instance sees %d rows (err %v), want 1", n, err)
	}
	anon := tenant.NewContext(bg, tenant.Labels{Tenant: "acme"})
	if err := b.QueryRowContext(anon, "select count(*) from "+tbl).Scan(&n); err != nil || n != 0 {
		t.Errorf("a request without the user sees %d rows (err %v), want 0 from the paused replica", n, err)
	}
}
