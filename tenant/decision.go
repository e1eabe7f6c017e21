package tenant

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"hash"
	"math"
	"strconv"
	"sync"
	"time"
)

// DecisionVersion is the version prefix of the decision format this package
// writes and reads.
const DecisionVersion = "v1"

// MaxDecisionLen is the longest decision value accepted, in bytes. The longest
// valid version 1 value is shorter.
const MaxDecisionLen = 256

// MinDecisionKeyLen is the shortest signing key [NewDecisionSigner] accepts,
// in bytes.
const MinDecisionKeyLen = 16

// MaxReasonLen is the longest [Decision.Reason], in bytes.
const MaxReasonLen = 32

// DefaultDecisionTTL is how long a decision signed by [DecisionSigner.LabelSigner]
// stays valid when no other lifetime is given: long enough for a chain of
// calls, short enough that a captured header is soon useless.
const DefaultDecisionTTL = 60 * time.Second

// The outcomes of verifying a decision. The engine counts them separately: a
// bad signature is a forgery or a key mismatch, an expired decision is a slow
// or replayed one, a malformed value is a broken or hostile peer.
var (
	// ErrDecisionMalformed: the value does not follow the format, or a field
	// is out of range.
	ErrDecisionMalformed = errors.New("malformed decision")
	// ErrDecisionVersion: the value is of a version this package does not
	// read (e.g. "v2;...").
	ErrDecisionVersion = errors.New("unknown decision version")
	// ErrDecisionSignature: the MAC matches none of the keys.
	ErrDecisionSignature = errors.New("decision signature does not verify")
	// ErrDecisionExpired: the MAC is valid but the expiry has passed.
	ErrDecisionExpired = errors.New("decision expired")
)

// Decision is a cohort decision as it travels between services, signed. It
// carries everything a downstream hop needs to label a request exactly as the
// deciding hop did, and never the raw user id. Decision is a plain value.
//
// A signed decision is how a service that decided a request's cohort tells
// the next hop, in one header ([HeaderDecision], metadata "x-canary-decision"),
// so that the hop can honour exactly that decision instead of deciding afresh.
//
// Wire format, version 1 (one line of printable ASCII, at most
// [MaxDecisionLen] bytes):
//
//	v1;c=<cohort>;b=<bucket>;t=<tenant>;u=<user hash>;r=<reason>;p=<plan version>;e=<expiry>;s=<mac>
//
// for example
//
//	v1;c=canary;b=1234;t=acme;u=0f1e2d3c4b5a69788796a5b4c3d2e1f0;r=percent;p=7;e=1767225600;s=<43 characters>
//
// The fields appear exactly once each, in exactly this order, separated by
// ';' with no spaces:
//
//   - c: the cohort, "stable" or "canary".
//   - b: the bucket, -1 ([NoBucket]) or 0..9999.
//   - t: the tenant id, empty or valid per [CheckTenant].
//   - u: the user hash, empty or 32 lowercase hex digits.
//   - r: the reason, 0..32 bytes of [a-z0-9-].
//   - p: the plan version, 0..2147483647.
//   - e: the expiry, in Unix seconds, 1..99999999999. A decision is expired
//     from that second on.
//   - s: the MAC: HMAC-SHA256, keyed by the shared signing key, over every
//     byte of the value before "s=" (that is, "v1;c=...;e=<expiry>;",
//     including the version and the final ';'), encoded as unpadded base64url
//     (RFC 4648 section 5): always 43 characters.
//
// Integers are in canonical decimal: no sign except the '-' of -1, no leading
// zeros. Since the MAC covers the exact bytes and the encoding is canonical, a
// decision has exactly one valid encoding under a key. A non-Go service
// honours a decision by checking the version prefix "v1;", parsing and
// checking the fields as above, recomputing the HMAC over the bytes before
// "s=" with each key it accepts and comparing it in constant time, and only
// then checking the expiry (a value whose MAC fails is a forgery, expired or
// not). Values of any other version must be rejected ([ErrDecisionVersion]).
type Decision struct {
	Cohort      Cohort    // "stable" or "canary"
	Bucket      int       // [NoBucket] or 0..9999
	Tenant      string    // "" or a valid tenant id
	UserHash    string    // "" or 32 lowercase hex digits
	Reason      string    // the reason of the deciding hop, 0..32 bytes of [a-z0-9-]
	PlanVersion int       // 0..2147483647
	Expires     time.Time // the decision is valid strictly before this second
}

