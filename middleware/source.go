package middleware

import (
	"net/http"

	"github.com/reqcanary/canary/tenant"
)

// Canonical forms of the wire names that are not canonical as written
// ("X-Tenant-ID" is stored by net/http as "X-Tenant-Id").
var (
	canonTenant = http.CanonicalHeaderKey(tenant.HeaderTenant)
	canonUser   = http.CanonicalHeaderKey(tenant.HeaderUser)
)

// headerSource is the request's headers as a [tenant.Source]. It answers the
// wire names without canonicalizing them on every call, which
// http.Header.Values would do, allocating, for "X-Tenant-ID" and "X-User-ID".
type headerSource http.Header

var _ tenant.Source = headerSource(nil)

// Values returns the values of the header key, like http.Header.Values.
func (h headerSource) Values(key string) []string {
	switch key {
	case tenant.HeaderTenant:
		return h[canonTenant]
	case tenant.HeaderUser:
		return h[canonUser]
	case tenant.HeaderOverride, tenant.HeaderDecision, tenant.HeaderTraceParent, tenant.HeaderBaggage:
		return h[key] // canonical as written
	}
	return http.Header(h).Values(key)
}
