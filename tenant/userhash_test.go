package tenant

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/hkdf"
	"crypto/sha256"
	"encoding/hex"
	"math/big"
	"strings"
	"sync"
	"testing"
)

// The examples of RFC 4493, section 4 (AES-128, the key of NIST SP 800-38B
// appendix D.1): they pin the AES-CMAC under the user hash.
func TestCMACRFC4493Vectors(t *testing.T) {
	key := mustHex(t, "2b7e151628aed2a6abf7158809cf4f3c")
	msg := mustHex(t, "6bc1bee22e409f96e93d7e117393172a"+
		"ae2d8a571e03ac9c9eb76fac45af8e51"+
		"30c81c46a35ce411e5fbc1191a0a52ef"+
		"f69f2445df4f9b17ad2b417be66c3710")
	h, err := newCMACHasher(key)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := hex.EncodeToString(h.k1[:]), "fbeed618357133667c85e08f7236a8de"; got != want {
		t.Errorf("K1 = %s, want %s", got, want)
	}
	if got, want := hex.EncodeToString(h.k2[:]), "f7ddac306ae266ccf90bc11ee46d513b"; got != want {
		t.Errorf("K2 = %s, want %s", got, want)
	}
	for _, tc := range []struct {
		n    int
		want string
	}{
		{0, "bb1d6929e95937287fa37d129b756746"},
		{16, "070a16b46b4d4144f79bdd9dd04a287c"},
		{40, "dfa66747de9ae63030ca32611497c827"},
		{64, "51f0bebf7e3b9d92fc49741779363cfe"},
	} {
		if got := cmacHex(h, string(msg[:tc.n])); got != tc.want {
			t.Errorf("AES-CMAC of the first %d bytes = %s, want %s", tc.n, got, tc.want)
		}
	}
}

// TestCMACMatchesCBCMAC checks the streaming CMAC against the construction as
// SP 800-38B writes it, built from crypto/cipher's CBC mode, for every
// message length up to 5 blocks and every split into the three writes Hash
// makes.
func TestCMACMatchesCBCMAC(t *testing.T) {
	key := mustHex(t, "000102030405060708090a0b0c0d0e0f")
	h, err := newCMACHasher(key)
	if err != nil {
		t.Fatal(err)
	}
	block, _ := aes.NewCipher(key)
	msg := make([]byte, 80)
	for i := range msg {
		msg[i] = byte(i*7 + 3)
	}
	for n := 0; n <= len(msg); n++ {
		want := cbcMAC(block, msg[:n])
		if got := cmacHex(h, string(msg[:n])); got != want {
			t.Fatalf("length %d: streaming CMAC %s, CBC-MAC construction %s", n, got, want)
		}
		for i := 0; i <= n; i++ {
			m := cmac{h: h, x: new([aes.BlockSize]byte)}
			m.writeString(string(msg[:i]))
			m.writeString(string(msg[i:n]))
			m.finish()
			if got := hex.EncodeToString(m.x[:]); got != want {
				t.Fatalf("length %d split at %d: %s, want %s", n, i, got, want)
			}
		}
	}
}

// The user hash of fixed inputs under fixed keys, forever: a change here
// changes every Labels.UserHash (and the dbwrap tokens and cache entries
// keyed by it) across a deployment. The values were checked against an
// independent implementation (HKDF and CMAC of OpenSSL, through Python's
// cryptography package).
func TestUserHashGoldenVectors(t *testing.T) {
	for _, tc := range []struct {
		key, tenant, user, want string
	}{
		{"0123456789abcdef0123456789abcdef", "acme", "alice", "422d7046f11b36a616d677b36c4d708e"},
		{"0123456789abcdef0123456789abcdef", "", "alice", "3c241b3832778748e718363f2437063d"},
		{"0123456789abcdef", "globex", "user-12345", "30b6b2c716cee00734aac082e7872119"},
		{"benchmark-key-0123456789abcdef", "acme.eu-west:prod_1", strings.Repeat("ü", 40), "167e0d3131e010bc208b7570060cc062"},
		{"benchmark-key-0123456789abcdef", "t", "0123456789abcd", "d2bb28a9cbb088419699a4b935980b36"}, // exactly one block
	} {
		h, err := NewUserHasher([]byte(tc.key))
		if err != nil {
			t.Fatal(err)
		}
		if got := h.Hash(tc.tenant, tc.user); got != tc.want {
			t.Errorf("key %q: Hash(%q, %q) = %s, want %s", tc.key, tc.tenant, tc.user, got, tc.want)
		}
	}
}

// TestUserHashMatchesSpec recomputes the documented construction from the
// standard library: HKDF-SHA256 for the key, then CBC-MAC with the CMAC
// subkeys over len(tenant) || tenant || user.
func TestUserHashMatchesSpec(t *testing.T) {
	key := []byte("0123456789abcdef0123456789abcdef")
	h, err := NewUserHasher(key)
	if err != nil {
		t.Fatal(err)
	}
	k, err := hkdf.Key(sha256.New, key, nil, "canary tenant.UserHasher v2 AES-128-CMAC", 16)
	if err != nil {
		t.Fatal(err)
	}
	block, _ := aes.NewCipher(k)
	want := cbcMAC(block, append([]byte{4}, "acmealice"...))
	if got := h.Hash("acme", "alice"); got != want {
		t.Fatalf("Hash = %s, want %s", got, want)
	}
	if got := h.Hash("acme", "alice"); got != want {
		t.Fatalf("second Hash = %s, want %s (state not reset between calls)", got, want)
	}
}

