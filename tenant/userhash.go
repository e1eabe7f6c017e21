package tenant

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/hkdf"
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"unsafe"
)

// MinUserHashKeyLen is the shortest key [NewUserHasher] accepts, in bytes.
const MinUserHashKeyLen = 16

// userHashInfo is the HKDF info string that derives the AES key of the user
// hash from the configured key. Changing it changes every user hash.
const userHashInfo = "canary tenant.UserHasher v2 AES-128-CMAC"

// UserHasher computes [Labels.UserHash]:
//
//	K    = HKDF-SHA256(secret = key, salt = none, info = "canary tenant.UserHasher v2 AES-128-CMAC", 16 bytes)
//	hash = lowercase hex of AES-128-CMAC(K, len(tenant) || tenant || user)
//
// where len(tenant) is one byte (a valid tenant id is at most [MaxTenantLen]
// bytes) and AES-CMAC is that of NIST SP 800-38B / RFC 4493, whose 16-byte
// tag gives the 32 hex digits. Instances that share the key agree; without
// the key the hash cannot be recomputed from a guessed user id.
//
// A UserHasher is safe for concurrent use.
type UserHasher struct {
	// block is AES-128 under K. The standard library's AES block only reads
	// its key schedule (crypto/internal/fips140/aes documents it as safe for
	// concurrent use), so one block serves every goroutine.
	block  cipher.Block
	k1, k2 [aes.BlockSize]byte // the CMAC subkeys
}

// hashBuf is the one allocation of a Hash call: the CBC chaining value
// (memory passed to the interface method Encrypt escapes, so it is on the
// heap anyway) followed by the hex digits of the tag, which the returned
// string then points at.
type hashBuf struct {
	x   [aes.BlockSize]byte
	hex [2 * aes.BlockSize]byte
}

// NewUserHasher returns a UserHasher keyed by key, which must be at least
// [MinUserHashKeyLen] bytes. The key is not retained: the hasher keeps only
// the AES key derived from it.
func NewUserHasher(key []byte) (*UserHasher, error) {
	if len(key) < MinUserHashKeyLen {
		return nil, errors.New("tenant: user hash key shorter than 16 bytes")
	}
	k, err := hkdf.Key(sha256.New, key, nil, userHashInfo, 16)
	if err != nil {
		return nil, fmt.Errorf("tenant: deriving the user hash key: %w", err)
	}
	return newCMACHasher(k)
}

// newCMACHasher returns a UserHasher whose AES-128 key is k itself (no
// derivation): the RFC 4493 test vectors run through it.
func newCMACHasher(k []byte) (*UserHasher, error) {
	b, err := aes.NewCipher(k)
	if err != nil {
		return nil, fmt.Errorf("tenant: user hash key: %w", err)
	}
	h := &UserHasher{block: b}
	// Subkeys (RFC 4493, section 2.3): L = AES(K, 0^128), K1 = L·x, K2 = K1·x
	// in GF(2^128).
	var l [aes.BlockSize]byte
	b.Encrypt(l[:], l[:])
	h.k1 = double(l)
	h.k2 = double(h.k1)
	return h, nil
}

// double multiplies the block by x in GF(2^128) as RFC 4493 does: shift left
// by one bit, and xor 0x87 into the last byte when the top bit was set.
func double(in [aes.BlockSize]byte) [aes.BlockSize]byte {
	var out [aes.BlockSize]byte
	for i := 0; i < aes.BlockSize-1; i++ {
		out[i] = in[i]<<1 | in[i+1]>>7
	}
	out[aes.BlockSize-1] = in[aes.BlockSize-1] << 1
	out[aes.BlockSize-1] ^= 0x87 & byte(-int8(in[0]>>7)) // constant time
	return out
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
func (h *UserHasher) Hash(tenant, user string) string {
	if user == "" {
		return ""
	}
	b := new(hashBuf)
	m := cmac{h: h, x: &b.x}
	m.writeByte(byte(len(tenant)))
	m.writeString(tenant)
	m.writeString(user)
	m.finish()
	hex.Encode(b.hex[:], b.x[:])
	// b.hex is written once, above, and never again: the string may share it
	// (as strings.Builder shares its buffer), saving a second allocation.
	return unsafe.String(&b.hex[0], len(b.hex))
}

// cmac is one AES-CMAC computation in progress, fed without building the
// message: x is the CBC chaining value (zero at the start; in heap memory,
// as Encrypt's arguments escape) and blk the current block, of which n bytes are
// filled. A full block is encrypted only when more input follows, so that
// finish knows whether the last block is complete.
type cmac struct {
	h   *UserHasher
	x   *[aes.BlockSize]byte
	blk [aes.BlockSize]byte
	n   int
}

func (m *cmac) writeByte(c byte) {
	if m.n == aes.BlockSize {
		m.flush()
	}
	m.blk[m.n] = c
	m.n++
}

func (m *cmac) writeString(s string) {
	for len(s) > 0 {
		if m.n == aes.BlockSize {
			m.flush()
		}
		k := copy(m.blk[m.n:], s)
		m.n += k
		s = s[k:]
	}
}

// flush chains the full block blk into x: x = AES(K, x xor blk).
func (m *cmac) flush() {
	xorInto(m.x, &m.blk)
	m.h.block.Encrypt(m.x[:], m.x[:])
	m.n = 0
}

// finish leaves the tag in x: a complete last block is xored with K1, a
// partial (or empty) one is padded with 10* and xored with K2.
func (m *cmac) finish() {
	k := &m.h.k1
	if m.n < aes.BlockSize {
		m.blk[m.n] = 0x80
		clear(m.blk[m.n+1:])
		k = &m.h.k2
	}
	xorInto(m.x, &m.blk)
	xorInto(m.x, k)
	m.h.block.Encrypt(m.x[:], m.x[:])
}

// xorInto sets dst to dst xor src.
func xorInto(dst, src *[aes.BlockSize]byte) {
	le := binary.LittleEndian
	le.PutUint64(dst[:8], le.Uint64(dst[:8])^le.Uint64(src[:8]))
	le.PutUint64(dst[8:], le.Uint64(dst[8:])^le.Uint64(src[8:]))
}
