package tenant_test

import (
	"fmt"
	"time"

	"github.com/reqcanary/canary/tenant"
)

// A service that wrote signs its write position for the next hop; the next
// hop honours it only for the same tenant and user.
func ExampleDecisionSigner_SignPosition() {
	s, _ := tenant.NewDecisionSigner([]byte("example-decision-key-0123456789"))
	user := "0f1e2d3c4b5a69788796a5b4c3d2e1f0"
	exp := time.Unix(1767225600, 0)
	v, _ := s.SignPosition("acme", user, 0x16b374d848, exp)
	fmt.Println(v[:len(v)-43] + "…")

	now := exp.Add(-time.Minute)
	pos, err := s.VerifyPosition(v, "acme", user, now)
	fmt.Printf("%x %v\n", pos, err)
	_, err = s.VerifyPosition(v, "acme", "ffffffffffffffffffffffffffffffff", now)
	fmt.Println(err)
	// Output:
	// c1;t=acme;u=0f1e2d3c4b5a69788796a5b4c3d2e1f0;p=16b374d848;e=1767225600;s=…
	// 16b374d848 <nil>
	// consistency token of another user
}
