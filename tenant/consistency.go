package tenant

import (
	"crypto/sha256"
	"errors"
	"fmt"
	"strconv"
	"time"
)

// ConsistencyVersion is the version prefix of the consistency tokens this
// package writes and reads.
const ConsistencyVersion = "c1"

// MaxConsistencyLen is the longest consistency token accepted, in bytes. The
// longest valid version c1 token is shorter; a longer value is rejected
// before it is parsed.
const MaxConsistencyLen = 200

// The outcomes of verifying a consistency token. The engine counts them
// separately, as it counts rejected decisions; a rejected token is ignored,
// never an error to the request.
var (
	// ErrConsistencyMalformed: the value does not follow the format (or is
	// of another version), or a field is out of range.
	ErrConsistencyMalformed = errors.New("malformed consistency token")
	// ErrConsistencySignature: the MAC matches none of the keys.
	ErrConsistencySignature = errors.New("consistency token signature does not verify")
	// ErrConsistencyExpired: the MAC is valid but the expiry has passed.
	ErrConsistencyExpired = errors.New("consistency token expired")
	// ErrConsistencyUser: the MAC is valid and the token unexpired, but it
	// was signed for another tenant or user than the request's: it was
	// copied from another request.
	ErrConsistencyUser = errors.New("consistency token of another user")
)

// PositionSignFunc returns the signed consistency token ([HeaderConsistency])
// that carries the write position pos of a request labelled l.
// [DecisionSigner.PositionSigner] makes one.
type PositionSignFunc func(l Labels, pos uint64) (string, error)

// SignPosition returns the consistency token that tells a downstream service
// that a request of the tenant tenantID and the user userHash must read at
// least the write position pos, valid until expires, signed with the current
// key. A consistency token is to the database layer what a signed decision
// is to the cohort: the calling service's writes travel with its calls, so
// that the called service reads them (see docs/db-routing.md).
//
// Wire format, version c1 (one line of printable ASCII, at most
// [MaxConsistencyLen] bytes):
//
//	c1;t=<tenant>;u=<user hash>;p=<position>;e=<expiry>;s=<mac>
//
// for example
//
//	c1;t=acme;u=0f1e2d3c4b5a69788796a5b4c3d2e1f0;p=16b374d848;e=1767225600;s=<43 characters>
//
// The fields appear exactly once each, in this order, separated by ';':
//
//   - t: the tenant id, empty or valid per [CheckTenant];
//   - u: the user hash, empty or 32 lowercase hex digits;
//   - p: the position, an opaque ordered 64-bit value that the database
//     layer defines (dbwrap: a PostgreSQL LSN; ffffffffffffffff stands for
//     "unknown", which only the primary satisfies), 1 to 16 lowercase hex
//     digits without leading zeros, never 0;
//   - e: the expiry in Unix seconds, canonical decimal, 1..99999999999;
//   - s: HMAC-SHA256 keyed by the signing key over every byte before "s="
//     (including "c1;" and the final ';'), unpadded base64url, 43
//     characters.
//
// The version prefix keeps a token and a decision signed with the same key
// apart: neither verifies as the other. The token is bound to the tenant and
// user hash: a service honours it only for a request with exactly those
// labels ([DecisionSigner.VerifyPosition]), so a token copied from one
// user's request cannot steer another user's reads.
//
// SignPosition returns an error matching [ErrConsistencyMalformed] naming
// the field that cannot be encoded.
func (s *DecisionSigner) SignPosition(tenantID, userHash string, pos uint64, expires time.Time) (string, error) {
	if err := checkPositionFields(tenantID, userHash, pos, expires); err != nil {
		return "", err
	}
	var buf [MaxConsistencyLen]byte
	b := appendPositionFields(buf[:0], tenantID, userHash, pos, expires)
	var mac [sha256.Size]byte
	s.keys[0].sum(mac[:0], b)
	b = append(b, "s="...)
	b = macEncoding.AppendEncode(b, mac[:])
	return string(b), nil
}

// PositionSigner returns a [PositionSignFunc] that signs the position of a
// request labelled l (bound to l's tenant and user hash) with tokens valid
// for ttl from the time now returns. A ttl of zero or less means
// [DefaultDecisionTTL]; a nil now means [time.Now].
func (s *DecisionSigner) PositionSigner(ttl time.Duration, now func() time.Time) PositionSignFunc {
	if ttl <= 0 {
		ttl = DefaultDecisionTTL
	}
	if now == nil {
		now = time.Now
	}
	return func(l Labels, pos uint64) (string, error) {
		return s.SignPosition(l.Tenant, l.UserHash, pos, now().Add(ttl))
	}
}

// VerifyPosition parses the consistency token v, checks its MAC against every
// key in constant time, its expiry against now, and that it was signed for
// the tenant tenantID and the user hash userHash, and returns the position.
// The error matches exactly one of [ErrConsistencyMalformed] (including a
// value longer than [MaxConsistencyLen], checked first),
// [ErrConsistencySignature], [ErrConsistencyExpired] or
// [ErrConsistencyUser], checked in that order.
func (s *DecisionSigner) VerifyPosition(v, tenantID, userHash string, now time.Time) (uint64, error) {
	tk, signedLen, err := parsePosition(v)
	if err != nil {
		return 0, err
	}
	ok, wellFormed := s.checkMAC(v[:signedLen], v[signedLen+2:])
	if !wellFormed {
		return 0, fmt.Errorf("%w: field s: not %d characters of unpadded base64url", ErrConsistencyMalformed, macLen)
	}
	if !ok {
		return 0, ErrConsistencySignature
	}
	if now.Unix() >= tk.expires {
		return 0, ErrConsistencyExpired
	}
	if tk.tenant != tenantID || tk.user != userHash {
		return 0, ErrConsistencyUser
	}
	return tk.pos, nil
}

