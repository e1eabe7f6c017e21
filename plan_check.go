package canary

import (
	"math"
	"net/http"
	"net/netip"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"

	yaml "go.yaml.in/yaml/v3"

	"github.com/reqcanary/canary/tenant"
)

// validatePlan checks p's values, fills its defaults (the override header)
// and canonicalizes the header name. pos locates keys for a plan read from
// YAML; it is nil for a plan built in Go, whose errors then carry no line.
func validatePlan(p *Plan, pos map[string]yaml.Node) []*PlanError {
	var errs []*PlanError
	fail := func(key, reason string) {
		e := &PlanError{Key: key, Reason: reason}
		if n, ok := pos[key]; ok {
			e.Line, e.Column = n.Line, n.Column
		}
		errs = append(errs, e)
	}

	if p.Version < 0 {
		fail("version", "must be 0 or more, got "+strconv.Itoa(p.Version))
	}
	if why := checkSalt(p.Salt); why != "" {
		fail("salt", why)
	}
	if why := checkPercent(p.CanaryPercent); why != "" {
		fail("canary_percent", why)
	}

	// Tenant ids are case-sensitive (ACME and acme are two tenants, as for
	// the identity source); a list naming one id in two spellings is
	// refused, because it is almost always a typo that makes one of them
	// a tenant nobody has.
	lists := map[string]string{}  // tenant -> the list it was first seen in
	folded := map[string]string{} // lower-cased tenant -> its first spelling
	for _, l := range []struct {
		name string
		ids  []string
	}{{"tenants.canary", p.Tenants.Canary}, {"tenants.stable", p.Tenants.Stable}} {
		for i, id := range l.ids {
			key := l.name + "[" + strconv.Itoa(i) + "]"
			if why := tenant.CheckTenant(id); why != "" {
				fail(key, "tenant id "+strconv.Quote(id)+" is invalid: "+why)
				continue
			}
			switch first, seen := lists[id]; {
			case seen && first == l.name:
				fail(key, "tenant "+strconv.Quote(id)+" is listed twice")
			case seen:
				fail(key, "tenant "+strconv.Quote(id)+" is on both tenants.canary and tenants.stable")
			default:
				lists[id] = l.name
				low := strings.ToLower(id)
				if other, ok := folded[low]; ok {
					fail(key, "tenant "+strconv.Quote(id)+" differs from "+strconv.Quote(other)+
						" only in case; tenant ids are case-sensitive, so these are two tenants: keep the spelling the identity source sends")
				} else {
					folded[low] = id
				}
			}
		}
	}

	if p.Override.Header == "" {
		p.Override.Header = DefaultOverrideHeader
	} else if why := checkHeaderName(p.Override.Header); why != "" {
		fail("override.header", why)
	} else {
		p.Override.Header = http.CanonicalHeaderKey(p.Override.Header)
	}
	for i, pr := range p.Override.TrustedCIDRs {
		if why := checkPrefix(pr); why != "" {
			fail("override.trusted_cidrs["+strconv.Itoa(i)+"]", why)
		}
	}
	checkGuard(p.Guard, fail)
	if p.Ramp != nil && pos == nil { // a ramp read from YAML was checked by its parser
		for _, pr := range p.Ramp.Check("ramp") {
			fail(pr.Key, pr.Reason)
		}
	}
	return errs
}

// percentBuckets returns the number of buckets (of 10000) a percentage
// selects.
func percentBuckets(pct float64) int { return int(math.Round(pct * 100)) }

func checkPercent(pct float64) string {
	switch {
	case math.IsNaN(pct) || math.IsInf(pct, 0):
		return "must be a number between 0 and 100"
	case pct < 0 || pct > 100:
		return "must be between 0 and 100, got " + strconv.FormatFloat(pct, 'g', -1, 64)
	case math.Abs(pct*100-math.Round(pct*100)) > 1e-6:
		return "must have at most two decimals, got " + strconv.FormatFloat(pct, 'g', -1, 64)
	}
	return ""
}

func checkSalt(s string) string {
	if len(s) > MaxSaltLen {
		return "longer than " + strconv.Itoa(MaxSaltLen) + " bytes"
	}
	if !utf8.ValidString(s) {
		return "not valid UTF-8"
	}
	for i, r := range s {
		if unicode.IsControl(r) {
			return "contains a control character at byte " + strconv.Itoa(i)
		}
	}
	return ""
}

// reservedHeaders are canary's own headers, which cannot be the override.
var reservedHeaders = []string{
	tenant.HeaderTenant, tenant.HeaderUser, tenant.HeaderCohort, tenant.HeaderDecision,
	tenant.HeaderTraceParent, tenant.HeaderBaggage,
}

// checkHeaderName checks an HTTP field name: 1..64 token characters (RFC
// 9110, section 5.1), and not one of canary's own headers.
func checkHeaderName(h string) string {
	if len(h) > 64 {
		return "longer than 64 bytes"
	}
	for i := 0; i < len(h); i++ {
		if !tokenByte(h[i]) {
			return strconv.Quote(h) + " is not a valid header name (byte " + strconv.Itoa(i) + ")"
		}
	}
	for _, r := range reservedHeaders {
		if strings.EqualFold(h, r) {
			return strconv.Quote(h) + " is one of canary's own headers"
		}
	}
	return ""
}

func tokenByte(c byte) bool {
	return 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' ||
		strings.IndexByte("!#$%&'*+-.^_`|~", c) >= 0
}

func checkPrefix(p netip.Prefix) string {
	switch {
	case !p.IsValid():
		return "not a valid CIDR prefix"
	case p.Addr().Zone() != "":
		return p.String() + " has an IPv6 zone"
	case p.Addr().Is4In6():
		return p.String() + " is IPv4-mapped IPv6 and never matches (peers are compared as IPv4); write the IPv4 prefix"
	case p != p.Masked():
		return p.String() + " has host bits set; did you mean " + p.Masked().String() + "?"
	}
	return ""
}
