package rediscache_test

import (
	"context"
	"fmt"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/reqcanary/canary/fallback"
	"github.com/reqcanary/canary/fallback/rediscache"
	"github.com/reqcanary/canary/tenant"
)

// countKeys returns how many keys of Redis match prefix+pattern.
func countKeys(t *testing.T, client *redis.Client, prefix, pattern string) int {
	t.Helper()
	ctx := context.Background()
	n := 0
	iter := client.Scan(ctx, 0, prefix+pattern, 1000).Iterator()
	for iter.Next(ctx) {
		n++
	}
	if err := iter.Err(); err != nil {
		t.Fatal(err)
	}
	return n
}

// TestCacheRandomTenantsStayInBudget: 20 000 random tenants do not grow the
// Redis cache beyond WithMaxKeys entries (plus one index per partition and
// one for the cache), and one tenant keeps to WithMaxTenantKeys.
func TestCacheRandomTenantsStayInBudget(t *testing.T) {
	const maxKeys, maxTenant = 500, 5
	c, client, prefix := newCache(t, time.Minute, rediscache.WithMaxKeys(maxKeys), rediscache.WithMaxTenantKeys(maxTenant))
	ctx := context.Background()
	keys := randomTenantKeys(20_000)
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for w := range 8 {
		wg.Go(func() {
			for i := w; i < len(keys); i += 8 {
				if err := c.Set(ctx, keys[i], bodyEntry(200)); err != nil {
					errs <- err
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	entries, all := countKeys(t, client, prefix, "canary:fallback:v2:*"), countKeys(t, client, prefix, "*")
	t.Logf("after 20000 tenants: %d entries, %d keys in all", entries, all)
	if entries > maxKeys || all > 2*maxKeys+1 {
		t.Fatalf("after 20000 random tenants Redis holds %d entries (%d keys), budget %d entries", entries, all, maxKeys)
	}
	if entries < maxKeys/2 {
		t.Fatalf("only %d entries kept: the budget is not used", entries)
	}
	// The newest entry is kept (the eight writers above finish in any order,
	// so the newest is one stored after them).
	newest := randomTenantKeys(1)[0]
	if err := c.Set(ctx, newest, bodyEntry(200)); err != nil {
		t.Fatal(err)
	}
	if _, ok, err := c.Get(ctx, newest); !ok || err != nil {
		t.Fatalf("the newest entry is gone: %v %v", ok, err)
	}
	// One tenant storing many answers keeps to its own budget.
	greedy := randomPartition()
	var last string
	for range 50 {
		last = tenantKey(greedy)
		if err := c.Set(ctx, last, bodyEntry(10)); err != nil {
			t.Fatal(err)
		}
	}
	if n := countKeys(t, client, prefix, "canary:fallback:v2:"+greedy+":*"); n != maxTenant {
		t.Fatalf("tenant greedy holds %d entries, budget %d", n, maxTenant)
	}
	if _, ok, _ := c.Get(ctx, last); !ok {
		t.Fatal("the tenant's newest entry is gone")
	}
	if n := countKeys(t, client, prefix, "canary:fallback:v2:*"); n > maxKeys {
		t.Fatalf("Redis holds %d entries, budget %d", n, maxKeys)
	}
}

// TestCacheTransportKeysIndexedByPartition: the keys the transport builds
// have the layout the store script reads partitions from (and the tests
// above build), so a tenant answering many URLs through the transport keeps
// to WithMaxTenantKeys, in its entries and in its partition's index.
func TestCacheTransportKeysIndexedByPartition(t *testing.T) {
	const maxTenant = 3
	c, client, prefix := newCache(t, time.Minute, rediscache.WithMaxTenantKeys(maxTenant))
	tr, _ := cacheSetup(t, c, nil, nil)
	for _, id := range []string{"acme", "globex"} {
		ctx := labelled(tenant.Stable, id, "")
		for i := range 10 {
			if r := do(t, tr, ctx, "GET", fmt.Sprintf("http://dep/items?page=%d", i)); r.servedBy != "stable" {
				t.Fatalf("%+v", r)
			}
		}
	}
	ctx := context.Background()
	entries, err := client.Keys(ctx, prefix+"canary:fallback:v2:*").Result()
	if err != nil {
		t.Fatal(err)
	}
	// keyLayout holds no regexp metacharacters besides its verbs.
	layout := regexp.MustCompile("^" + strings.NewReplacer("%s", "[0-9a-f]{16}", "%064x", "[0-9a-f]{64}").Replace(keyLayout) + "$")
	parts := map[string]int{}
	for _, k := range entries {
		k = strings.TrimPrefix(k, prefix)
		if !layout.MatchString(k) {
			t.Errorf("the transport's key %s does not have the layout %s", k, keyLayout)
		}
		parts[fallback.KeyPartition(k)]++
	}
	if len(parts) != 2 {
		t.Fatalf("two tenants' entries are in partitions %v", parts)
	}
	for p, n := range parts {
		members, err := client.ZCard(ctx, prefix+"canary:fallback:idx:"+p).Result()
		if n != maxTenant || members != maxTenant || err != nil {
			t.Errorf("partition %s holds %d entries, its index %d members (%v), budget %d", p, n, members, err, maxTenant)
		}
	}
	if n, err := client.ZCard(ctx, prefix+"canary:fallback:idx").Result(); n != 2*maxTenant || err != nil {
		t.Errorf("the cache's index holds %d members (%v), want %d", n, err, 2*maxTenant)
	}
}
