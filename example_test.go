package canary_test

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"

	"github.com/go-chi/chi/v5"

	"github.com/reqcanary/canary"
	"github.com/reqcanary/canary/tenant"
)

// With zero configuration (CANARY_PLAN unset) no request is canary unless a
// loopback peer asks for it with X-Canary.
func ExampleMiddleware() {
	r := chi.NewRouter()
	r.Use(canary.Middleware)
	r.Get("/checkout", func(w http.ResponseWriter, r *http.Request) {
		l, _ := tenant.FromContext(r.Context())
		fmt.Fprintf(w, "%s %s", l.Cohort, l.Reason)
	})

	send := func(remote string, kv ...string) {
		req := httptest.NewRequest(http.MethodGet, "/checkout", nil)
		req.RemoteAddr = remote
		for i := 0; i+1 < len(kv); i += 2 {
			req.Header.Set(kv[i], kv[i+1])
		}
		rec := httptest.NewRecorder()
		r.ServeHTTP(rec, req)
		fmt.Println(rec.Code, rec.Body.String())
	}
	send("203.0.113.5:4711", "X-Tenant-ID", "acme", "X-User-ID", "alice")
	send("203.0.113.5:4711", "X-Tenant-ID", "acme", "X-Canary", "canary") // not trusted: ignored
	send("127.0.0.1:4711", "X-Tenant-ID", "acme", "X-Canary", "canary")   // loopback: honoured
	send("203.0.113.5:4711")
	// Output:
	// 200 stable percent
	// 200 stable percent
	// 200 canary override
	// 200 stable no-key
}

func ExampleNew() {
	plan, err := canary.ParsePlan([]byte(`
version: 7
salt: checkout-v2
canary_percent: 12.5
tenants:
  canary: [acme]
  stable: [bigbank]
override:
  trusted_cidrs: [10.0.0.0/8]
`))
	if err != nil {
		fmt.Println(err)
		return
	}
	eng, err := canary.New(canary.WithPlan(plan))
	if err != nil {
		fmt.Println(err)
		return
	}
	defer eng.Close()

	for _, id := range [][2]string{{"acme", ""}, {"bigbank", "bob"}, {"globex", "u-1"}, {"globex", "u-3"}, {"", ""}} {
		h := http.Header{}
		if id[0] != "" {
			h.Set(tenant.HeaderTenant, id[0])
		}
		if id[1] != "" {
			h.Set(tenant.HeaderUser, id[1])
		}
		l, err := eng.Decide(context.Background(), tenant.Request{Source: h, Wire: tenant.HTTP})
		if err != nil {
			fmt.Println(err)
			continue
		}
		fmt.Printf("%-8s %-4s bucket %5d: %s (%s), plan v%d\n", id[0], id[1], l.Bucket, l.Cohort, l.Reason, l.PlanVersion)
	}
	// Output:
	// acme          bucket  8314: canary (tenant-canary), plan v7
	// bigbank  bob  bucket  3537: stable (tenant-stable), plan v7
	// globex   u-1  bucket  6279: stable (percent), plan v7
	// globex   u-3  bucket   167: canary (percent), plan v7
	//               bucket    -1: stable (no-key), plan v7
}

func ExampleParsePlan() {
	_, err := canary.ParsePlan([]byte("version: 1\ncanary_percent: 12.345\n"))
	fmt.Println(err)
	// Output:
	// canary: plan: line 2: canary_percent: must have at most two decimals, got 12.345
}
