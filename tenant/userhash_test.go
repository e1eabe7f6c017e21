package tenant

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"strings"
	"sync"
	"testing"
)

func TestUserHashMatchesSpec(t *testing.T) {
	key := []byte("0123456789abcdef0123456789abcdef")
	h, err := NewUserHasher(key)
	if err != nil {
		t.Fatal(err)
	}
	mac := hmac.New(sha256.New, key)
	mac.Write([]byte{4})
	mac.Write([]byte("acmealice"))
	want := hex.EncodeToString(mac.Sum(nil)[:16])
	if got := h.Hash("acme", "alice"); got != want {
		t.Fatalf("Hash = %s, want %s", got, want)
	}
	if got := h.Hash("acme", "alice"); got != want {
		t.Fatalf("second Hash = %s, want %s (pooled state not reset)", got, want)
	}
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

func TestUserHashAllocatesOnlyTheString(t *testing.T) {
	if raceEnabled {
		t.Skip("sync.Pool drops items under the race detector")
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
