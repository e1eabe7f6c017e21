package fallback

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/redis/go-redis/v9"
)

// redisCache is a Cache in Redis: one string per entry, in a compact binary
// encoding, expiring after ttl, and two sorted sets of entry keys by store
// time (one per partition, one for the whole cache) that bound how many
// entries a tenant, and the cache, hold.
type redisCache struct {
	client                 *redis.Client
	ttl                    time.Duration
	prefix                 string
	maxKeys, maxTenantKeys int64
}

var _ Cache = (*redisCache)(nil)

// Defaults of [RedisCacheConfig].
const (
	DefaultRedisMaxKeys       = 50_000
	DefaultRedisMaxTenantKeys = 1_000
)

// RedisCacheConfig configures [NewRedisCacheWith].
type RedisCacheConfig struct {
	// Client is the Redis client (required); the cache does not close it.
	// A single Redis server (or primary): the store script touches keys of
	// several partitions.
	Client *redis.Client
	// TTL is how long an entry is kept: how stale a served answer may be.
	// At least a millisecond (required).
	TTL time.Duration
	// Prefix is prepended to every key the cache writes (entries and
	// indexes), e.g. to share a Redis between environments. Default: none
	// (keys start with "canary:fallback:").
	Prefix string
	// MaxKeys bounds the number of entries of the whole cache; beyond it
	// the oldest stored entries are deleted. Default:
	// [DefaultRedisMaxKeys].
	MaxKeys int64
	// MaxTenantKeys bounds the number of entries of one tenant of one
	// dependency; beyond it that tenant's oldest entries are deleted, so
	// that a tenant (or a client inventing tenant ids) never takes more.
	// Default: [DefaultRedisMaxTenantKeys], at most MaxKeys.
	MaxTenantKeys int64
}

// NewRedisCache returns a Cache stored in Redis through client, whose
// entries expire ttl after they were stored, with at most
// [DefaultRedisMaxKeys] entries in all and [DefaultRedisMaxTenantKeys] per
// tenant of a dependency (see [NewRedisCacheWith] to change them). Several
// processes sharing one Redis share the answers; the keys (prefix
// "canary:fallback:") include the dependency name and tenant, see [Cache].
// client must not be nil and ttl must be at least a millisecond.
//
// Each Set runs one Lua script: it stores the entry, indexes it, deletes the
// oldest entries beyond the tenant's and the cache's bounds, and removes up to
// 64 expired keys from the indexes, atomically. The memory it takes is at most
// about MaxKeys × (Config.MaxCacheBodyBytes + headers) plus the indexes; keep a
// Redis maxmemory policy as the last resort.
//
// It is safe for concurrent use. The client is not closed by the cache.
func NewRedisCache(client *redis.Client, ttl time.Duration) (Cache, error) {
	return NewRedisCacheWith(RedisCacheConfig{Client: client, TTL: ttl})
}

// NewRedisCacheWith returns a Cache stored in Redis configured by c; see
// [NewRedisCache] and [RedisCacheConfig]. Errors name the field.
func NewRedisCacheWith(c RedisCacheConfig) (Cache, error) {
	if c.Client == nil {
		return nil, errors.New("fallback: RedisCacheConfig.Client: nil")
	}
	if c.TTL < time.Millisecond {
		return nil, fmt.Errorf("fallback: RedisCacheConfig.TTL: %v is shorter than 1ms", c.TTL)
	}
	switch {
	case c.MaxKeys < 0:
		return nil, fmt.Errorf("fallback: RedisCacheConfig.MaxKeys: %d is negative", c.MaxKeys)
	case c.MaxKeys == 0:
		c.MaxKeys = DefaultRedisMaxKeys
	}
	switch {
	case c.MaxTenantKeys < 0:
		return nil, fmt.Errorf("fallback: RedisCacheConfig.MaxTenantKeys: %d is negative", c.MaxTenantKeys)
	case c.MaxTenantKeys == 0:
		c.MaxTenantKeys = DefaultRedisMaxTenantKeys
	}
	return &redisCache{client: c.Client, ttl: c.TTL, prefix: c.Prefix,
		maxKeys: c.MaxKeys, maxTenantKeys: min(c.MaxTenantKeys, c.MaxKeys)}, nil
}

// Get reads and decodes the entry under key.
func (c *redisCache) Get(ctx context.Context, key string) (*Entry, bool, error) {
	b, err := c.client.Get(ctx, c.prefix+key).Bytes()
	if errors.Is(err, redis.Nil) {
		return nil, false, nil
	}
	if err != nil {
		return nil, false, fmt.Errorf("fallback: redis cache get: %w", err)
	}
	e, err := decodeEntry(b)
	if err != nil {
		return nil, false, fmt.Errorf("fallback: redis cache key %s: %w", key, err)
	}
	return e, true, nil
}

// Index keys, after the cache's prefix: the whole cache's sorted set, and
// each partition's (followed by the partition).
const (
	redisIndexAll       = "canary:fallback:idx"
	redisIndexPartition = "canary:fallback:idx:"
)

