package tenant

import (
	"errors"
	"strconv"
	"strings"
	"unicode/utf8"
)

// HTTP header names. gRPC metadata keys are the same names in lowercase (see
// [GRPC]).
const (
	HeaderTenant      = "X-Tenant-ID"       // the tenant id
	HeaderUser        = "X-User-ID"         // the raw user id; never sent past the edge
	HeaderOverride    = "X-Canary"          // trusted override: "canary" or "stable"
	HeaderCohort      = "X-Canary-Cohort"   // response header: the decided cohort
	HeaderDecision    = "X-Canary-Decision" // signed decision from an upstream service
	HeaderTraceParent = "Traceparent"       // W3C trace context
	HeaderBaggage     = "Baggage"           // W3C baggage
	// HeaderConsistency carries the signed write position of the calling
	// request's writes (see [DecisionSigner.SignPosition]).
	HeaderConsistency = "X-Canary-Consistency"
)

// Limits of the values canary accepts.
const (
	// MaxTenantLen is the longest tenant id, in bytes. A tenant id is 1 to
	// MaxTenantLen bytes of [A-Za-z0-9._:-].
	MaxTenantLen = 64
	// MaxUserLen is the longest user id, in bytes. A user id is 1 to
	// MaxUserLen bytes of printable UTF-8 with no control characters and no
	// format characters (Unicode category Cf, such as U+202E or U+200B).
	MaxUserLen = 256
)

// Wire is the set of key names one transport uses. Use [HTTP] or [GRPC].
type Wire struct {
	Tenant, User, Override, Decision, TraceParent, Baggage string
	Consistency                                            string // the signed write position
	lower                                                  bool
}

var (
	// HTTP names the HTTP headers.
	HTTP = Wire{
		Tenant: HeaderTenant, User: HeaderUser, Override: HeaderOverride,
		Decision: HeaderDecision, TraceParent: HeaderTraceParent, Baggage: HeaderBaggage,
		Consistency: HeaderConsistency,
	}
	// GRPC names the gRPC metadata keys: the HTTP names in lowercase.
	GRPC = Wire{
		Tenant: strings.ToLower(HeaderTenant), User: strings.ToLower(HeaderUser),
		Override: strings.ToLower(HeaderOverride), Decision: strings.ToLower(HeaderDecision),
		TraceParent: strings.ToLower(HeaderTraceParent), Baggage: strings.ToLower(HeaderBaggage),
		Consistency: strings.ToLower(HeaderConsistency),
		lower:       true,
	}
)

// Key returns the name this transport uses for the HTTP header name h: h
// itself on HTTP, lowercase on gRPC.
func (w Wire) Key(h string) string {
	if w.lower {
		return strings.ToLower(h)
	}
	return h
}

// Source reads the values of one key from a request's headers or metadata.
// [net/http.Header] implements it; gRPC adapters wrap metadata.MD.
type Source interface {
	Values(key string) []string
}

// ErrInvalidField is matched (with errors.Is) by every [*FieldError].
var ErrInvalidField = errors.New("invalid field")

// FieldError reports a header or metadata value that breaks canary's limits.
// Its message starts with the field's name, e.g.
// "X-Tenant-ID: longer than 64 bytes".
type FieldError struct {
	Field  string // the header or metadata key
	Reason string // what is wrong with it
}

// Error returns "Field: Reason".
func (e *FieldError) Error() string { return e.Field + ": " + e.Reason }

// Is reports whether target is [ErrInvalidField].
func (e *FieldError) Is(target error) bool { return target == ErrInvalidField }

// CheckTenant returns a description of what is wrong with the tenant id t, or
// "" when t is valid.
func CheckTenant(t string) string {
	if t == "" {
		return "empty"
	}
	if len(t) > MaxTenantLen {
		return "longer than " + strconv.Itoa(MaxTenantLen) + " bytes"
	}
	for i := 0; i < len(t); i++ {
		if !tenantByte(t[i]) {
			return "byte " + strconv.Itoa(i) + " is not one of [A-Za-z0-9._:-]"
		}
	}
	return ""
}

