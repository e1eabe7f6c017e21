package tenant

import (
	"fmt"
	"strings"
	"testing"
)

// TestMurmur3ReferenceVectors pins the hash to published MurmurHash3 x86 32-bit
// vectors (seed 0), as computed by independent implementations.
func TestMurmur3ReferenceVectors(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want uint32
	}{
		{"", 0},
		{"a", 0x3c2569b2},
		{"abc", 0xb3dd93fa},
		{"hello", 0x248bfa47},
		{"Hello, world!", 0xc0363e43},
		{"The quick brown fox jumps over the lazy dog", 0x2e4ff723},
	} {
		if got := murmur3([]byte(tc.in), 0); got != tc.want {
			t.Errorf("murmur3(%q) = %#08x, want %#08x", tc.in, got, tc.want)
		}
	}
}

// TestBucketGoldenVectors pins the bucketing algorithm forever: these are the
// vectors of docs/bucketing.md. Changing any of them moves real users between
// cohorts; it must never happen.
func TestBucketGoldenVectors(t *testing.T) {
	for _, tc := range []struct {
		salt, tenant, user string
		key                string
		hash               uint32
		bucket             int
	}{
		{"checkout-v2", "acme", "alice", "acme/alice", 0x717aebaf, 4432},
		{"checkout-v2", "acme", "bob", "acme/bob", 0xdbffbb51, 8593},
		{"checkout-v2", "acme", "", "acme", 0xd4da6f14, 8314},
		{"checkout-v2", "bigbank", "u-42", "bigbank/u-42", 0x92b8df4c, 5731},
		{"checkout-v2", "", "anon-user", "/anon-user", 0x1c263c88, 1099},
		{"", "acme", "alice", "acme/alice", 0xe4d40c4d, 8938},
		// flagd's fractional hashes flag key + targeting key: a flag named
		// "headerColor" and the key "jon@company.com".
		{"headerColor", "", "", "jon@company.com", 0x804bfd07, 5011},
	} {
		name := fmt.Sprintf("%s|%s", tc.salt, tc.key)
		t.Run(name, func(t *testing.T) {
			if got := murmur3([]byte(tc.salt+tc.key), 0); got != tc.hash {
				t.Errorf("hash = %#08x, want %#08x", got, tc.hash)
			}
			if got := Bucket(tc.salt, tc.key); got != tc.bucket {
				t.Errorf("Bucket = %d, want %d", got, tc.bucket)
			}
			if tc.tenant == "" && tc.user == "" {
				return
			}
			key, ok := BucketKey(tc.tenant, tc.user)
			if !ok || key != tc.key {
				t.Errorf("BucketKey = %q, %v, want %q", key, ok, tc.key)
			}
			if got := BucketOf(tc.salt, tc.tenant, tc.user); got != tc.bucket {
				t.Errorf("BucketOf = %d, want %d", got, tc.bucket)
			}
		})
	}
}

func TestBucketNoKey(t *testing.T) {
	if _, ok := BucketKey("", ""); ok {
		t.Error("BucketKey with neither tenant nor user reported a key")
	}
	if got := BucketOf("salt", "", ""); got != NoBucket {
		t.Errorf("BucketOf with no key = %d, want NoBucket", got)
	}
}

func TestBucketLongInputsAgree(t *testing.T) {
	salt := string(make([]byte, 300))
	user := string(make([]byte, 300))
	key, _ := BucketKey("t", user)
	if a, b := Bucket(salt, key), BucketOf(salt, "t", user); a != b {
		t.Fatalf("Bucket %d and BucketOf %d disagree beyond the stack buffer", a, b)
	}
}

// TestBucketOfEveryBufferSize checks BucketOf against murmur3 over the
// concatenated key around the sizes where it changes buffers.
func TestBucketOfEveryBufferSize(t *testing.T) {
	for n := 100; n <= 600; n++ {
		salt, user := strings.Repeat("s", n/2), strings.Repeat("u", n-n/2)
		want := int((uint64(murmur3([]byte(salt+"acme/"+user), 0)) * Buckets) >> 32)
		if got := BucketOf(salt, "acme", user); got != want {
			t.Fatalf("key of %d bytes: BucketOf = %d, want %d", n+5, got, want)
		}
		if got := Bucket(salt, "acme/"+user); got != want {
			t.Fatalf("key of %d bytes: Bucket = %d, want %d", n+5, got, want)
		}
	}
	if got, want := Bucket("salt", ""), int((uint64(murmur3([]byte("salt"), 0))*Buckets)>>32); got != want {
		t.Fatalf("Bucket with an empty key = %d, want %d (the salt alone)", got, want)
	}
}

func TestBucketRange(t *testing.T) {
	for i := 0; i < 20000; i++ {
		b := BucketOf("s", "t", fmt.Sprint("user-", i))
		if b < 0 || b >= Buckets {
			t.Fatalf("bucket %d out of range", b)
		}
	}
}

func TestBucketOfDoesNotAllocate(t *testing.T) {
	n := testing.AllocsPerRun(100, func() { BucketOf("checkout-v2", "acme", "alice") })
	if n != 0 {
		t.Fatalf("BucketOf allocates %v times per call, want 0", n)
	}
}

func BenchmarkBucketOf(b *testing.B) {
	b.ReportAllocs()
	for b.Loop() {
		BucketOf("checkout-v2", "acme", "user-12345")
	}
}
