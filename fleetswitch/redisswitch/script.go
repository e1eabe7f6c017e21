package redisswitch

import "github.com/redis/go-redis/v9"

// setScript writes a state and publishes it, atomically.
//
//	KEYS[1]  the state key
//	ARGV[1]  the channel
//	ARGV[2]  the state's JSON without its opening brace
//	ARGV[3]  "nx": write only when the key is missing (and otherwise return
//	         the state it holds)
//
// The version is Redis's clock in microseconds, raised above the version in
// the key when the clock is behind it, so versions only grow. It returns the
// state stored.
var setScript = redis.NewScript(`
local cur = redis.call('GET', KEYS[1])
if cur and ARGV[3] == 'nx' then
  return cur
end
local t = redis.call('TIME')
local seq = tonumber(t[1]) * 1000000 + tonumber(t[2])
if cur then
  local last = tonumber(string.match(cur, '^{"seq":(%d+)'))
  if last and last >= seq then
    seq = last + 1
  end
end
local v = string.format('{"seq":%d,%s', seq, ARGV[2])
redis.call('SET', KEYS[1], v)
redis.call('PUBLISH', ARGV[1], v)
return v
`)
