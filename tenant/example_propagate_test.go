package tenant_test

import (
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/reqcanary/canary/tenant"
)

func ExampleDecisionSigner() {
	// Every service of the chain shares the key; during a rotation the old key
	// is passed as a previous key.
	signer, err := tenant.NewDecisionSigner([]byte("a shared key of 32 bytes or more"))
	if err != nil {
		panic(err)
	}
	expires := time.Unix(1767225600, 0)
	v, _ := signer.Sign(tenant.Decision{
		Cohort: tenant.Canary, Bucket: 1234, Tenant: "acme", UserHash: "0f1e2d3c4b5a69788796a5b4c3d2e1f0",
		Reason: tenant.ReasonPercent, PlanVersion: 7, Expires: expires,
	})
	fmt.Println(v[:len(v)-43] + "…")

	d, err := signer.Verify(v, expires.Add(-time.Minute))
	fmt.Println(d.Cohort, d.Bucket, d.Tenant, err)

	_, err = signer.Verify(v, expires)
	fmt.Println(errors.Is(err, tenant.ErrDecisionExpired))
	// Output:
	// v1;c=canary;b=1234;t=acme;u=0f1e2d3c4b5a69788796a5b4c3d2e1f0;r=percent;p=7;e=1767225600;s=…
	// canary 1234 acme <nil>
	// true
}

func ExamplePropagate() {
	out := http.Header{}
	out.Set("X-User-ID", "alice@acme.com") // copied from the inbound request by mistake
	out.Set("Baggage", "session=42")

	l := tenant.Labels{Tenant: "acme", UserHash: "0f1e2d3c4b5a69788796a5b4c3d2e1f0", Bucket: 1234,
		Cohort: tenant.Canary, Reason: tenant.ReasonPercent, PlanVersion: 7}
	_ = tenant.Propagate(out, tenant.HTTP, l, nil) // nil: no signed decision

	fmt.Printf("%q\n", out.Get("X-User-ID"))
	fmt.Println(out.Get("X-Tenant-ID"), out.Get("X-Canary"))
	fmt.Println(out.Get("Baggage"))
	// Output:
	// ""
	// acme canary
	// session=42,canary.cohort=canary,canary.tenant=acme,canary.bucket=1234
}