// DecisionOf returns the decision that carries l, expiring at expires. The
// trace id is not part of a decision: it travels in traceparent.
func DecisionOf(l Labels, expires time.Time) Decision {
	return Decision{
		Cohort: l.Cohort, Bucket: l.Bucket, Tenant: l.Tenant, UserHash: l.UserHash,
		Reason: l.Reason, PlanVersion: l.PlanVersion, Expires: expires,
	}
}

// Labels returns the labels d carries: its cohort, bucket, tenant, user hash,
// reason and plan version, and no trace id. A hop that adopts d typically sets
// Reason to [ReasonUpstream] and TraceID to its own trace.
func (d Decision) Labels() Labels {
	return Labels{
		Tenant: d.Tenant, UserHash: d.UserHash, Bucket: d.Bucket, Cohort: d.Cohort,
		Reason: d.Reason, PlanVersion: d.PlanVersion,
	}
}

// Validate reports the first field of d that cannot be encoded, as an error
// matching [ErrDecisionMalformed] that names the field.
func (d Decision) Validate() error {
	if d.Cohort != Stable && d.Cohort != Canary {
		return malformed("c", "cohort %q is neither stable nor canary", d.Cohort)
	}
	if d.Bucket < NoBucket || d.Bucket >= Buckets {
		return malformed("b", "bucket %d is outside -1..%d", d.Bucket, Buckets-1)
	}
	if d.Tenant != "" {
		if why := CheckTenant(d.Tenant); why != "" {
			return malformed("t", "tenant %s", why)
		}
	}
	if d.UserHash != "" && (len(d.UserHash) != 32 || !lowerHex(d.UserHash)) {
		return malformed("u", "user hash is not 32 lowercase hex digits")
	}
	if why := checkReason(d.Reason); why != "" {
		return malformed("r", "reason %s", why)
	}
	if d.PlanVersion < 0 || int64(d.PlanVersion) > math.MaxInt32 {
		return malformed("p", "plan version %d is outside 0..%d", d.PlanVersion, math.MaxInt32)
	}
	if e := d.Expires.Unix(); d.Expires.IsZero() || e < 1 || e > maxExpiry {
		return malformed("e", "expiry %v is outside 1..%d Unix seconds", d.Expires, maxExpiry)
	}
	return nil
}

const (
	maxExpiry = 99999999999
	macLen    = 43 // unpadded base64url of 32 bytes
)

var macEncoding = base64.RawURLEncoding.Strict()

func malformed(field, format string, args ...any) error {
	return fmt.Errorf("%w: field %s: %s", ErrDecisionMalformed, field, fmt.Sprintf(format, args...))
}

func checkReason(r string) string {
	if len(r) > MaxReasonLen {
		return "longer than " + strconv.Itoa(MaxReasonLen) + " bytes"
	}
	for i := 0; i < len(r); i++ {
		c := r[i]
		if !('a' <= c && c <= 'z' || '0' <= c && c <= '9' || c == '-') {
			return "byte " + strconv.Itoa(i) + " is not one of [a-z0-9-]"
		}
	}
	return ""
}

// DecisionSigner signs decisions with a current key and verifies them against
// the current key and any previous keys, so that keys can be rotated without
// rejecting decisions signed a moment before: deploy the new key as current
// with the old one as previous everywhere, then drop the old one.
//
// A DecisionSigner is safe for concurrent use.
type DecisionSigner struct {
	keys []*macPool // keys[0] signs; all verify
}

// macPool recycles HMAC states of one key.
type macPool struct{ sync.Pool }

type macState struct {
	mac hash.Hash
	sum []byte
}

func newMACPool(key []byte) *macPool {
	k := append([]byte(nil), key...)
	p := &macPool{}
	p.New = func() any { return &macState{mac: hmac.New(sha256.New, k), sum: make([]byte, 0, sha256.Size)} }
	return p
}

