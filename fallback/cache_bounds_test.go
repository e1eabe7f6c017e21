package fallback

import (
	"context"
	"fmt"
	"math/rand/v2"
	"net/http"
	"strings"
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
