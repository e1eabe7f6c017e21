package tenant

import (
	"fmt"
	"strconv"
	"strings"
)

// Baggage member keys canary writes into the W3C baggage of outgoing calls,
// for other tools (log enrichment, meshes) to read. Canary itself never
// decides from inbound baggage: a client can write any baggage it likes.
const (
	BaggageCohort = "canary.cohort" // the decided cohort
	BaggageTenant = "canary.tenant" // the tenant id, when there is one
	BaggageBucket = "canary.bucket" // the bucket, when there is one
)

// W3C baggage limits: a baggage header canary writes never has more members
// or bytes than these, and never a partial member.
const (
	MaxBaggageMembers = 64
	MaxBaggageBytes   = 8192
)

// SignFunc returns the signed decision value ([HeaderDecision]) that carries
// l. [DecisionSigner.LabelSigner] makes one.
type SignFunc func(l Labels) (string, error)

// Sink is where outbound propagation writes: the headers of an outgoing HTTP
// request or the metadata of an outgoing gRPC call. [net/http.Header]
// implements it; gRPC adapters wrap metadata.MD. Values is read to merge
// baggage that is already there.
type Sink interface {
	Source
	// Set replaces the values of key by value.
	Set(key, value string)
	// Del removes key.
	Del(key string)
}

// Propagate writes onto dst, under the names of w, what a downstream hop needs
// to honour l:
//
//   - the tenant id under w.Tenant, when l has one (otherwise what dst carries
//     is left alone);
//   - the cohort under w.Override, the override key, which a downstream that
//     trusts this peer honours (removed when l has no cohort);
//   - when sign is not nil, the signed decision under w.Decision (otherwise
//     any decision dst carries is removed, so a stale one is never
//     forwarded);
//   - the baggage members canary.cohort, canary.tenant and canary.bucket,
//     merged into the baggage dst already carries by [MergeBaggage].
//
// It always removes w.User: the raw user id never leaves the edge. Values
// already under the keys Propagate sets are replaced, never duplicated.
//
// If sign fails, Propagate still writes everything else, removes w.Decision
// and returns the error.
func Propagate(dst Sink, w Wire, l Labels, sign SignFunc) error {
	dst.Del(w.User)
	if l.Tenant != "" {
		dst.Set(w.Tenant, l.Tenant)
	}
	if l.Cohort != "" {
		dst.Set(w.Override, string(l.Cohort))
	} else {
		dst.Del(w.Override)
	}
	existing := dst.Values(w.Baggage)
	var bg string
	switch len(existing) {
	case 0:
		bg = MergeBaggage("", l)
	case 1:
		bg = MergeBaggage(existing[0], l)
	default:
		bg = MergeBaggage(strings.Join(existing, ","), l)
	}
	if bg != "" {
		dst.Set(w.Baggage, bg)
	} else {
		dst.Del(w.Baggage)
	}
	if sign == nil {
		dst.Del(w.Decision)
		return nil
	}
	d, err := sign(l)
	if err != nil {
		dst.Del(w.Decision)
		return fmt.Errorf("tenant: sign decision for %s: %w", w.Decision, err)
	}
	dst.Set(w.Decision, d)
	return nil
}

// AppendOutbound appends to kv the key, value pairs that [Propagate] would set
// on a destination carrying none of w's User, Tenant, Override, Decision and
// Baggage keys, and returns the extended slice. It lets an adapter that can
// only append (such as gRPC's outgoing metadata) write without a map; the
// caller checks first that none of those keys is present, and uses Propagate
// otherwise. If sign fails, the pairs without the decision are returned with
// the error.
func AppendOutbound(kv []string, w Wire, l Labels, sign SignFunc) ([]string, error) {
	if l.Tenant != "" {
		kv = append(kv, w.Tenant, l.Tenant)
	}
	if l.Cohort != "" {
		kv = append(kv, w.Override, string(l.Cohort))
	}
	if bg := MergeBaggage("", l); bg != "" {
		kv = append(kv, w.Baggage, bg)
	}
	if sign == nil {
		return kv, nil
	}
	d, err := sign(l)
	if err != nil {
		return kv, fmt.Errorf("tenant: sign decision for %s: %w", w.Decision, err)
	}
	return append(kv, w.Decision, d), nil
}