// sum appends to dst the MAC of msg.
func (p *macPool) sum(dst, msg []byte) []byte {
	s := p.Get().(*macState)
	s.mac.Reset()
	s.mac.Write(msg)
	sum := s.mac.Sum(s.sum[:0])
	dst = append(dst, sum...)
	p.Put(s)
	return dst
}

// NewDecisionSigner returns a DecisionSigner that signs with current and
// verifies against current and each of previous, in that order. Every key
// must be at least [MinDecisionKeyLen] bytes; keys are copied.
func NewDecisionSigner(current []byte, previous ...[]byte) (*DecisionSigner, error) {
	if len(current) < MinDecisionKeyLen {
		return nil, fmt.Errorf("tenant: decision signing key: %d bytes, want at least %d", len(current), MinDecisionKeyLen)
	}
	s := &DecisionSigner{keys: []*macPool{newMACPool(current)}}
	for i, k := range previous {
		if len(k) < MinDecisionKeyLen {
			return nil, fmt.Errorf("tenant: previous decision key %d: %d bytes, want at least %d", i, len(k), MinDecisionKeyLen)
		}
		s.keys = append(s.keys, newMACPool(k))
	}
	return s, nil
}

// Sign returns the signed encoding of d under the current key, or an error
// matching [ErrDecisionMalformed] naming the field of d that cannot be
// encoded.
func (s *DecisionSigner) Sign(d Decision) (string, error) {
	if err := d.Validate(); err != nil {
		return "", err
	}
	var buf [MaxDecisionLen]byte
	b := appendDecisionFields(buf[:0], d)
	var mac [sha256.Size]byte
	s.keys[0].sum(mac[:0], b)
	b = append(b, "s="...)
	b = macEncoding.AppendEncode(b, mac[:])
	return string(b), nil
}

// appendDecisionFields appends the signed part of d's encoding, up to and
// including the ';' before "s=".
func appendDecisionFields(b []byte, d Decision) []byte {
	b = append(b, DecisionVersion+";c="...)
	b = append(b, d.Cohort...)
	b = append(b, ";b="...)
	b = strconv.AppendInt(b, int64(d.Bucket), 10)
	b = append(b, ";t="...)
	b = append(b, d.Tenant...)
	b = append(b, ";u="...)
	b = append(b, d.UserHash...)
	b = append(b, ";r="...)
	b = append(b, d.Reason...)
	b = append(b, ";p="...)
	b = strconv.AppendInt(b, int64(d.PlanVersion), 10)
	b = append(b, ";e="...)
	b = strconv.AppendInt(b, d.Expires.Unix(), 10)
	return append(b, ';')
}

// SignLabels signs the decision that carries l, expiring at expires. It is
// [DecisionSigner.Sign] of [DecisionOf](l, expires).
func (s *DecisionSigner) SignLabels(l Labels, expires time.Time) (string, error) {
	return s.Sign(DecisionOf(l, expires))
}

// LabelSigner returns a [SignFunc] that signs labels with decisions valid for
// ttl from the time now returns. A ttl of zero or less means
// [DefaultDecisionTTL]; a nil now means [time.Now].
func (s *DecisionSigner) LabelSigner(ttl time.Duration, now func() time.Time) SignFunc {
	if ttl <= 0 {
		ttl = DefaultDecisionTTL
	}
	if now == nil {
		now = time.Now
	}
	return func(l Labels) (string, error) { return s.SignLabels(l, now().Add(ttl)) }
}

// Verify parses the decision value v, checks its MAC against every key in
// constant time and its expiry against now, and returns the decision. The
// error matches exactly one of [ErrDecisionMalformed], [ErrDecisionVersion],
// [ErrDecisionSignature] (no key verifies) or [ErrDecisionExpired] (a key
// verifies but now is at or after the expiry), checked in that order: an
// expired value whose MAC does not verify is a signature error.
func (s *DecisionSigner) Verify(v string, now time.Time) (Decision, error) {
	d, signedLen, err := parseDecision(v)
	if err != nil {
		return Decision{}, err
	}
	ok, wellFormed := s.checkMAC(v[:signedLen], v[signedLen+2:])
	if !wellFormed {
		return Decision{}, malformed("s", "not %d characters of unpadded base64url", macLen)
	}
	if !ok {
		return Decision{}, ErrDecisionSignature
	}
	if now.Unix() >= d.Expires.Unix() {
		return Decision{}, fmt.Errorf("%w at %s", ErrDecisionExpired, d.Expires.UTC().Format(time.RFC3339))
	}
	return d, nil
}

