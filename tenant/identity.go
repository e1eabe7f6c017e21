package tenant

// Field names of an identity given by an identity source (a function of the
// request, see the adapters' WithIdentity options) rather than read from
// headers, as they appear in a [*FieldError].
const (
	FieldIdentityTenant = "identity.tenant"
	FieldIdentityUser   = "identity.user"
)

// CheckIdentity checks a tenant and user id handed over by an identity
// source: each may be empty (absent); a non-empty one must pass [CheckTenant]
// or [CheckUser]. The error is a [*FieldError] naming [FieldIdentityTenant] or
// [FieldIdentityUser].
func CheckIdentity(tenantID, userID string) error {
	if tenantID != "" {
		if why := CheckTenant(tenantID); why != "" {
			return &FieldError{Field: FieldIdentityTenant, Reason: why}
		}
	}
	if userID != "" {
		if why := CheckUser(userID); why != "" {
			return &FieldError{Field: FieldIdentityUser, Reason: why}
		}
	}
	return nil
}

// IdentitySource is a [Source] that answers the tenant and user keys of Wire
// with Tenant and User (no value when empty) and every other key from Src.
// Adapters hand it to a [Decider] in place of the request's headers or
// metadata when the identity comes from somewhere else than the request's
// own X-Tenant-ID and X-User-ID: an authentication layer, or nowhere (both
// empty: the identity headers of an untrusted peer are not believed).
// Construct it with [NewIdentitySource].
type IdentitySource struct {
	src      Source
	wire     Wire
	tnt, usr [1]string
}

var _ Source = (*IdentitySource)(nil)

// NewIdentitySource returns the Source that reads src for every key but w's
// tenant and user keys, which answer tenantID and userID ("" for none).
func NewIdentitySource(src Source, w Wire, tenantID, userID string) *IdentitySource {
	s := &IdentitySource{src: src, wire: w}
	s.tnt[0], s.usr[0] = tenantID, userID
	return s
}

// Values returns the values of key.
func (s *IdentitySource) Values(key string) []string {
	switch key {
	case s.wire.Tenant:
		if s.tnt[0] == "" {
			return nil
		}
		return s.tnt[:]
	case s.wire.User:
		if s.usr[0] == "" {
			return nil
		}
		return s.usr[:]
	}
	if s.src == nil {
		return nil
	}
	return s.src.Values(key)
}
