//go:build !demo_embedded

package main

import (
	"database/sql"
	"fmt"
	"testing"
	"time"

	"github.com/reqcanary/canary/internal/testenv"
)

// TestMariaDB runs two shops on the real MariaDB primary and GTID replica,
// sharing Redis: a user's order is read back at once on either shop, from a
// server that has applied its GTID.
func TestMariaDB(t *testing.T) {
	primary, replica, redisAddr := testenv.MySQLPrimary(t), testenv.MySQLReplica(t), testenv.RedisAddr(t)
	testenv.LockMariaDBReplicaShared(t) // dbwrap tests stop the replica's SQL thread under an exclusive hold
	args := []string{"-mysql-primary", primary, "-mysql-replica", replica, "-redis", redisAddr,
		"-fleet", fmt.Sprintf("demo-shop-e2e-my-%d:", time.Now().UnixNano())}
	env := []string{"CANARY_USER_HASH_KEY=demo-shop-e2e-shared-key"}
	a := startShop(t, env, args...)
	b := startShop(t, env, args...)
	waitMySQLReplicaSeeded(t, replica)

	user := []string{"X-Tenant-ID: " + fmt.Sprintf("my-%d", time.Now().UnixNano()), "X-User-ID: walter"}
	list := a.do("GET", "/products", "", user...)
	if list.status != 200 || len(list.reply.Products) != len(seedProducts) {
		t.Fatalf("products on MariaDB: %d %s", list.status, list.raw)
	}
	if r := list.reply.Served.DB; r != "replica-0 (read)" {
		t.Errorf("product list read from %q, want the replica", r)
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
		if r := got.reply.Served.DB; r != "primary (token-ahead)" && r != "replica-0 (caught-up)" {
			t.Errorf("%s: read went to %q, want a server that has the write", name, r)
		}
	}
}

func waitMySQLReplicaSeeded(t *testing.T, dsn string) {
	t.Helper()
	db, err := sql.Open("mysql", dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	deadline := time.Now().Add(60 * time.Second)
	for {
		var n int
		err := db.QueryRow("SELECT COUNT(*) FROM demo_products").Scan(&n)
		if err == nil && n == len(seedProducts) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("the replica has %d products after 60s (%v)", n, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
