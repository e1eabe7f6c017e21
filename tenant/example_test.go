package tenant_test

import (
	"context"
	"fmt"

	"github.com/reqcanary/canary/tenant"
)

func ExampleNewContext() {
	ctx := tenant.NewContext(context.Background(), tenant.Labels{
		Tenant: "acme", Cohort: tenant.Canary, Reason: tenant.ReasonTenantCanary, Bucket: 4432,
	})
	if l, ok := tenant.FromContext(ctx); ok {
		fmt.Println(l.Tenant, l.Cohort, l.Reason, l.Bucket)
	}
	// Output: acme canary tenant-canary 4432
}

func ExampleBucketOf() {
	// flagd-compatible: murmur3 over "checkout-v2" + "acme/alice".
	b := tenant.BucketOf("checkout-v2", "acme", "alice")
	fmt.Println(b, b < 12.5*100)
	// Output: 4432 false
}

func ExampleUserHasher_HashInto() {
	h, err := tenant.NewUserHasher([]byte("0123456789abcdef0123456789abcdef"))
	if err != nil {
		panic(err)
	}
	// An adapter keeps the digits in memory the request already owns (a
	// PendingContext offers some); the string shares them.
	var buf [tenant.UserHashLen]byte
	fmt.Println(h.HashInto(&buf, "acme", "alice"))
	fmt.Println(h.Hash("acme", "alice") == string(buf[:]))
	// Output:
	// c20fc606c10bb353f245031104c55ec6
	// true
}
