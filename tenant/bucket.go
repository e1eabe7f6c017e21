package tenant

import "math/bits"

// Buckets is the number of buckets: [Bucket] returns 0..Buckets-1, and a
// canary percentage p selects the buckets below p*100.
const Buckets = 10000

// BucketKey returns the bucketing key of a request: tenant + "/" + user when a
// user is known, the tenant alone when only a tenant is known, and ok=false
// when neither is. A user without a tenant is keyed as "/" + user.
func BucketKey(tenant, user string) (key string, ok bool) {
	switch {
	case user != "":
		return tenant + "/" + user, true
	case tenant != "":
		return tenant, true
	}
	return "", false
}

// Bucket returns the bucket (0..9999) of key under salt, compatible with
// flagd's fractional operator: h is MurmurHash3 x86 32-bit with seed 0 over
// the bytes of salt followed directly by the bytes of key, and the bucket is
// (uint64(h) * 10000) >> 32. docs/bucketing.md pins the vectors.
func Bucket(salt, key string) int {
	return bucketOfParts(salt, key, "") // with no user, the key is hashed as given
}

// BucketOf is [Bucket] over the bucketing key of tenant and user, without
// building the key string. It returns [NoBucket] when [BucketKey] has no key.
func BucketOf(salt, tenant, user string) int {
	if tenant == "" && user == "" {
		return NoBucket
	}
	return bucketOfParts(salt, tenant, user)
}

// bucketOfParts is the bucket of salt + tenant, followed by "/" + user when
// user is not "".
func bucketOfParts(salt, tenant, user string) int {
	// The usual key fits in a small buffer; zeroing a large one on every
	// call would cost more than the hash.
	switch n := len(salt) + len(tenant) + 1 + len(user); {
	case n <= 128:
		var buf [128]byte
		return bucketIn(buf[:0], salt, tenant, user)
	case n <= 512:
		var buf [512]byte
		return bucketIn(buf[:0], salt, tenant, user)
	default:
		return bucketIn(make([]byte, 0, n), salt, tenant, user)
	}
}

// bucketIn hashes salt, tenant and, when user is not "", "/" and user,
// appended to b.
func bucketIn(b []byte, salt, tenant, user string) int {
	b = append(b, salt...)
	b = append(b, tenant...)
	if user != "" {
		b = append(b, '/')
		b = append(b, user...)
	}
	return int((uint64(murmur3(b, 0)) * Buckets) >> 32)
}

// murmur3 is MurmurHash3 x86 32-bit (Austin Appleby's reference algorithm).
func murmur3(data []byte, seed uint32) uint32 {
	const (
		c1 = 0xcc9e2d51
		c2 = 0x1b873593
	)
	h := seed
	n := len(data)
	i := 0
	for ; i+4 <= n; i += 4 {
		k := uint32(data[i]) | uint32(data[i+1])<<8 | uint32(data[i+2])<<16 | uint32(data[i+3])<<24
		k *= c1
		k = bits.RotateLeft32(k, 15)
		k *= c2
		h ^= k
		h = bits.RotateLeft32(h, 13)
		h = h*5 + 0xe6546b64
	}
	var k uint32
	switch n - i {
	case 3:
		k ^= uint32(data[i+2]) << 16
		fallthrough
	case 2:
		k ^= uint32(data[i+1]) << 8
		fallthrough
	case 1:
		k ^= uint32(data[i])
		k *= c1
		k = bits.RotateLeft32(k, 15)
		k *= c2
		h ^= k
	}
	h ^= uint32(n)
	h ^= h >> 16
	h *= 0x85ebca6b
	h ^= h >> 13
	h *= 0xc2b2ae35
	h ^= h >> 16
	return h
}