// PropagatePosition writes onto dst, under w.Consistency, the token that
// sign returns for l and pos, replacing any value there. It removes
// w.Consistency instead when pos is 0 (the request has nothing for the next
// hop to see) or sign is nil, so that an inbound token is never forwarded
// unsigned or stale. If sign fails, the key is removed and the error
// returned.
func PropagatePosition(dst Sink, w Wire, l Labels, pos uint64, sign PositionSignFunc) error {
	if pos == 0 || sign == nil {
		dst.Del(w.Consistency)
		return nil
	}
	v, err := sign(l, pos)
	if err != nil {
		dst.Del(w.Consistency)
		return fmt.Errorf("tenant: sign consistency token for %s: %w", w.Consistency, err)
	}
	dst.Set(w.Consistency, v)
	return nil
}

// AppendPosition appends to kv the key and value [PropagatePosition] would
// set on a destination without w.Consistency (nothing when pos is 0 or sign
// is nil), and returns the extended slice.
func AppendPosition(kv []string, w Wire, l Labels, pos uint64, sign PositionSignFunc) ([]string, error) {
	if pos == 0 || sign == nil {
		return kv, nil
	}
	v, err := sign(l, pos)
	if err != nil {
		return kv, fmt.Errorf("tenant: sign consistency token for %s: %w", w.Consistency, err)
	}
	return append(kv, w.Consistency, v), nil
}

// positionToken is a parsed consistency token.
type positionToken struct {
	tenant, user string
	pos          uint64
	expires      int64
}

func positionMalformed(field, why string) error {
	return fmt.Errorf("%w: field %s: %s", ErrConsistencyMalformed, field, why)
}

// checkPositionFields reports the first field that cannot be encoded.
func checkPositionFields(tenantID, userHash string, pos uint64, expires time.Time) error {
	if tenantID != "" {
		if why := CheckTenant(tenantID); why != "" {
			return positionMalformed("t", "tenant "+why)
		}
	}
	if userHash != "" && (len(userHash) != 32 || !lowerHex(userHash)) {
		return positionMalformed("u", "user hash is not 32 lowercase hex digits")
	}
	if pos == 0 {
		return positionMalformed("p", "position is 0")
	}
	if e := expires.Unix(); expires.IsZero() || e < 1 || e > maxExpiry {
		return positionMalformed("e", "expiry outside 1.."+strconv.Itoa(maxExpiry)+" Unix seconds")
	}
	return nil
}

// appendPositionFields appends the signed part of a token, up to and
// including the ';' before "s=".
func appendPositionFields(b []byte, tenantID, userHash string, pos uint64, expires time.Time) []byte {
	b = append(b, ConsistencyVersion+";t="...)
	b = append(b, tenantID...)
	b = append(b, ";u="...)
	b = append(b, userHash...)
	b = append(b, ";p="...)
	b = strconv.AppendUint(b, pos, 16)
	b = append(b, ";e="...)
	b = strconv.AppendInt(b, expires.Unix(), 10)
	return append(b, ';')
}

// parsePosition parses and checks the fields of v, and returns the length of
// the signed part (everything before "s=").
func parsePosition(v string) (positionToken, int, error) {
	var tk positionToken
	if len(v) > MaxConsistencyLen {
		return tk, 0, fmt.Errorf("%w: longer than %d bytes", ErrConsistencyMalformed, MaxConsistencyLen)
	}
	p := decisionParser{v: v}
	if version, ok := p.next(); !ok || version != ConsistencyVersion {
		return tk, 0, fmt.Errorf("%w: not version %s", ErrConsistencyMalformed, ConsistencyVersion)
	}
	t, ok := p.field("t")
	if !ok {
		return tk, 0, positionMalformed("t", "missing or out of order")
	}
	u, ok := p.field("u")
	if !ok {
		return tk, 0, positionMalformed("u", "missing or out of order")
	}
	ps, ok := p.field("p")
	if !ok {
		return tk, 0, positionMalformed("p", "missing or out of order")
	}
	es, ok := p.field("e")
	if !ok {
		return tk, 0, positionMalformed("e", "missing or out of order")
	}
	signedLen := p.i
	if len(v)-signedLen != 2+macLen || v[signedLen:signedLen+2] != "s=" {
		return tk, 0, positionMalformed("s", "missing, out of order or not "+strconv.Itoa(macLen)+" characters")
	}
	pos, ok := canonicalHex(ps)
	if !ok {
		return tk, 0, positionMalformed("p", "not 1 to 16 lowercase hex digits without leading zeros")
	}
	e, ok := canonicalInt(es, false)
	if !ok {
		return tk, 0, positionMalformed("e", "not a canonical integer")
	}
	tk = positionToken{tenant: t, user: u, pos: pos, expires: e}
	if err := checkPositionFields(t, u, pos, time.Unix(e, 0)); err != nil {
		return positionToken{}, 0, err
	}
	return tk, signedLen, nil
}

// canonicalHex parses s as 1 to 16 lowercase hex digits without leading
// zeros, and not 0.
func canonicalHex(s string) (uint64, bool) {
	if s == "" || len(s) > 16 || s[0] == '0' || !lowerHex(s) {
		return 0, false
	}
	var n uint64
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c <= '9' {
			c -= '0'
		} else {
			c = c - 'a' + 10
		}
		n = n<<4 | uint64(c)
	}
	return n, true
}