// cmacHex is the AES-CMAC of msg under h's key, in hex.
func cmacHex(h *UserHasher, msg string) string {
	m := cmac{h: h, x: new([aes.BlockSize]byte)}
	m.writeString(msg)
	m.finish()
	return hex.EncodeToString(m.x[:])
}

// cbcMAC is AES-CMAC as SP 800-38B defines it, written independently of the
// streaming code: subkeys by big-integer doubling, then the last block of
// the CBC encryption (zero IV) of the message whose last block is xored with
// K1 (complete) or padded and xored with K2.
func cbcMAC(block cipher.Block, msg []byte) string {
	var l [16]byte
	block.Encrypt(l[:], l[:])
	dbl := func(b []byte) []byte {
		v := new(big.Int).Lsh(new(big.Int).SetBytes(b), 1)
		if v.BitLen() > 128 {
			v.Xor(v, new(big.Int).Lsh(big.NewInt(1), 128))
			v.Xor(v, big.NewInt(0x87))
		}
		return v.FillBytes(make([]byte, 16))
	}
	k1 := dbl(l[:])
	k2 := dbl(k1)
	m := append([]byte(nil), msg...)
	sub := k1
	if len(m) == 0 || len(m)%16 != 0 {
		m = append(m, 0x80)
		for len(m)%16 != 0 {
			m = append(m, 0)
		}
		sub = k2
	}
	last := m[len(m)-16:]
	for i := range last {
		last[i] ^= sub[i]
	}
	out := make([]byte, len(m))
	cipher.NewCBCEncrypter(block, make([]byte, 16)).CryptBlocks(out, m)
	return hex.EncodeToString(out[len(out)-16:])
}

func mustHex(t *testing.T, s string) []byte {
	t.Helper()
	b, err := hex.DecodeString(s)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestUserHashProperties(t *testing.T) {
	a, _ := NewUserHasher([]byte("key-one-key-one-key-one"))
	b, _ := NewUserHasher([]byte("key-one-key-one-key-one"))
	c, _ := NewUserHasher([]byte("key-two-key-two-key-two"))
	x := a.Hash("acme", "alice")
	if len(x) != 32 || strings.Trim(x, "0123456789abcdef") != "" {
		t.Fatalf("hash %q is not 32 lowercase hex digits", x)
	}
	if strings.Contains(x, "alice") {
		t.Fatal("hash contains the raw user id")
	}
	if y := b.Hash("acme", "alice"); y != x {
		t.Errorf("hashers with the same key disagree: %s vs %s", x, y)
	}
	if y := c.Hash("acme", "alice"); y == x {
		t.Error("hashers with different keys agree: the key does not matter")
	}
	if y := a.Hash("acm", "ealice"); y == x {
		t.Error("tenant/user boundary is ambiguous: (acm, ealice) == (acme, alice)")
	}
	if y := a.Hash("other", "alice"); y == x {
		t.Error("the same user in another tenant has the same hash")
	}
	if a.Hash("acme", "") != "" {
		t.Error("an empty user must hash to \"\"")
	}
}

func TestNewUserHasherRejectsShortKey(t *testing.T) {
	if _, err := NewUserHasher([]byte("short")); err == nil {
		t.Fatal("a 5-byte key was accepted")
	}
}

func TestRandomUserHashersDiffer(t *testing.T) {
	if NewRandomUserHasher().Hash("t", "u") == NewRandomUserHasher().Hash("t", "u") {
		t.Fatal("two random hashers agree")
	}
}

func TestUserHashConcurrent(t *testing.T) {
	h := NewRandomUserHasher()
	want := h.Hash("acme", "alice")
	var wg sync.WaitGroup
	for i := 0; i < 8; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := 0; j < 500; j++ {
				if got := h.Hash("acme", "alice"); got != want {
					t.Errorf("concurrent Hash = %s, want %s", got, want)
					return
				}
			}
		}()
	}
	wg.Wait()
}

// TestUserHashAllocatesOnce: the CBC state and the hex digits the result
// shares are one allocation.
func TestUserHashAllocatesOnce(t *testing.T) {
	if raceEnabled {
		t.Skip("allocation counts are meaningless under the race detector (make test runs this without it)")
	}
	h := NewRandomUserHasher()
	h.Hash("acme", "warm-up")
	if n := testing.AllocsPerRun(200, func() { h.Hash("acme", "alice") }); n > 1 {
		t.Fatalf("Hash allocates %v times per call, want at most 1", n)
	}
}

func BenchmarkUserHash(b *testing.B) {
	h := NewRandomUserHasher()
	b.ReportAllocs()
	for b.Loop() {
		h.Hash("acme", "user-12345")
	}
}
