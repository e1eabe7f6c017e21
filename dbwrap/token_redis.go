package dbwrap

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/failsafe-go/failsafe-go/circuitbreaker"
	"github.com/redis/go-redis/v9"
)

// DefaultRedisTokenPrefix is the key prefix of NewRedisTokenStore.
const DefaultRedisTokenPrefix = "canary:dbwrap:token:"

// Defaults of the RedisTokenConfig fields, applied when a field is zero.
const (
	DefaultRedisTokenTimeout       = 100 * time.Millisecond
	DefaultRedisTokenBreakerErrors = 3
	DefaultRedisTokenBreakerDelay  = time.Second
	DefaultRedisTokenLocalEntries  = 10000
)

// ErrTokenStoreUnavailable is wrapped by the errors of a Redis token store
// call that did not reach Redis: the call timed out (RedisTokenConfig.Timeout),
// failed, or was not tried because the circuit breaker is open. The position
// of a Save that fails so is kept in the store's local copy and written back
// to Redis when it answers again.
var ErrTokenStoreUnavailable = errors.New("dbwrap: token store unavailable")

// RedisTokenConfig configures NewRedisTokenStoreConfig. The zero value of
// every field but Client is a safe default.
type RedisTokenConfig struct {
	// Client is the Redis client. Required. It stays the caller's to close.
	Client redis.UniversalClient

	// Prefix is the key prefix; empty means DefaultRedisTokenPrefix.
	Prefix string

	// Timeout bounds every Redis call of the store (one Load, one Save, one
	// write-back), whatever the client's own timeouts: a Load that Redis does
	// not answer in time is answered from the local copy. Zero means
	// DefaultRedisTokenTimeout (100 ms). When the client does not apply
	// context deadlines to its socket I/O (go-redis without
	// Options.ContextTimeoutEnabled, the default), the call runs on a
	// goroutine of its own that the caller stops waiting for; it ends within
	// the client's own read and write timeouts, and Close waits for it.
	Timeout time.Duration

	// BreakerErrors is the number of consecutive failed calls (errors and
	// timeouts) that open the circuit breaker. While it is open, no call is
	// sent to Redis: a Load is answered from the local copy in microseconds
	// and a Save is kept there for write-back. Zero means
	// DefaultRedisTokenBreakerErrors (3).
	BreakerErrors uint

	// BreakerDelay is how long the breaker stays open before it lets one
	// trial call through (half-open); a success closes it, a failure opens it
	// again. Zero means DefaultRedisTokenBreakerDelay (1 s).
	BreakerDelay time.Duration

	// LocalEntries bounds the local copy: the positions this instance saved
	// recently, each kept for its TTL. When full, the entry saved least
	// recently is dropped (if Redis did not have it yet, that user's
	// read-your-writes is lost on the other instances). Zero means
	// DefaultRedisTokenLocalEntries (10 000; about 1 MB); negative keeps no
	// local copy: during an outage, Load then fails and reads that need the
	// user's position go to the primary.
	LocalEntries int

	// StrictOutage makes a Load that cannot reach Redis and finds no local
	// entry fail (the connector then sends the read to the primary), since
	// the user may have written through another instance. Default false: it
	// returns 0 and the read may go to a replica; read-your-writes then holds
	// during the outage for the writes made through this instance only.
	StrictOutage bool
}

// NewRedisTokenStore returns a TokenStore kept in Redis, so that every
// instance serving a user sends that user's reads to a server that has its
// last write, with the defaults of RedisTokenConfig and the given key prefix
// (empty means DefaultRedisTokenPrefix). See NewRedisTokenStoreConfig.
func NewRedisTokenStore(client redis.UniversalClient, prefix string) TokenStore {
	s, err := NewRedisTokenStoreConfig(RedisTokenConfig{Client: client, Prefix: prefix})
	if err != nil {
		panic(err) // only a nil client gets here
	}
	return s
}

