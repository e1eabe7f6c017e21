package tenant

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"hash"
	"sync"
)

// MinUserHashKeyLen is the shortest key [NewUserHasher] accepts, in bytes.
const MinUserHashKeyLen = 16

// UserHasher computes [Labels.UserHash]: the first 16 bytes of
// HMAC-SHA256(key, len(tenant) || tenant || user), in lowercase hex (32
// digits), where len(tenant) is one byte. Instances that share the key agree;
// without the key the hash cannot be recomputed from a guessed user id.
//
// A UserHasher is safe for concurrent use.
type UserHasher struct {
	pool sync.Pool
}

type userHashState struct {
	mac hash.Hash
	buf []byte
	sum []byte
}

// NewUserHasher returns a UserHasher keyed by key, which must be at least
// [MinUserHashKeyLen] bytes. The key is copied.
func NewUserHasher(key []byte) (*UserHasher, error) {
	if len(key) < MinUserHashKeyLen {
		return nil, errors.New("tenant: user hash key shorter than 16 bytes")
	}
	k := append([]byte(nil), key...)
	h := &UserHasher{}
	h.pool.New = func() any {
		return &userHashState{
			mac: hmac.New(sha256.New, k),
			buf: make([]byte, 0, 1+MaxTenantLen+MaxUserLen),
			sum: make([]byte, 0, sha256.Size),
		}
	}
	return h, nil
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
	s := h.pool.Get().(*userHashState)
	s.mac.Reset()
	b := append(s.buf[:0], byte(len(tenant)))
	b = append(b, tenant...)
	b = append(b, user...)
	s.mac.Write(b)
	sum := s.mac.Sum(s.sum[:0])
	var out [32]byte
	hex.Encode(out[:], sum[:16])
	if cap(b) <= 4*(1+MaxTenantLen+MaxUserLen) {
		s.buf = b[:0]
	}
	h.pool.Put(s)
	return string(out[:])
}
