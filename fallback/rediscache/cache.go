package rediscache

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/reqcanary/canary/fallback"
)

// Cache is a [fallback.Cache] in Redis: one string per entry, in
// [fallback.EncodeEntry]'s encoding, expiring after the TTL, and two sorted
// sets of entry keys by store time (one per partition, that is per tenant of
// a dependency, and one for the whole cache) that bound how many entries a
// tenant, and the cache, hold. Make one with [New].
//
// It is safe for concurrent use. It does not close its client.
type Cache struct {
	client                 *redis.Client
	ttl                    time.Duration
	prefix                 string
	maxKeys, maxTenantKeys int64
}

var _ fallback.Cache = (*Cache)(nil)

// Defaults of [WithMaxKeys] and [WithMaxTenantKeys].
const (
	DefaultMaxKeys       = 50_000
	DefaultMaxTenantKeys = 1_000
)

// config holds what the options set.
type config struct {
	prefix                 string
	maxKeys, maxTenantKeys int64
}

// Option configures [New].
type Option interface{ apply(*config) }

type optionFunc func(*config)

func (f optionFunc) apply(c *config) { f(c) }

// WithPrefix prepends prefix to every key the cache writes (entries and
// indexes), e.g. to share a Redis between environments. Default: none (keys
// start with "canary:fallback:").
func WithPrefix(prefix string) Option {
	return optionFunc(func(c *config) { c.prefix = prefix })
}

// WithMaxKeys bounds the number of entries of the whole cache; beyond it the
// oldest stored entries are deleted. Default (and when n is 0):
// [DefaultMaxKeys]. A negative n is an error from [New].
func WithMaxKeys(n int64) Option {
	return optionFunc(func(c *config) { c.maxKeys = n })
}

// WithMaxTenantKeys bounds the number of entries of one tenant of one
// dependency; beyond it that tenant's oldest entries are deleted, so that a
// tenant (or a client inventing tenant ids) never takes more. Default (and
// when n is 0): [DefaultMaxTenantKeys]; at most the cache's bound
// ([WithMaxKeys]). A negative n is an error from [New].
func WithMaxTenantKeys(n int64) Option {
	return optionFunc(func(c *config) { c.maxTenantKeys = n })
}

// New returns a Cache stored in Redis through client, whose entries expire
// ttl after they were stored, with at most [DefaultMaxKeys] entries in all
// and [DefaultMaxTenantKeys] per tenant of a dependency unless options say
// otherwise; nil options are ignored. Several processes sharing one Redis
// share the answers; the keys (prefix "canary:fallback:") include the
// dependency name and tenant, see [fallback.Cache]. client must not be nil
// and ttl must be at least a millisecond. It does not contact Redis. Errors
// name the argument or option.
//
// client must reach a single Redis server (or primary), not a Redis Cluster:
// each Set runs one Lua script that touches keys of several partitions. The
// script stores the entry, indexes it, deletes the oldest entries beyond the
// tenant's and the cache's bounds, and removes up to 64 expired keys from the
// indexes, atomically. The memory it takes is at most about the
// [WithMaxKeys] bound × (fallback.Config.MaxCacheBodyBytes + headers) plus
// the indexes; keep a Redis maxmemory policy as the last resort.
func New(client *redis.Client, ttl time.Duration, opts ...Option) (*Cache, error) {
	if client == nil {
		return nil, errors.New("rediscache: client: nil")
	}
	if ttl < time.Millisecond {
		return nil, fmt.Errorf("rediscache: ttl: %v is shorter than 1ms", ttl)
	}
	var c config
	for _, o := range opts {
		if o != nil {
			o.apply(&c)
		}
	}
	switch {
	case c.maxKeys < 0:
		return nil, fmt.Errorf("rediscache: WithMaxKeys: %d is negative", c.maxKeys)
	case c.maxKeys == 0:
		c.maxKeys = DefaultMaxKeys
	}
	switch {
	case c.maxTenantKeys < 0:
		return nil, fmt.Errorf("rediscache: WithMaxTenantKeys: %d is negative", c.maxTenantKeys)
	case c.maxTenantKeys == 0:
		c.maxTenantKeys = DefaultMaxTenantKeys
	}
	return &Cache{client: client, ttl: ttl, prefix: c.prefix,
		maxKeys: c.maxKeys, maxTenantKeys: min(c.maxTenantKeys, c.maxKeys)}, nil
}

// Get reads and decodes the entry under key: ok=false when there is none or
// it expired, an error wrapping [fallback.ErrCacheEntry] when what is stored
// there cannot be decoded, or Redis's error.
func (c *Cache) Get(ctx context.Context, key string) (e *fallback.Entry, ok bool, err error) {
	b, err := c.client.Get(ctx, c.prefix+key).Bytes()
	if errors.Is(err, redis.Nil) {
		return nil, false, nil
	}
	if err != nil {
		return nil, false, fmt.Errorf("rediscache: get: %w", err)
	}
	e, err = fallback.DecodeEntry(b)
	if err != nil {
		return nil, false, fmt.Errorf("rediscache: key %s: %w", key, err)
	}
	return e, true, nil
}

// Index keys, after the cache's prefix: the whole cache's sorted set, and
// each partition's (followed by the partition).
const (
	indexAll       = "canary:fallback:idx"
	indexPartition = "canary:fallback:idx:"
)

// storeScript stores an entry and enforces the bounds. It holds no state of
// a cache: one for all.
//
// KEYS[1] the entry's Redis key, KEYS[2] its partition's index, KEYS[3] the
// whole cache's index. ARGV: 1 the entry's key (index member, without the
// prefix), 2 the encoded entry, 3 TTL ms, 4 now ms, 5 max keys per
// partition, 6 max keys, 7 the prefix. Members of the indexes are keys
// without the prefix; a member's partition index is derived from it as
// fallback.KeyPartition does, so the pattern follows fallback's key layout.
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
func (c *Cache) Set(ctx context.Context, key string, e *fallback.Entry) error {
	keys := []string{c.prefix + key, c.prefix + indexPartition + fallback.KeyPartition(key), c.prefix + indexAll}
	err := storeScript.Run(ctx, c.client, keys, key, fallback.EncodeEntry(e), c.ttl.Milliseconds(),
		time.Now().UnixMilli(), c.maxTenantKeys, c.maxKeys, c.prefix).Err()
	if err != nil {
		return fmt.Errorf("rediscache: set: %w", err)
	}
	return nil
}