// NewRedisTokenStoreConfig returns a TokenStore kept in Redis. Keys are
// prefix + the user key (tenant and user hash). Each key holds the position
// as 16 hex digits with a TTL; Save raises it atomically (a Lua script) and
// refreshes the TTL, never lowering either (except that a known position
// replaces PositionUnknown). One Load per request (on its first read) and one
// Save per write are the only Redis calls.
//
// A Redis outage costs the callers little: every call is bounded by
// cfg.Timeout, a circuit breaker (failsafe-go) stops calling Redis after
// cfg.BreakerErrors consecutive failures, and every Save is written through
// to a bounded local copy, which answers Loads of this instance's users
// while Redis is away (merged with Redis's answer otherwise). The positions
// saved while Redis was away are written back by a background goroutine,
// started when the first one is missed and ended when none is left, once
// Redis answers again.
//
// The store is safe for concurrent use. It implements io.Closer: Close stops
// the write-back and waits for calls in flight; call it after closing the
// databases that use it. The client stays the caller's to close.
func NewRedisTokenStoreConfig(cfg RedisTokenConfig) (TokenStore, error) {
	if cfg.Client == nil {
		return nil, configError("RedisTokenConfig.Client", "is required")
	}
	r := &redisTokens{
		client: cfg.Client, prefix: cfg.Prefix, timeout: cfg.Timeout,
		strict: cfg.StrictOutage, stop: make(chan struct{}),
	}
	if r.prefix == "" {
		r.prefix = DefaultRedisTokenPrefix
	}
	switch {
	case r.timeout < 0:
		return nil, configError("RedisTokenConfig.Timeout", "must not be negative, got %v", r.timeout)
	case r.timeout == 0:
		r.timeout = DefaultRedisTokenTimeout
	}
	errs := cfg.BreakerErrors
	if errs == 0 {
		errs = DefaultRedisTokenBreakerErrors
	}
	delay := cfg.BreakerDelay
	switch {
	case delay < 0:
		return nil, configError("RedisTokenConfig.BreakerDelay", "must not be negative, got %v", delay)
	case delay == 0:
		delay = DefaultRedisTokenBreakerDelay
	}
	r.retry = max(10*time.Millisecond, delay/4)
	r.breaker = circuitbreaker.NewBuilder[any]().WithFailureThreshold(errs).WithSuccessThreshold(1).WithDelay(delay).Build()
	switch n := cfg.LocalEntries; {
	case n == 0:
		r.local = newLocalTokens(DefaultRedisTokenLocalEntries)
	case n > 0:
		r.local = newLocalTokens(n)
	}
	r.detach = !honoursContext(cfg.Client)
	return r, nil
}

type redisTokens struct {
	client  redis.UniversalClient
	prefix  string
	timeout time.Duration
	detach  bool // run calls on their own goroutine: the client ignores deadlines
	strict  bool
	retry   time.Duration // write-back interval
	breaker circuitbreaker.CircuitBreaker[any]
	local   *localTokens // nil: no local copy

	mu       sync.Mutex
	flushing bool // the write-back goroutine runs
	closed   bool
	isClosed atomic.Bool    // closed, read without the lock
	stop     chan struct{}  // closed by Close
	wg       sync.WaitGroup // the write-back goroutine and detached calls
}

var (
	_ TokenStore = (*redisTokens)(nil)
	_ io.Closer  = (*redisTokens)(nil)
)

// honoursContext reports whether the client bounds its socket I/O by the
// context's deadline.
func honoursContext(c redis.UniversalClient) bool {
	switch c := c.(type) {
	case *redis.Client:
		return c.Options().ContextTimeoutEnabled
	case *redis.ClusterClient:
		return c.Options().ContextTimeoutEnabled
	}
	return false
}

// raiseScript sets KEYS[1] to ARGV[1] when that is higher (fixed-width hex
// compares as text) or when KEYS[1] holds the unknown position and ARGV[1]
// is known, with a TTL of ARGV[2] ms; otherwise it makes the TTL at least
// ARGV[2] ms.
var raiseScript = redis.NewScript(`
local cur = redis.call('GET', KEYS[1])
if (not cur) or cur < ARGV[1] or (cur == 'ffffffffffffffff' and ARGV[1] ~= cur) then
  redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
else
  local ttl = redis.call('PTTL', KEYS[1])
  if ttl >= 0 and ttl < tonumber(ARGV[2]) then
    redis.call('PEXPIRE', KEYS[1], ARGV[2])
  end
end
return 1`)

// Load returns the highest of Redis's and the local copy's positions of the
// key. When Redis cannot be asked, it answers from the local copy (see
// RedisTokenConfig.StrictOutage for a key that is not there).
func (r *redisTokens) Load(ctx context.Context, key string) (uint64, error) {
	var local uint64
	var hasLocal bool
	if r.local != nil {
		local, hasLocal = r.local.load(key, time.Now())
	}
	var v string
	err := r.call(ctx, func(ctx context.Context) error {
		var err error
		v, err = r.client.Get(ctx, r.prefix+key).Result()
		if errors.Is(err, redis.Nil) {
			v, err = "", nil
		}
		return err
	})
	if err != nil {
		if hasLocal || (r.local != nil && !r.strict) {
			return local, nil
		}
		return 0, fmt.Errorf("dbwrap: redis token store: load: %w", err)
	}
	if v == "" {
		return local, nil
	}
	p, err := strconv.ParseUint(v, 16, 64)
	if err != nil {
		return local, fmt.Errorf("dbwrap: redis token store: key %q holds %q: %w", r.prefix+key, v, err)
	}
	return max(p, local), nil
}

