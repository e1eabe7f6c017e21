//go:build !demo_embedded

package main

// The end-to-end tests of the service modes (PostgreSQL, Redis); the build
// with -tags demo_embedded has none of them.

import (
	"context"
	"database/sql"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/reqcanary/canary/internal/testenv"
	"github.com/reqcanary/canary/tenant"
)

// TestDatabaseDownAnswers503 pins issue 12: with its database unreachable
// the shop answered with the driver's error, naming the server's address,
// the user and the database. It must answer 503 "database unavailable" and
// log the details.
func TestDatabaseDownAnswers503(t *testing.T) {
	primary := testenv.PGPrimary(t)
	testenv.LockReplicaShared(t)
	u, err := url.Parse(primary)
	if err != nil {
		t.Fatal(err)
	}
	proxy := testenv.NewFaultProxy(t, u.Host)
	u.Host = proxy.Addr()
	p := startShop(t, nil, "-pg-primary", u.String())
	if a := p.do("GET", "/products", "", "X-Tenant-ID: acme"); a.status != http.StatusOK {
		t.Fatalf("with the database up: %d %s", a.status, a.raw)
	}
	proxy.Set(testenv.ProxyCut)
	secrets := []string{proxy.Addr(), u.Port(), u.User.Username(), strings.TrimPrefix(u.Path, "/"), "postgres", "dial", "connect"}
	for _, path := range []string{"/products", "/products/2", "/orders/1"} {
		a := p.do("GET", path, "", "X-Tenant-ID: acme", "X-User-ID: alice")
		if a.status != http.StatusServiceUnavailable || a.reply.Error != "database unavailable" {
			t.Errorf("GET %s with the database down: %d %s, want 503 \"database unavailable\"", path, a.status, a.raw)
		}
		for _, s := range secrets {
			if s != "" && strings.Contains(a.raw, s) {
				t.Errorf("GET %s: the answer leaks %q: %s", path, s, a.raw)
			}
		}
	}
	a := p.do("POST", "/orders", `{"product_id":1,"quantity":1}`, "X-Tenant-ID: acme", "X-User-ID: alice")
	if a.status != http.StatusServiceUnavailable || strings.Contains(a.raw, proxy.Addr()) {
		t.Errorf("POST /orders with the database down: %d %s, want a generic 503", a.status, a.raw)
	}
	deadline := time.Now().Add(5 * time.Second)
	for !strings.Contains(p.stderr.String(), "request failed") && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	if !strings.Contains(p.stderr.String(), "request failed") || !strings.Contains(p.stderr.String(), "database unavailable:") {
		t.Errorf("the log has no details of the failure:\n%s", p.stderr)
	}
	proxy.Set(testenv.ProxyPass)
}

// TestPostgresAndRedis runs two shops on the real PostgreSQL primary and
// streaming replica, sharing Redis: a user's order is read back at once on
// either shop whatever the replica's lag, and a price one shop stored in the
// Redis cache is served by the other when its pricing is down.
func TestPostgresAndRedis(t *testing.T) {
	primary, replica, redisAddr := testenv.PGPrimary(t), testenv.PGReplica(t), testenv.RedisAddr(t)
	testenv.LockReplicaShared(t) // dbwrap tests stop the replica under an exclusive hold
	args := []string{"-pg-primary", primary, "-pg-replica", replica, "-redis", redisAddr,
		"-fleet", fmt.Sprintf("demo-shop-e2e-%d-%d:", os.Getpid(), time.Now().UnixNano())}
	env := []string{"CANARY_USER_HASH_KEY=demo-shop-e2e-shared-key"} // both shops hash users alike
	a := startShop(t, env, args...)
	b := startShop(t, env, args...)
	waitReplicaSeeded(t, replica)

	ten := fmt.Sprintf("pg-%d", time.Now().UnixNano()) // fresh cache keys for this run
	user := []string{"X-Tenant-ID: " + ten, "X-User-ID: walter"}

	list := a.do("GET", "/products", "", user...)
	if list.status != 200 || len(list.reply.Products) != len(seedProducts) {
		t.Fatalf("products on PostgreSQL: %d %s", list.status, list.raw)
	}

	made := a.do("POST", "/orders", `{"product_id":5,"quantity":2}`, user...)
	if made.status != 201 || made.reply.Order == nil {
		t.Fatalf("create order: %d %s", made.status, made.raw)
	}
	path := fmt.Sprintf("/orders/%d", made.reply.Order.ID)
	for name, p := range map[string]*shopProc{"same shop": a, "other shop": b} {
		got := p.do("GET", path, "", user...)
		if got.status != 200 || got.reply.Order == nil || *got.reply.Order != *made.reply.Order {
			t.Fatalf("%s: read back %d %s, want the order just made", name, got.status, got.raw)
		}
		// The write's WAL position (kept in Redis for the user) decides:
		// a replica that replayed it, else the primary.
		if r := got.reply.Served.DB; r != "primary (token-ahead)" && r != "replica-0 (caught-up)" {
			t.Errorf("%s: read went to %q, want a server that has the write", name, r)
		}
	}
	rdb := redis.NewClient(&redis.Options{Addr: redisAddr})
	defer rdb.Close()
	keys, err := rdb.Keys(context.Background(), "canary:demo-shop:token:*").Result()
	if err != nil || len(keys) == 0 {
		t.Errorf("no read-your-writes token in Redis (%v)", err)
	}

	// A stable answer stored by shop a is served by shop b from Redis.
	stable := append([]string{"X-Canary: stable"}, user...)
	if got := a.do("GET", "/products/3", "", stable...); got.reply.Served.Pricing != "stable" {
		t.Fatalf("shop a: %s", got.raw)
	}
	b.admin("/admin/pricing/stable?mode=fail")
	b.admin("/admin/pricing/canary?mode=fail")
	got := b.do("GET", "/products/3", "", stable...)
	want(t, "shop b, pricing down", got, 200, tenant.Stable, tenant.ReasonOverride, "cache")
	if got.reply.Product == nil || got.reply.Product.PriceCents != 12900 {
		t.Errorf("shop b served %s, want the cached stable price 12900", got.raw)
	}
}

// waitReplicaSeeded waits until the replica has the seeded products (the
// first start seeds the primary; a test elsewhere may pause replay briefly).
func waitReplicaSeeded(t *testing.T, dsn string) {
	t.Helper()
	db, err := sql.Open("pgx", dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	deadline := time.Now().Add(60 * time.Second)
	for {
		var n int
		err := db.QueryRow("SELECT count(*) FROM demo_products").Scan(&n)
		if err == nil && n == len(seedProducts) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("the replica has %d products after 60s (%v)", n, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
