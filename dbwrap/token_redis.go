package dbwrap

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/redis/go-redis/v9"
)

// DefaultRedisTokenPrefix is the key prefix of NewRedisTokenStore.
const DefaultRedisTokenPrefix = "canary:dbwrap:token:"

// NewRedisTokenStore returns a TokenStore kept in Redis, so that every
// instance serving a user sends that user's reads to a server that has its
// last write. Keys are prefix + the user key (tenant and user hash); an empty
// prefix means DefaultRedisTokenPrefix. Each key holds the position as 16 hex
// digits with a TTL; Save raises it atomically (a Lua script) and refreshes
// the TTL, never lowering either. One Load per request (on its first read)
// and one Save per write are the only Redis calls.
//
// The store is safe for concurrent use; the client stays the caller's to
// close.
func NewRedisTokenStore(client redis.UniversalClient, prefix string) TokenStore {
	if prefix == "" {
		prefix = DefaultRedisTokenPrefix
	}
	return &redisTokens{client: client, prefix: prefix}
}

type redisTokens struct {
	client redis.UniversalClient
	prefix string
}

var _ TokenStore = (*redisTokens)(nil)

// raiseScript sets KEYS[1] to ARGV[1] when that is higher (fixed-width hex
// compares as text), and makes its TTL at least ARGV[2] ms.
var raiseScript = redis.NewScript(`
local cur = redis.call('GET', KEYS[1])
if (not cur) or cur < ARGV[1] then
  redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
else
  local ttl = redis.call('PTTL', KEYS[1])
  if ttl >= 0 and ttl < tonumber(ARGV[2]) then
    redis.call('PEXPIRE', KEYS[1], ARGV[2])
  end
end
return 1`)

func (r *redisTokens) Load(ctx context.Context, key string) (uint64, error) {
	v, err := r.client.Get(ctx, r.prefix+key).Result()
	if errors.Is(err, redis.Nil) {
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("dbwrap: redis token store: load: %w", err)
	}
	p, err := strconv.ParseUint(v, 16, 64)
	if err != nil {
		return 0, fmt.Errorf("dbwrap: redis token store: key %q holds %q: %w", r.prefix+key, v, err)
	}
	return p, nil
}

func (r *redisTokens) Save(ctx context.Context, key string, pos uint64, ttl time.Duration) error {
	ms := ttl.Milliseconds()
	if ms < 1 {
		ms = 1
	}
	val := fmt.Sprintf("%016x", pos)
	if err := raiseScript.Run(ctx, r.client, []string{r.prefix + key}, val, ms).Err(); err != nil {
		return fmt.Errorf("dbwrap: redis token store: save: %w", err)
	}
	return nil
}
