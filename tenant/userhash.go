package tenant

import (
	"crypto/hkdf"
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"math/bits"
	"unsafe"
)

// MinUserHashKeyLen is the shortest key [NewUserHasher] accepts, in bytes.
const MinUserHashKeyLen = 16

// UserHashLen is the length of a [Labels.UserHash]: 32 lowercase hex digits.
const UserHashLen = 32

// userHashInfo is the HKDF info string that derives the SipHash key of the
// user hash from the configured key. Changing it changes every user hash.
const userHashInfo = "canary tenant.UserHasher v3 SipHash-2-4-128"

// UserHasher computes [Labels.UserHash]:
//
//	K    = HKDF-SHA256(secret = key, salt = none, info = "canary tenant.UserHasher v3 SipHash-2-4-128", 16 bytes)
//	hash = lowercase hex of SipHash-2-4-128(K, len(tenant) || tenant || user)
//
// where len(tenant) is one byte (a valid tenant id is at most [MaxTenantLen]
// bytes) and SipHash-2-4-128 is the 128-bit output variant of SipHash
// (Aumasson and Bernstein; the reference implementation's vectors_sip128),
// a keyed pseudorandom function made for short inputs: its 16-byte output
// gives the 32 hex digits. Instances that share the key agree; without the
// key the hash cannot be recomputed from a guessed user id.
//
// A UserHasher is safe for concurrent use.
type UserHasher struct {
	k0, k1 uint64 // the SipHash key, little endian
}

// NewUserHasher returns a UserHasher keyed by key, which must be at least
// [MinUserHashKeyLen] bytes. The key is not retained: the hasher keeps only
// the SipHash key derived from it.
func NewUserHasher(key []byte) (*UserHasher, error) {
	if len(key) < MinUserHashKeyLen {
		return nil, errors.New("tenant: user hash key shorter than 16 bytes")
	}
	k, err := hkdf.Key(sha256.New, key, nil, userHashInfo, 16)
	if err != nil {
		return nil, fmt.Errorf("tenant: deriving the user hash key: %w", err)
	}
	return newSipHasher(k), nil
}

// newSipHasher returns a UserHasher whose SipHash key is the 16 bytes k
// (no derivation): the reference vectors run through it.
func newSipHasher(k []byte) *UserHasher {
	return &UserHasher{k0: binary.LittleEndian.Uint64(k[:8]), k1: binary.LittleEndian.Uint64(k[8:16])}
}

// NewRandomUserHasher returns a UserHasher with a random key: hashes agree
// only within this process.
func NewRandomUserHasher() *UserHasher {
	key := make([]byte, 32)
	_, _ = rand.Read(key) // crypto/rand.Read never fails on supported platforms
	h, _ := NewUserHasher(key)
	return h
}

// Hash returns the user hash of user within tenant, or "" when user is "".
// It allocates the 32 bytes of the returned string and nothing else.
func (h *UserHasher) Hash(tenant, user string) string {
	if user == "" {
		return ""
	}
	buf := new([UserHashLen]byte)
	return h.HashInto(buf, tenant, user)
}

// HashInto is [UserHasher.Hash] that writes the hex digits into buf, which
// the returned string then shares: it allocates nothing. The caller must
// never write to buf again, nor pass it to HashInto again, while the string
// is in use (it would change the string). It returns "" when user is "",
// leaving buf untouched.
func (h *UserHasher) HashInto(buf *[UserHashLen]byte, tenant, user string) string {
	if user == "" {
		return ""
	}
	lo, hi := h.sum(tenant, user)
	le := binary.LittleEndian
	le.PutUint64(buf[0:], hex8(uint32(lo)))
	le.PutUint64(buf[8:], hex8(uint32(lo>>32)))
	le.PutUint64(buf[16:], hex8(uint32(hi)))
	le.PutUint64(buf[24:], hex8(uint32(hi>>32)))
	// buf is written here once and, by HashInto's contract, never again:
	// the string may share it (as strings.Builder shares its buffer).
	return unsafe.String(&buf[0], UserHashLen)
}

// start begins a SipHash-2-4 computation with the 128-bit output under h's
// key (the 0xee in v1 marks the 128-bit variant).
func (h *UserHasher) start() sip {
	return sip{v0: h.k0 ^ 0x736f6d6570736575, v1: h.k1 ^ 0x646f72616e646f6d ^ 0xee,
		v2: h.k0 ^ 0x6c7967656e657261, v3: h.k1 ^ 0x7465646279746573}
}