// Save writes the position to the local copy, then to Redis; when Redis
// cannot be reached, the local copy keeps it for write-back and Save returns
// an error wrapping ErrTokenStoreUnavailable.
func (r *redisTokens) Save(ctx context.Context, key string, pos uint64, ttl time.Duration) error {
	var ver uint64
	if r.local != nil {
		// Send the merged position: a higher one this instance saved
		// earlier may not have reached Redis, and marking the entry clean
		// below must mean Redis has it.
		ver, pos = r.local.save(key, pos, ttl, time.Now())
	}
	if err := r.save(ctx, key, pos, ttl); err != nil {
		if r.local != nil {
			r.local.markDirty(key)
			r.startWriteBack()
		}
		return fmt.Errorf("dbwrap: redis token store: save: %w", err)
	}
	if r.local != nil {
		r.local.markClean(key, ver)
	}
	return nil
}

func (r *redisTokens) save(ctx context.Context, key string, pos uint64, ttl time.Duration) error {
	ms := max(ttl.Milliseconds(), 1)
	val := fmt.Sprintf("%016x", pos)
	return r.call(ctx, func(ctx context.Context) error {
		return raiseScript.Run(ctx, r.client, []string{r.prefix + key}, val, ms).Err()
	})
}

// errBreakerOpen is the cause of a call not tried: the breaker is open.
var errBreakerOpen = fmt.Errorf("%w: %w", ErrTokenStoreUnavailable, circuitbreaker.ErrOpen)

// call runs fn through the circuit breaker, bounded by the store's timeout.
// Errors that mean Redis did not answer wrap ErrTokenStoreUnavailable.
func (r *redisTokens) call(ctx context.Context, fn func(context.Context) error) error {
	if r.isClosed.Load() {
		return fmt.Errorf("%w: %w", ErrTokenStoreUnavailable, ErrClosed)
	}
	if err := ctx.Err(); err != nil {
		return err // the caller gave up before asking
	}
	if !r.breaker.TryAcquirePermit() {
		return errBreakerOpen
	}
	// The call runs on the store's own deadline, not the caller's, so the
	// breaker always records Redis's real answer (a caller's short deadline
	// neither closes it nor resets its run of failures).
	err := r.bounded(context.WithoutCancel(ctx), fn)
	if err == nil {
		r.breaker.RecordSuccess()
		return nil
	}
	r.breaker.RecordFailure()
	return fmt.Errorf("%w: %w", ErrTokenStoreUnavailable, err)
}

// bounded runs fn with the store's timeout. When the client ignores context
// deadlines on its sockets, fn runs on its own goroutine, which the caller
// stops waiting for at the deadline.
func (r *redisTokens) bounded(ctx context.Context, fn func(context.Context) error) error {
	ctx, cancel := context.WithTimeout(ctx, r.timeout)
	if !r.detach {
		defer cancel()
		return fn(ctx)
	}
	r.mu.Lock()
	if r.closed {
		r.mu.Unlock()
		cancel()
		return ErrClosed
	}
	r.wg.Add(1)
	r.mu.Unlock()
	done := make(chan error, 1)
	go func() {
		defer r.wg.Done()
		defer cancel()
		done <- fn(ctx)
	}()
	select {
	case err := <-done:
		return err
	case <-ctx.Done():
		// The goroutine cancels ctx right after it sends its answer: take
		// the answer when it is there, so a call that succeeded is not
		// reported as cancelled.
		select {
		case err := <-done:
			return err
		default:
			return ctx.Err()
		}
	}
}

// startWriteBack starts the write-back goroutine unless it runs (or the
// store is closed).
func (r *redisTokens) startWriteBack() {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.flushing || r.closed {
		return
	}
	r.flushing = true
	r.wg.Add(1)
	go r.writeBack()
}

// writeBack writes the positions Redis missed back to it, every retry
// interval while the breaker lets calls through, and ends when none is left
// or the store is closed.
func (r *redisTokens) writeBack() {
	defer r.wg.Done()
	t := time.NewTicker(r.retry)
	defer t.Stop()
	for {
		select {
		case <-r.stop:
			return
		case <-t.C:
		}
		r.flush()
		r.mu.Lock()
		if r.local.dirtyCount() == 0 {
			r.flushing = false
			r.mu.Unlock()
			return
		}
		r.mu.Unlock()
	}
}

// flush writes each pending position back, least recently saved first, and
// stops at the first failure.
func (r *redisTokens) flush() {
	for _, p := range r.local.pending(time.Now()) {
		select {
		case <-r.stop:
			return
		default:
		}
		if err := r.save(context.Background(), p.key, p.pos, p.ttl); err != nil {
			return
		}
		r.local.markClean(p.key, p.ver)
	}
}

// Close stops the write-back (positions not yet written back stay only in
// this process) and waits for the calls in flight. Later calls do not reach
// Redis. It is safe to call more than once.
func (r *redisTokens) Close() error {
	r.mu.Lock()
	if r.closed {
		r.mu.Unlock()
		return nil
	}
	r.closed = true
	r.isClosed.Store(true)
	close(r.stop)
	r.mu.Unlock()
	r.wg.Wait()
	return nil
}
