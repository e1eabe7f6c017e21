package tenant

import (
	"crypto/hkdf"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"math/bits"
	"strings"
	"sync"
	"testing"
)

// The reference implementation's SipHash-2-4-128 vectors (vectors_sip128 of
// github.com/veorq/SipHash: key 00..0f, message 00..n-1): they pin the
// SipHash under the user hash.
func TestSipHashReferenceVectors(t *testing.T) {
	h := newSipHasher(mustHex(t, "000102030405060708090a0b0c0d0e0f"))
	msg := make([]byte, 64)
	for i := range msg {
		msg[i] = byte(i)
	}
	for _, tc := range []struct {
		n    int
		want string
	}{
		{0, "a3817f04ba25a8e66df67214c7550293"},
		{1, "da87c1d86b99af44347659119b22fc45"},
		{7, "a1f1ebbed8dbc153c0b84aa61ff08239"},
		{8, "3b62a9ba6258f5610f83e264f31497b4"},
		{15, "5493e99933b0a8117e08ec0f97cfc3d9"},
		{16, "6ee2a4ca67b054bbfd3315bf85230577"},
		{63, "5150d1772f50834a503e069a973fbd7c"},
	} {
		if got := sipHex(h, string(msg[:tc.n])); got != tc.want {
			t.Errorf("SipHash-2-4-128 of the first %d bytes = %s, want %s", tc.n, got, tc.want)
		}
		if got := sipOneShot(h.k0, h.k1, msg[:tc.n]); got != tc.want {
			t.Errorf("test's one-shot SipHash of the first %d bytes = %s, want %s", tc.n, got, tc.want)
		}
	}
}

// TestSipHashStreamingMatchesOneShot checks the streaming SipHash against a
// one-shot one written from the paper, for every message length up to 40
// bytes and every split into the three writes Hash makes.
func TestSipHashStreamingMatchesOneShot(t *testing.T) {
	h := newSipHasher(mustHex(t, "0f0e0d0c0b0a09080706050403020100"))
	msg := make([]byte, 40)
	for i := range msg {
		msg[i] = byte(i*7 + 3)
	}
	for n := 1; n <= len(msg); n++ {
		want := sipOneShot(h.k0, h.k1, msg[:n])
		for i := 1; i <= n; i++ {
			for j := i; j <= n; j++ {
				s := h.start()
				s.writeByte(msg[0])
				s.writeString(string(msg[1:i]))
				s.writeString(string(msg[i:j]))
				s.writeString(string(msg[j:n]))
				lo, hi := s.sum128()
				var out [16]byte
				binary.LittleEndian.PutUint64(out[:8], lo)
				binary.LittleEndian.PutUint64(out[8:], hi)
				if got := hex.EncodeToString(out[:]); got != want {
					t.Fatalf("length %d split at %d, %d: %s, want %s", n, i, j, got, want)
				}
			}
		}
	}
}

// The user hash of fixed inputs under fixed keys, forever: a change here
// changes every Labels.UserHash (and the dbwrap tokens and cache entries
// keyed by it) across a deployment. The values were checked against an
// independent implementation (Python: HKDF from hmac/hashlib, SipHash
// written separately and checked against the reference vectors).
func TestUserHashGoldenVectors(t *testing.T) {
	for _, tc := range []struct {
		key, tenant, user, want string
	}{
		{"0123456789abcdef0123456789abcdef", "acme", "alice", "c20fc606c10bb353f245031104c55ec6"},
		{"0123456789abcdef0123456789abcdef", "", "alice", "3db206f3973569376d8f30d1361ff74f"},
		{"0123456789abcdef", "globex", "user-12345", "70cb5507a552cd295b63dab79c9f3d75"},
		{"benchmark-key-0123456789abcdef", "acme.eu-west:prod_1", strings.Repeat("ü", 40), "4fb86985d5422a57b5aa62897f1f40df"},
		{"benchmark-key-0123456789abcdef", "t", "012345", "6a6afc8e295d53e87840a3db0026b70d"}, // exactly one word
	} {
		h, err := NewUserHasher([]byte(tc.key))
		if err != nil {
			t.Fatal(err)
		}
		if got := h.Hash(tc.tenant, tc.user); got != tc.want {
			t.Errorf("key %q: Hash(%q, %q) = %s, want %s", tc.key, tc.tenant, tc.user, got, tc.want)
		}
		var buf [UserHashLen]byte
		if got := h.HashInto(&buf, tc.tenant, tc.user); got != tc.want {
			t.Errorf("key %q: HashInto(%q, %q) = %s, want %s", tc.key, tc.tenant, tc.user, got, tc.want)
		}
	}
}