// sum returns the SipHash-2-4-128 of len(tenant) || tenant || user. Inputs
// within the wire limits are copied into one buffer on the stack and hashed
// in one pass; longer ones are streamed.
func (h *UserHasher) sum(tenant, user string) (lo, hi uint64) {
	var msg [1 + MaxTenantLen + MaxUserLen + 8]byte
	n := 1 + len(tenant) + len(user)
	if n > len(msg)-8 { // the last word is read whole, zeros included
		s := h.start()
		s.writeByte(byte(len(tenant)))
		s.writeString(tenant)
		s.writeString(user)
		return s.sum128()
	}
	msg[0] = byte(len(tenant))
	copy(msg[1:], tenant)
	copy(msg[1+len(tenant):], user)
	s := h.start()
	v0, v1, v2, v3 := s.v0, s.v1, s.v2, s.v3
	i := 0
	for ; i+8 <= n; i += 8 {
		m := binary.LittleEndian.Uint64(msg[i:])
		v3 ^= m
		v0, v1, v2, v3 = sipRound(v0, v1, v2, v3)
		v0, v1, v2, v3 = sipRound(v0, v1, v2, v3)
		v0 ^= m
	}
	// The last word: the remaining bytes (the buffer's zeros after them)
	// and the length in the top byte.
	m := binary.LittleEndian.Uint64(msg[i:])&(1<<(8*uint(n-i))-1) | uint64(n)<<56
	v3 ^= m
	v0, v1, v2, v3 = sipRound(v0, v1, v2, v3)
	v0, v1, v2, v3 = sipRound(v0, v1, v2, v3)
	v0 ^= m
	v2 ^= 0xee
	for range 4 {
		v0, v1, v2, v3 = sipRound(v0, v1, v2, v3)
	}
	lo = v0 ^ v1 ^ v2 ^ v3
	v1 ^= 0xdd
	for range 4 {
		v0, v1, v2, v3 = sipRound(v0, v1, v2, v3)
	}
	return lo, v0 ^ v1 ^ v2 ^ v3
}

// sipRound is one SipRound.
func sipRound(v0, v1, v2, v3 uint64) (uint64, uint64, uint64, uint64) {
	v0 += v1
	v1 = bits.RotateLeft64(v1, 13) ^ v0
	v0 = bits.RotateLeft64(v0, 32)
	v2 += v3
	v3 = bits.RotateLeft64(v3, 16) ^ v2
	v0 += v3
	v3 = bits.RotateLeft64(v3, 21) ^ v0
	v2 += v1
	v1 = bits.RotateLeft64(v1, 17) ^ v2
	v2 = bits.RotateLeft64(v2, 32)
	return v0, v1, v2, v3
}

// sip is a SipHash-2-4 computation in progress, fed without building the
// message (for inputs beyond the wire limits): m holds the n (< 8) pending
// bytes of the current word, little endian, and total counts every byte
// written.
type sip struct {
	v0, v1, v2, v3 uint64
	m              uint64
	n              uint
	total          uint64
}

// compress absorbs one 8-byte word (two rounds: SipHash-2-x).
func (s *sip) compress(m uint64) {
	s.v3 ^= m
	s.v0, s.v1, s.v2, s.v3 = sipRound(s.v0, s.v1, s.v2, s.v3)
	s.v0, s.v1, s.v2, s.v3 = sipRound(s.v0, s.v1, s.v2, s.v3)
	s.v0 ^= m
}

func (s *sip) writeByte(c byte) {
	s.m |= uint64(c) << (8 * s.n)
	s.n++
	s.total++
	if s.n == 8 {
		s.compress(s.m)
		s.m, s.n = 0, 0
	}
}

func (s *sip) writeString(p string) {
	s.total += uint64(len(p))
	for s.n != 0 && len(p) > 0 { // finish the pending word
		s.m |= uint64(p[0]) << (8 * s.n)
		s.n++
		p = p[1:]
		if s.n == 8 {
			s.compress(s.m)
			s.m, s.n = 0, 0
		}
	}
	for len(p) >= 8 {
		s.compress(le64(p))
		p = p[8:]
	}
	for i := 0; i < len(p); i++ {
		s.m |= uint64(p[i]) << (8 * s.n)
		s.n++
	}
}

// sum128 pads the last word with the length and finalizes: SipHash-x-4 with
// the 128-bit output (v2 ^= 0xee, then v1 ^= 0xdd for the second half).
func (s *sip) sum128() (lo, hi uint64) {
	s.compress(s.m | s.total<<56)
	v0, v1, v2, v3 := s.v0, s.v1, s.v2^0xee, s.v3
	for range 4 {
		v0, v1, v2, v3 = sipRound(v0, v1, v2, v3)
	}
	lo = v0 ^ v1 ^ v2 ^ v3
	v1 ^= 0xdd
	for range 4 {
		v0, v1, v2, v3 = sipRound(v0, v1, v2, v3)
	}
	return lo, v0 ^ v1 ^ v2 ^ v3
}

// hex8 returns the 8 lowercase hex digits of the 4 bytes of w, taken in
// little-endian order (the byte order of the hash's output), packed for a
// little-endian store: the digits of w's low byte come first. It works on
// all digits at once (SWAR) instead of a table lookup per digit.
func hex8(w uint32) uint64 {
	x := uint64(w)
	x = (x | x<<16) & 0x0000ffff0000ffff
	x = (x | x<<8) & 0x00ff00ff00ff00ff // byte k of w in the low byte of 16-bit lane k
	n := (x>>4)&0x000f000f000f000f | (x&0x000f000f000f000f)<<8
	// Each byte of n is a nibble: '0'+n, plus 'a'-'0'-10 = 39 when n >= 10.
	ten := ((n + 0x0606060606060606) >> 4) & 0x0101010101010101
	return n + 0x3030303030303030 + ten*39
}

// le64 reads the first 8 bytes of p as a little-endian word.
func le64(p string) uint64 {
	_ = p[7]
	return uint64(p[0]) | uint64(p[1])<<8 | uint64(p[2])<<16 | uint64(p[3])<<24 |
		uint64(p[4])<<32 | uint64(p[5])<<40 | uint64(p[6])<<48 | uint64(p[7])<<56
}