// storeScript stores an entry and enforces the bounds.
//
// KEYS[1] the entry's Redis key, KEYS[2] its partition's index, KEYS[3] the
// whole cache's index. ARGV: 1 the entry's key (index member, without the
// prefix), 2 the encoded entry, 3 TTL ms, 4 now ms, 5 max keys per
// partition, 6 max keys, 7 the prefix. Members of the indexes are keys
// without the prefix; a member's partition index is derived from it as
// keyPartition does.
var storeScript = redis.NewScript(`
local prefix = ARGV[7]
local function pidx(m)
  local p = string.match(m, '^canary:fallback:v2:([^:]+):')
  return prefix .. 'canary:fallback:idx:' .. (p or '-')
end
local function evict(m)
  redis.call('DEL', prefix .. m)
  redis.call('ZREM', KEYS[3], m)
  redis.call('ZREM', pidx(m), m)
end
local now, ttl = tonumber(ARGV[4]), tonumber(ARGV[3])
for _, m in ipairs(redis.call('ZRANGEBYSCORE', KEYS[3], '-inf', now - ttl, 'LIMIT', 0, 64)) do
  evict(m)
end
redis.call('SET', KEYS[1], ARGV[2], 'PX', ttl)
redis.call('ZADD', KEYS[2], now, ARGV[1])
redis.call('ZADD', KEYS[3], now, ARGV[1])
-- Evict the n oldest of an index, never the entry just stored: entries
-- stored in the same millisecond tie on the score and sort by member.
local function evictOldest(idx, n)
  if n <= 0 then return end
  for _, m in ipairs(redis.call('ZRANGE', idx, 0, n)) do
    if n > 0 and m ~= ARGV[1] then
      evict(m)
      n = n - 1
    end
  end
end
evictOldest(KEYS[2], redis.call('ZCARD', KEYS[2]) - tonumber(ARGV[5]))
evictOldest(KEYS[3], redis.call('ZCARD', KEYS[3]) - tonumber(ARGV[6]))
redis.call('PEXPIRE', KEYS[2], ttl)
return 0
`)

// Set encodes e, stores it under key with the cache's TTL and deletes the
// oldest entries beyond the bounds, in one script.
func (c *redisCache) Set(ctx context.Context, key string, e *Entry) error {
	keys := []string{c.prefix + key, c.prefix + redisIndexPartition + keyPartition(key), c.prefix + redisIndexAll}
	err := storeScript.Run(ctx, c.client, keys, key, encodeEntry(e), c.ttl.Milliseconds(),
		time.Now().UnixMilli(), c.maxTenantKeys, c.maxKeys, c.prefix).Err()
	if err != nil {
		return fmt.Errorf("fallback: redis cache set: %w", err)
	}
	return nil
}

// entryFormat is the first byte of an encoded entry.
const entryFormat = 1

// encodeEntry encodes e as: format byte, status (uvarint), stored time (unix
// nanoseconds, varint), header count, then per header key and value count,
// key and values as length-prefixed strings, then the body.
func encodeEntry(e *Entry) []byte {
	n := 1 + 3*binary.MaxVarintLen64 + len(e.Body)
	for k, vs := range e.Header {
		n += len(k) + 2*binary.MaxVarintLen64
		for _, v := range vs {
			n += len(v) + binary.MaxVarintLen64
		}
	}
	b := make([]byte, 0, n)
	b = append(b, entryFormat)
	b = binary.AppendUvarint(b, uint64(e.Status))
	b = binary.AppendVarint(b, e.Stored.UnixNano())
	b = binary.AppendUvarint(b, uint64(len(e.Header)))
	for k, vs := range e.Header {
		b = appendString(b, k)
		b = binary.AppendUvarint(b, uint64(len(vs)))
		for _, v := range vs {
			b = appendString(b, v)
		}
	}
	return append(b, e.Body...)
}

func appendString(b []byte, s string) []byte {
	b = binary.AppendUvarint(b, uint64(len(s)))
	return append(b, s...)
}

// decodeEntry decodes what encodeEntry produced; any other input is an
// ErrCacheEntry.
func decodeEntry(b []byte) (*Entry, error) {
	d := decoder{b: b}
	if f := d.byte(); f != entryFormat {
		return nil, fmt.Errorf("%w: format %d", ErrCacheEntry, f)
	}
	status := d.uvarint()
	stored := d.varint()
	count := d.uvarint()
	if d.err != nil || status < 100 || status > 999 || count > uint64(len(d.b)) {
		return nil, fmt.Errorf("%w: bad header", ErrCacheEntry)
	}
	h := make(http.Header, count)
	for range count {
		k := d.string()
		nv := d.uvarint()
		if d.err != nil || nv > uint64(len(d.b)) {
			return nil, fmt.Errorf("%w: bad header field", ErrCacheEntry)
		}
		vs := make([]string, 0, nv)
		for range nv {
			vs = append(vs, d.string())
		}
		if d.err != nil {
			return nil, fmt.Errorf("%w: bad header value", ErrCacheEntry)
		}
		h[k] = vs
	}
	return &Entry{
		Status: int(status),
		Header: h,
		Body:   d.b,
		Stored: time.Unix(0, stored),
	}, nil
}

type decoder struct {
	b   []byte
	err error
}

var errShort = errors.New("short")

func (d *decoder) byte() byte {
	if len(d.b) == 0 {
		d.err = errShort
		return 0
	}
	c := d.b[0]
	d.b = d.b[1:]
	return c
}

func (d *decoder) uvarint() uint64 {
	v, n := binary.Uvarint(d.b)
	if n <= 0 {
		d.err = errShort
		return 0
	}
	d.b = d.b[n:]
	return v
}

func (d *decoder) varint() int64 {
	v, n := binary.Varint(d.b)
	if n <= 0 {
		d.err = errShort
		return 0
	}
	d.b = d.b[n:]
	return v
}

func (d *decoder) string() string {
	n := d.uvarint()
	if d.err != nil || n > uint64(len(d.b)) {
		d.err = errShort
		return ""
	}
	s := string(d.b[:n])
	d.b = d.b[n:]
	return s
}
