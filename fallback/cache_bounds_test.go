package fallback

import (
	"context"
	"fmt"
	"math/rand/v2"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/reqcanary/canary/tenant"
)

// randomTenantKeys returns the keys the transport would build for GET
// /prices of n random tenant ids, as a client choosing its tenant header
// would cause.
func randomTenantKeys(n int) []string {
	req, _ := http.NewRequest("GET", "http://dep/prices", nil)
	keys := make([]string, n)
	for i := range keys {
		keys[i] = cacheKey("pricing", fmt.Sprintf("t-%016x", rand.Uint64()), "", false, req, nil, nil)
	}
	return keys
}

func bodyEntry(n int) *Entry {
	return &Entry{Status: 200, Header: http.Header{"Content-Type": {"application/json"}}, Body: []byte(strings.Repeat("p", n)), Stored: time.Now()}
}

// TestMemoryCacheRandomTenantsStayInBudget pins issue 12: entries per
// client-chosen tenant were unbounded. 20 000 random tenants must not grow
// the cache beyond its byte budget, and one tenant never beyond its own.
func TestMemoryCacheRandomTenantsStayInBudget(t *testing.T) {
	const budget, tenantBudget = 256 << 10, 16 << 10
	c, err := NewMemoryCacheWith(MemoryCacheConfig{MaxBytes: budget, MaxTenantBytes: tenantBudget, TTL: time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	mc := c.(*memoryCache)
	ctx := context.Background()
	for _, k := range randomTenantKeys(20_000) {
		c.Set(ctx, k, bodyEntry(200))
	}
	if mc.bytes > budget || len(mc.parts) > mc.len() {
		t.Fatalf("after 20000 tenants the cache holds %d bytes in %d entries and %d partitions, budget %d", mc.bytes, mc.len(), len(mc.parts), budget)
	}
	if mc.len() < 100 {
		t.Fatalf("only %d entries kept: the budget is not used", mc.len())
	}
	// One tenant storing many answers keeps to its own budget.
	req, _ := http.NewRequest("GET", "http://dep/x", nil)
	for i := range 500 {
		req.URL.RawQuery = fmt.Sprint("page=", i)
		c.Set(ctx, cacheKey("pricing", "greedy", "", false, req, nil, nil), bodyEntry(200))
	}
	p := mc.parts[partition("pricing", "greedy")]
	if p == nil || p.bytes > tenantBudget || p.bytes < tenantBudget/2 {
		t.Fatalf("tenant greedy holds %+v, budget %d", p, tenantBudget)
	}
	if mc.bytes > budget {
		t.Fatalf("cache holds %d bytes, budget %d", mc.bytes, budget)
	}
}

// TestMemoryCacheRandomTenantsThroughTransport: the same attack through the
// transport (a client inventing a tenant id per request) keeps the cache in
// its budget.
func TestMemoryCacheRandomTenantsThroughTransport(t *testing.T) {
	const budget = 64 << 10
	c, _ := NewMemoryCacheWith(MemoryCacheConfig{MaxBytes: budget, MaxTenantBytes: 4 << 10, TTL: time.Minute})
	tr, _ := cacheSetup(t, c, nil, nil)
	for i := range 2000 {
		ctx := labelled(tenant.Stable, fmt.Sprintf("random-%d-%x", i, rand.Uint64()), "")
		if r := do(t, tr, ctx, "GET", "http://dep/prices", ""); r.servedBy != "stable" {
			t.Fatalf("%+v", r)
		}
	}
	mc := c.(*memoryCache)
	if mc.bytes > budget || mc.len() == 0 {
		t.Fatalf("cache holds %d bytes in %d entries, budget %d", mc.bytes, mc.len(), budget)
	}
}

// TestRedisCacheRandomTenantsStayInBudget: 20 000 random tenants do not grow
// the Redis cache beyond MaxKeys entries (plus one index per partition and
// one for the cache), and one tenant keeps to MaxTenantKeys.
func TestRedisCacheRandomTenantsStayInBudget(t *testing.T) {
	client := redisClient(t)
	prefix := fmt.Sprintf("test:%s:%d:", t.Name(), time.Now().UnixNano())
	ctx := context.Background()
	t.Cleanup(func() {
		iter := client.Scan(ctx, 0, prefix+"*", 1000).Iterator()
		for iter.Next(ctx) {
			client.Del(ctx, iter.Val())
		}
	})
	const maxKeys, maxTenant = 500, 5
	c, err := NewRedisCacheWith(RedisCacheConfig{Client: client, TTL: time.Minute, Prefix: prefix, MaxKeys: maxKeys, MaxTenantKeys: maxTenant})
	if err != nil {
		t.Fatal(err)
	}
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
	count := func(pattern string) int {
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
	entries, all := count("canary:fallback:v2:*"), count("*")
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
	req, _ := http.NewRequest("GET", "http://dep/x", nil)
	var last string
	for i := range 50 {
		req.URL.RawQuery = fmt.Sprint("page=", i)
		last = cacheKey("pricing", "greedy", "", false, req, nil, nil)
		if err := c.Set(ctx, last, bodyEntry(10)); err != nil {
			t.Fatal(err)
		}
	}
	if n := count("canary:fallback:v2:" + partition("pricing", "greedy") + ":*"); n != maxTenant {
		t.Fatalf("tenant greedy holds %d entries, budget %d", n, maxTenant)
	}
	if _, ok, _ := c.Get(ctx, last); !ok {
		t.Fatal("the tenant's newest entry is gone")
	}
	if n := count("canary:fallback:v2:*"); n > maxKeys {
		t.Fatalf("Redis holds %d entries, budget %d", n, maxKeys)
	}
}