// TestUserHashMatchesSpec recomputes the documented construction from the
// standard library and the test's one-shot SipHash: HKDF-SHA256 for the
// key, then SipHash-2-4-128 over len(tenant) || tenant || user.
func TestUserHashMatchesSpec(t *testing.T) {
	key := []byte("0123456789abcdef0123456789abcdef")
	h, err := NewUserHasher(key)
	if err != nil {
		t.Fatal(err)
	}
	k, err := hkdf.Key(sha256.New, key, nil, "canary tenant.UserHasher v3 SipHash-2-4-128", 16)
	if err != nil {
		t.Fatal(err)
	}
	want := sipOneShot(binary.LittleEndian.Uint64(k[:8]), binary.LittleEndian.Uint64(k[8:]),
		append([]byte{4}, "acmealice"...))
	if got := h.Hash("acme", "alice"); got != want {
		t.Fatalf("Hash = %s, want %s", got, want)
	}
	if got := h.Hash("acme", "alice"); got != want {
		t.Fatalf("second Hash = %s, want %s (state not reset between calls)", got, want)
	}
}

// sipHex is the SipHash-2-4-128 of msg under h's key, in hex.
func sipHex(h *UserHasher, msg string) string {
	s := h.start()
	s.writeString(msg)
	lo, hi := s.sum128()
	var out [16]byte
	binary.LittleEndian.PutUint64(out[:8], lo)
	binary.LittleEndian.PutUint64(out[8:], hi)
	return hex.EncodeToString(out[:])
}

// sipOneShot is SipHash-2-4 with the 128-bit output as the paper and the
// reference implementation define it, written independently of the
// streaming code: the whole message padded with zeros and its length byte,
// compressed word by word.
func sipOneShot(k0, k1 uint64, msg []byte) string {
	v := [4]uint64{k0 ^ 0x736f6d6570736575, k1 ^ 0x646f72616e646f6d ^ 0xee, k0 ^ 0x6c7967656e657261, k1 ^ 0x7465646279746573}
	rnd := func() {
		v[0] += v[1]
		v[1] = bits.RotateLeft64(v[1], 13) ^ v[0]
		v[0] = bits.RotateLeft64(v[0], 32)
		v[2] += v[3]
		v[3] = bits.RotateLeft64(v[3], 16) ^ v[2]
		v[0] += v[3]
		v[3] = bits.RotateLeft64(v[3], 21) ^ v[0]
		v[2] += v[1]
		v[1] = bits.RotateLeft64(v[1], 17) ^ v[2]
		v[2] = bits.RotateLeft64(v[2], 32)
	}
	m := append([]byte(nil), msg...)
	for len(m)%8 != 7 {
		m = append(m, 0)
	}
	m = append(m, byte(len(msg)))
	for i := 0; i < len(m); i += 8 {
		w := binary.LittleEndian.Uint64(m[i:])
		v[3] ^= w
		rnd()
		rnd()
		v[0] ^= w
	}
	var out []byte
	for _, x := range []uint64{0xee, 0xdd} {
		if x == 0xee {
			v[2] ^= x
		} else {
			v[1] ^= x
		}
		for range 4 {
			rnd()
		}
		out = binary.LittleEndian.AppendUint64(out, v[0]^v[1]^v[2]^v[3])
	}
	return hex.EncodeToString(out)
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

// TestUserHashAllocatesOnce: Hash allocates the string's 32 bytes and
// nothing else; HashInto allocates nothing.
func TestUserHashAllocatesOnce(t *testing.T) {
	if raceEnabled {
		t.Skip("allocation counts are meaningless under the race detector (make test runs this without it)")
	}
	h := NewRandomUserHasher()
	h.Hash("acme", "warm-up")
	if n := testing.AllocsPerRun(200, func() { h.Hash("acme", "alice") }); n > 1 {
		t.Fatalf("Hash allocates %v times per call, want at most 1", n)
	}
	var buf [UserHashLen]byte
	if n := testing.AllocsPerRun(200, func() { h.HashInto(&buf, "acme", "alice") }); n != 0 {
		t.Fatalf("HashInto allocates %v times per call, want 0", n)
	}
}

func BenchmarkUserHash(b *testing.B) {
	h := NewRandomUserHasher()
	b.ReportAllocs()
	for b.Loop() {
		sinkHash = h.Hash("acme", "user-12345")
	}
}

var sinkHash string

func BenchmarkUserHashInto(b *testing.B) {
	h := NewRandomUserHasher()
	var buf [UserHashLen]byte
	b.ReportAllocs()
	for b.Loop() {
		sinkHash = h.HashInto(&buf, "acme", "user-12345")
	}
}

// FuzzUserHash checks both paths of the hash (the stack buffer within the
// wire limits, streaming beyond them) against the test's one-shot SipHash
// of the documented message.
func FuzzUserHash(f *testing.F) {
	f.Add("acme", "alice")
	f.Add("", "x")
	f.Add(strings.Repeat("t", 64), strings.Repeat("ü", 200))
	h := newSipHasher([]byte("0123456789abcdef"))
	f.Fuzz(func(t *testing.T, tenant, user string) {
		if user == "" {
			if h.Hash(tenant, user) != "" {
				t.Fatal("empty user must hash to \"\"")
			}
			return
		}
		want := sipOneShot(h.k0, h.k1, append([]byte{byte(len(tenant))}, tenant+user...))
		if got := h.Hash(tenant, user); got != want {
			t.Fatalf("Hash(%q, %q) = %s, want %s", tenant, user, got, want)
		}
	})
}