func tenantByte(c byte) bool {
	return 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' ||
		c == '.' || c == '_' || c == ':' || c == '-'
}

// CheckUser returns a description of what is wrong with the user id u, or ""
// when u is valid.
func CheckUser(u string) string {
	if u == "" {
		return "empty"
	}
	if len(u) > MaxUserLen {
		return "longer than " + strconv.Itoa(MaxUserLen) + " bytes"
	}
	for i := 0; i < len(u); {
		c := u[i]
		if c < utf8.RuneSelf {
			if c < 0x20 || c == 0x7f {
				return "contains a control character at byte " + strconv.Itoa(i)
			}
			i++
			continue
		}
		r, n := utf8.DecodeRuneInString(u[i:])
		if r == utf8.RuneError && n <= 1 {
			return "not valid UTF-8 at byte " + strconv.Itoa(i)
		}
		if why := userRuneProblem(r, i); why != "" {
			return why
		}
		i += n
	}
	return ""
}

// single returns the one value of key in src: ("", false, nil) when absent,
// an error naming the key when it appears more than once.
func single(src Source, key string) (string, bool, error) {
	if src == nil {
		return "", false, nil
	}
	vs := src.Values(key)
	switch len(vs) {
	case 0:
		return "", false, nil
	case 1:
		return vs[0], true, nil
	}
	return "", false, &FieldError{Field: key, Reason: "more than one value"}
}

// ReadTenant returns the tenant id the request carries under w.Tenant: "" when
// absent, a [*FieldError] when present but invalid or repeated.
func ReadTenant(src Source, w Wire) (string, error) {
	v, ok, err := single(src, w.Tenant)
	if err != nil || !ok {
		return "", err
	}
	if why := CheckTenant(v); why != "" {
		return "", &FieldError{Field: w.Tenant, Reason: why}
	}
	return v, nil
}

// ReadUser returns the user id the request carries under w.User: "" when
// absent, a [*FieldError] when present but invalid or repeated.
func ReadUser(src Source, w Wire) (string, error) {
	v, ok, err := single(src, w.User)
	if err != nil || !ok {
		return "", err
	}
	if why := CheckUser(v); why != "" {
		return "", &FieldError{Field: w.User, Reason: why}
	}
	return v, nil
}

// ReadOverride returns the cohort named under key ("canary" or "stable",
// ASCII case-insensitive, surrounding spaces ignored): "" when absent, a
// [*FieldError] for any other value.
func ReadOverride(src Source, key string) (Cohort, error) {
	v, ok, err := single(src, key)
	if err != nil || !ok {
		return "", err
	}
	v = strings.TrimSpace(v)
	switch {
	case strings.EqualFold(v, string(Canary)):
		return Canary, nil
	case strings.EqualFold(v, string(Stable)):
		return Stable, nil
	}
	return "", &FieldError{Field: key, Reason: "must be canary or stable"}
}

// ParseTraceParent returns the trace id of a W3C traceparent value, and
// whether the value is valid. The returned id is 32 lowercase hex digits and
// never all zeros. Versions other than 00 are accepted as the W3C
// specification asks (their first four fields read as version 00); version ff
// is invalid.
func ParseTraceParent(v string) (traceID string, ok bool) {
	v = strings.TrimSpace(v)
	if len(v) < 55 || (len(v) > 55 && (v[:2] == "00" || v[55] != '-')) {
		return "", false
	}
	if !lowerHex(v[0:2]) || v[:2] == "ff" || v[2] != '-' || v[35] != '-' || v[52] != '-' {
		return "", false
	}
	id, parent, flags := v[3:35], v[36:52], v[53:55]
	if !lowerHex(id) || !lowerHex(parent) || !lowerHex(flags) || allZero(id) || allZero(parent) {
		return "", false
	}
	return id, true
}

// ValidTraceID reports whether id is 32 lowercase hex digits, not all zero.
func ValidTraceID(id string) bool { return len(id) == 32 && lowerHex(id) && !allZero(id) }

func lowerHex(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f') {
			return false
		}
	}
	return true
}

func allZero(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] != '0' {
			return false
		}
	}
	return true
}