// MergeBaggage returns the W3C baggage value existing with canary's members
// for l (canary.cohort, canary.tenant and canary.bucket, each only when l has
// a valid value for it) in place of any canary members existing had. The
// other members of existing are kept, verbatim and in order, except those
// that are not valid W3C list-members, which are dropped so the result stays
// a valid header.
//
// The result respects the W3C limits ([MaxBaggageMembers] members and
// [MaxBaggageBytes] bytes) and never holds a partial member: when canary's
// members do not fit beside the existing ones, all of them are left out;
// when the existing members alone exceed a limit, whole members are dropped
// from the end until they fit. The result is "" when nothing remains.
func MergeBaggage(existing string, l Labels) string {
	var obuf [128]byte
	ours, nOurs := appendOurMembers(obuf[:0], l)
	if strings.TrimLeft(existing, " \t,") == "" {
		return string(ours)
	}

	var b strings.Builder
	b.Grow(min(len(existing), MaxBaggageBytes) + 1 + len(ours))
	kept := 0
	full := false // the existing members already reached a limit
	for rest := existing; rest != "" && !full; {
		var m string
		if i := strings.IndexByte(rest, ','); i >= 0 {
			m, rest = rest[:i], rest[i+1:]
		} else {
			m, rest = rest, ""
		}
		m = strings.Trim(m, " \t")
		key, ok := baggageMember(m)
		if !ok || key == BaggageCohort || key == BaggageTenant || key == BaggageBucket {
			continue
		}
		sep := 0
		if kept > 0 {
			sep = 1
		}
		if kept+1 > MaxBaggageMembers || b.Len()+sep+len(m) > MaxBaggageBytes {
			full = true
			break
		}
		if sep == 1 {
			b.WriteByte(',')
		}
		b.WriteString(m)
		kept++
	}
	if nOurs > 0 && !full {
		switch {
		case kept == 0:
			b.Write(ours)
		case kept+nOurs <= MaxBaggageMembers && b.Len()+1+len(ours) <= MaxBaggageBytes:
			b.WriteByte(',')
			b.Write(ours)
		}
	}
	return b.String()
}

// appendOurMembers appends canary's baggage members for l, and returns how
// many it appended.
func appendOurMembers(b []byte, l Labels) ([]byte, int) {
	n := 0
	if l.Cohort == Stable || l.Cohort == Canary {
		b = append(b, BaggageCohort+"="...)
		b = append(b, l.Cohort...)
		n++
	}
	if l.Tenant != "" && CheckTenant(l.Tenant) == "" {
		if n > 0 {
			b = append(b, ',')
		}
		b = append(b, BaggageTenant+"="...)
		b = append(b, l.Tenant...)
		n++
	}
	if l.Bucket >= 0 && l.Bucket < Buckets {
		if n > 0 {
			b = append(b, ',')
		}
		b = append(b, BaggageBucket+"="...)
		b = strconv.AppendInt(b, int64(l.Bucket), 10)
		n++
	}
	return b, n
}

// baggageMember returns the key of the W3C baggage list-member m (already
// trimmed of surrounding whitespace) and whether m is valid:
//
//	list-member = key OWS "=" OWS value *( OWS ";" OWS property )
//	property    = key OWS "=" OWS value / key OWS
//	key         = token
//	value       = *baggage-octet
func baggageMember(m string) (string, bool) {
	if m == "" {
		return "", false
	}
	first, props, _ := strings.Cut(m, ";")
	k, v, ok := strings.Cut(first, "=")
	key := strings.TrimRight(k, " \t")
	if !ok || !baggageToken(key) || !baggageValue(strings.TrimLeft(v, " \t"), true) {
		return "", false
	}
	for props != "" {
		var p string
		p, props, _ = strings.Cut(props, ";")
		p = strings.Trim(p, " \t")
		pk, pv, hasValue := strings.Cut(p, "=")
		if !baggageToken(strings.TrimRight(pk, " \t")) {
			return "", false
		}
		if hasValue && !baggageValue(strings.TrimLeft(pv, " \t"), false) {
			return "", false
		}
	}
	return key, true
}

// baggageValue reports whether v is *baggage-octet in which every '%' starts
// a percent-encoded octet (as decoders such as OpenTelemetry's require); when
// trailingOWS, v may end in spaces or tabs (the OWS before a ';').
func baggageValue(v string, trailingOWS bool) bool {
	if trailingOWS {
		v = strings.TrimRight(v, " \t")
	}
	for i := 0; i < len(v); i++ {
		c := v[i]
		if c < 0x21 || c > 0x7e || c == '"' || c == ',' || c == ';' || c == '\\' {
			return false
		}
		if c == '%' && (i+2 >= len(v) || !isHex(v[i+1]) || !isHex(v[i+2])) {
			return false
		}
	}
	return true
}

func isHex(c byte) bool { return '0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F' }

// baggageToken reports whether t is an RFC 7230 token.
func baggageToken(t string) bool {
	if t == "" {
		return false
	}
	for i := 0; i < len(t); i++ {
		c := t[i]
		if 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' {
			continue
		}
		if !strings.ContainsRune("!#$%&'*+-.^_`|~", rune(c)) {
			return false
		}
	}
	return true
}