// parseDecision parses the fields of v, validating each, and returns the
// length of the signed part (everything before "s=").
func parseDecision(v string) (Decision, int, error) {
	var d Decision
	if len(v) > MaxDecisionLen {
		return d, 0, fmt.Errorf("%w: longer than %d bytes", ErrDecisionMalformed, MaxDecisionLen)
	}
	p := decisionParser{v: v}
	version, ok := p.next()
	if !ok {
		return d, 0, fmt.Errorf("%w: no version", ErrDecisionMalformed)
	}
	if version != DecisionVersion {
		if len(version) >= 2 && len(version) <= 4 && version[0] == 'v' && digits(version[1:]) {
			return d, 0, fmt.Errorf("%w %q", ErrDecisionVersion, version)
		}
		return d, 0, fmt.Errorf("%w: no version", ErrDecisionMalformed)
	}
	var err error
	field := func(name string) string {
		if err != nil {
			return ""
		}
		val, ok := p.field(name)
		if !ok {
			err = malformed(name, "missing or out of order")
		}
		return val
	}
	c, b, t, u, r, pv, e := field("c"), field("b"), field("t"), field("u"), field("r"), field("p"), field("e")
	if err != nil {
		return d, 0, err
	}
	signedLen := p.i
	if len(v)-signedLen != 2+macLen || v[signedLen:signedLen+2] != "s=" {
		return d, 0, malformed("s", "missing, out of order or not %d characters", macLen)
	}
	d.Cohort = Cohort(c)
	var n int64
	if n, ok = canonicalInt(b, true); !ok {
		return d, 0, malformed("b", "not a canonical integer")
	}
	d.Bucket = int(n)
	d.Tenant, d.UserHash, d.Reason = t, u, r
	if n, ok = canonicalInt(pv, false); !ok {
		return d, 0, malformed("p", "not a canonical integer")
	}
	d.PlanVersion = int(n)
	if n, ok = canonicalInt(e, false); !ok {
		return d, 0, malformed("e", "not a canonical integer")
	}
	d.Expires = time.Unix(n, 0)
	if err := d.Validate(); err != nil {
		return Decision{}, 0, err
	}
	return d, signedLen, nil
}

// decisionParser walks the ';'-separated parts of a decision value.
type decisionParser struct {
	v string
	i int
}

// next returns the part at the cursor up to the next ';' and moves past it.
func (p *decisionParser) next() (string, bool) {
	for j := p.i; j < len(p.v); j++ {
		if p.v[j] == ';' {
			s := p.v[p.i:j]
			p.i = j + 1
			return s, true
		}
	}
	return "", false
}

// field returns the value of the part "name=value;" at the cursor.
func (p *decisionParser) field(name string) (string, bool) {
	rest := p.v[p.i:]
	if len(rest) < len(name)+1 || rest[:len(name)] != name || rest[len(name)] != '=' {
		return "", false
	}
	p.i += len(name) + 1
	return p.next()
}

// canonicalInt parses s as a canonical decimal integer of at most 11 digits:
// no sign (except "-1" when minusOne), no leading zeros.
func canonicalInt(s string, minusOne bool) (int64, bool) {
	if minusOne && s == "-1" {
		return -1, true
	}
	if s == "" || len(s) > 11 || !digits(s) || (len(s) > 1 && s[0] == '0') {
		return 0, false
	}
	n, err := strconv.ParseInt(s, 10, 64)
	return n, err == nil
}

func digits(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return s != ""
}

// checkMAC reports whether mac, unpadded base64url, is well formed and the
// MAC of signed under one of s's keys (the current or a previous one).
func (s *DecisionSigner) checkMAC(signed, mac string) (ok, wellFormed bool) {
	var got [sha256.Size]byte
	if n, err := macEncoding.Decode(got[:], []byte(mac)); err != nil || n != len(got) {
		return false, false
	}
	b := []byte(signed)
	for _, k := range s.keys {
		var want [sha256.Size]byte
		if hmac.Equal(k.sum(want[:0], b), got[:]) {
			return true, true
		}
	}
	return false, true
}
