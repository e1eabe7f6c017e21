package redistoken

import (
	"context"
	"errors"
	"fmt"
	"io"
	"reflect"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/failsafe-go/failsafe-go/circuitbreaker"
	"github.com/redis/go-redis/v9"

	"github.com/reqcanary/canary/dbwrap"
)

// DefaultPrefix is the key prefix of a Store whose Config.Prefix (or New's
// prefix) is empty.
const DefaultPrefix = "canary:dbwrap:token:"

// Defaults of the Config fields, applied when a field is zero.
const (
	DefaultTimeout       = 100 * time.Millisecond
	DefaultBreakerErrors = 3
	DefaultBreakerDelay  = time.Second
	DefaultLocalEntries  = 10000
)

// ErrUnavailable is wrapped by the errors of a Store call that did not reach
// Redis: the call timed out (Config.Timeout), failed, or was not tried
// because the circuit breaker is open or the Store is closed. The position
// of a Save that fails so is kept in the Store's local copy and written back
// to Redis when it answers again.
var ErrUnavailable = errors.New("redistoken: token store unavailable")

// Config configures NewWithConfig. The zero value of every field but Client
// is a safe default.
type Config struct {
	// Client is the Redis client. Required. It stays the caller's to close.
	Client redis.UniversalClient

	// Prefix is the key prefix; empty means DefaultPrefix.
	Prefix string

	// Timeout bounds every Redis call of the store (one Load, one Save, one
	// write-back), whatever the client's own timeouts: a Load that Redis does
	// not answer in time is answered from the local copy. Zero means
	// DefaultTimeout (100 ms). When the client does not apply context
	// deadlines to its socket I/O (go-redis without
	// Options.ContextTimeoutEnabled, the default), the call runs on a
	// goroutine of its own that the caller stops waiting for; it ends within
	// the client's own read and write timeouts, and Close waits for it.
	Timeout time.Duration

	// BreakerErrors is the number of consecutive failed calls (errors and
	// timeouts) that open the circuit breaker. While it is open, no call is
	// sent to Redis: a Load is answered from the local copy in microseconds
	// and a Save is kept there for write-back. Zero means
	// DefaultBreakerErrors (3).
	BreakerErrors uint

	// BreakerDelay is how long the breaker stays open before it lets one
	// trial call through (half-open); a success closes it, a failure opens it
	// again. Zero means DefaultBreakerDelay (1 s).
	BreakerDelay time.Duration

	// LocalEntries bounds the local copy: the positions this instance saved
	// recently, each kept for its TTL. When full, the entry saved least
	// recently is dropped (if Redis did not have it yet, that user's
	// read-your-writes is lost on the other instances). Zero means
	// DefaultLocalEntries (10 000; about 1 MB); negative keeps no local
	// copy: during an outage, Load then fails and reads that need the user's
	// position go to the primary.
	LocalEntries int

	// StrictOutage makes a Load that cannot reach Redis and finds no local
	// entry fail (dbwrap then sends the read to the primary), since the user
	// may have written through another instance. Default false: it returns 0
	// and the read may go to a replica; read-your-writes then holds during
	// the outage for the writes made through this instance only.
	StrictOutage bool
}

// Store is a dbwrap.TokenStore kept in Redis, so that every instance
// serving a user sends that user's reads to a server that has its last
// write. Set it as dbwrap.Config.TokenStore.
//
// Keys are the prefix + dbwrap's user key (tenant and user hash). Each key
// holds the position as 16 hex digits with a TTL; Save raises it atomically
// (a Lua script) and refreshes the TTL, never lowering either (except that a
// known position replaces dbwrap.PositionUnknown, see dbwrap.MergePosition).
// One Load per request (on its first read) and one Save per write are the
// only Redis calls.
//
// A Redis outage costs the callers little: every call is bounded by
// Config.Timeout, a circuit breaker (failsafe-go) stops calling Redis after
// Config.BreakerErrors consecutive failures, and every Save is written
// through to a bounded local copy, which answers Loads of this instance's
// users while Redis is away (merged with Redis's answer otherwise). The
// positions saved while Redis was away are written back by a background
// goroutine, started when the first one is missed and ended when none is
// left, once Redis answers again.
//
// A Store is safe for concurrent use. Close it after closing the databases
// that use it: Close stops the write-back and waits for calls in flight.
// The client stays the caller's to close.
type Store struct {
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
	_ dbwrap.TokenStore = (*Store)(nil)
	_ io.Closer         = (*Store)(nil)
)

// New returns a Store on client with the defaults of Config and the given
// key prefix (empty means DefaultPrefix); see NewWithConfig for the other
// settings. A nil client is an error matching dbwrap.ErrInvalidConfig.
func New(client redis.UniversalClient, prefix string) (*Store, error) {
	return NewWithConfig(Config{Client: client, Prefix: prefix})
}

// NewWithConfig returns a Store configured by cfg. An invalid cfg is an
// error matching dbwrap.ErrInvalidConfig that names the field.
func NewWithConfig(cfg Config) (*Store, error) {
	if isNil(cfg.Client) {
		return nil, configError("Client", "is required")
	}
	s := &Store{
		client: cfg.Client, prefix: cfg.Prefix, timeout: cfg.Timeout,
		strict: cfg.StrictOutage, stop: make(chan struct{}),
	}
	if s.prefix == "" {
		s.prefix = DefaultPrefix
	}
	switch {
	case s.timeout < 0:
		return nil, configError("Timeout", "must not be negative, got %v", s.timeout)
	case s.timeout == 0:
		s.timeout = DefaultTimeout
	}
	errs := cfg.BreakerErrors
	if errs == 0 {
		errs = DefaultBreakerErrors
	}
	delay := cfg.BreakerDelay
	switch {
	case delay < 0:
		return nil, configError("BreakerDelay", "must not be negative, got %v", delay)
	case delay == 0:
		delay = DefaultBreakerDelay
	}
	s.retry = max(10*time.Millisecond, delay/4)
	s.breaker = circuitbreaker.NewBuilder[any]().WithFailureThreshold(errs).WithSuccessThreshold(1).WithDelay(delay).Build()
	switch n := cfg.LocalEntries; {
	case n == 0:
		s.local = newLocalTokens(DefaultLocalEntries)
	case n > 0:
		s.local = newLocalTokens(n)
	}
	s.detach = !honoursContext(cfg.Client)
	return s, nil
}

// configError is the error of an invalid Config field.
func configError(field, format string, args ...any) error {
	return fmt.Errorf("%w: redistoken.Config.%s: %s", dbwrap.ErrInvalidConfig, field, fmt.Sprintf(format, args...))
}

// isNil reports whether c is nil, or a nil pointer in the interface (a
// (*redis.Client)(nil) would otherwise fail at its first call).
func isNil(c redis.UniversalClient) bool {
	if c == nil {
		return true
	}
	v := reflect.ValueOf(c)
	return v.Kind() == reflect.Pointer && v.IsNil()
}

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
// key, or 0 when neither has one. When Redis cannot be asked, it answers
// from the local copy (see Config.StrictOutage for a key that is not there).
func (s *Store) Load(ctx context.Context, key string) (uint64, error) {
	var local uint64
	var hasLocal bool
	if s.local != nil {
		local, hasLocal = s.local.load(key, time.Now())
	}
	var v string
	err := s.call(ctx, func(ctx context.Context) error {
		var err error
		v, err = s.client.Get(ctx, s.prefix+key).Result()
		if errors.Is(err, redis.Nil) {
			v, err = "", nil
		}
		return err
	})
	if err != nil {
		if hasLocal || (s.local != nil && !s.strict) {
			return local, nil
		}
		return 0, fmt.Errorf("redistoken: load: %w", err)
	}
	if v == "" {
		return local, nil
	}
	p, err := strconv.ParseUint(v, 16, 64)
	if err != nil {
		return local, fmt.Errorf("redistoken: key %q holds %q: %w", s.prefix+key, v, err)
	}
	return max(p, local), nil
}

// Save raises the key's position to at least pos (dbwrap.MergePosition) for
// at least ttl, in the local copy, then in Redis. When Redis cannot be
// reached, the local copy keeps it for write-back and Save returns an error
// wrapping ErrUnavailable.
func (s *Store) Save(ctx context.Context, key string, pos uint64, ttl time.Duration) error {
	var ver uint64
	if s.local != nil {
		// Send the merged position: a higher one this instance saved
		// earlier may not have reached Redis, and marking the entry clean
		// below must mean Redis has it.
		ver, pos = s.local.save(key, pos, ttl, time.Now())
	}
	if err := s.save(ctx, key, pos, ttl); err != nil {
		if s.local != nil {
			s.local.markDirty(key)
			s.startWriteBack()
		}
		return fmt.Errorf("redistoken: save: %w", err)
	}
	if s.local != nil {
		s.local.markClean(key, ver)
	}
	return nil
}

func (s *Store) save(ctx context.Context, key string, pos uint64, ttl time.Duration) error {
	ms := max(ttl.Milliseconds(), 1)
	val := fmt.Sprintf("%016x", pos)
	return s.call(ctx, func(ctx context.Context) error {
		return raiseScript.Run(ctx, s.client, []string{s.prefix + key}, val, ms).Err()
	})
}

// errBreakerOpen is the cause of a call not tried: the breaker is open.
var errBreakerOpen = fmt.Errorf("%w: %w", ErrUnavailable, circuitbreaker.ErrOpen)

// call runs fn through the circuit breaker, bounded by the store's timeout.
// Errors that mean Redis did not answer wrap ErrUnavailable.
func (s *Store) call(ctx context.Context, fn func(context.Context) error) error {
	if s.isClosed.Load() {
		return fmt.Errorf("%w: %w", ErrUnavailable, dbwrap.ErrClosed)
	}
	if err := ctx.Err(); err != nil {
		return err // the caller gave up before asking
	}
	if !s.breaker.TryAcquirePermit() {
		return errBreakerOpen
	}
	// The call runs on the store's own deadline, not the caller's, so the
	// breaker always records Redis's real answer (a caller's short deadline
	// neither closes it nor resets its run of failures).
	err := s.bounded(context.WithoutCancel(ctx), fn)
	if err == nil {
		s.breaker.RecordSuccess()
		return nil
	}
	s.breaker.RecordFailure()
	return fmt.Errorf("%w: %w", ErrUnavailable, err)
}

// bounded runs fn with the store's timeout. When the client ignores context
// deadlines on its sockets, fn runs on its own goroutine, which the caller
// stops waiting for at the deadline.
func (s *Store) bounded(ctx context.Context, fn func(context.Context) error) error {
	ctx, cancel := context.WithTimeout(ctx, s.timeout)
	if !s.detach {
		defer cancel()
		return fn(ctx)
	}
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		cancel()
		return dbwrap.ErrClosed
	}
	s.wg.Add(1)
	s.mu.Unlock()
	done := make(chan error, 1)
	go func() {
		defer s.wg.Done()
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
func (s *Store) startWriteBack() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.flushing || s.closed {
		return
	}
	s.flushing = true
	s.wg.Add(1)
	go s.writeBack()
}

// writeBack writes the positions Redis missed back to it, every retry
// interval while the breaker lets calls through, and ends when none is left
// or the store is closed.
func (s *Store) writeBack() {
	defer s.wg.Done()
	t := time.NewTicker(s.retry)
	defer t.Stop()
	for {
		select {
		case <-s.stop:
			return
		case <-t.C:
		}
		s.flush()
		s.mu.Lock()
		if s.local.dirtyCount() == 0 {
			s.flushing = false
			s.mu.Unlock()
			return
		}
		s.mu.Unlock()
	}
}

// flush writes each pending position back, least recently saved first, and
// stops at the first failure.
func (s *Store) flush() {
	for _, p := range s.local.pending(time.Now()) {
		select {
		case <-s.stop:
			return
		default:
		}
		if err := s.save(context.Background(), p.key, p.pos, p.ttl); err != nil {
			return
		}
		s.local.markClean(p.key, p.ver)
	}
}

// Close stops the write-back (positions not yet written back stay only in
// this process) and waits for the calls in flight. Later calls do not reach
// Redis: their errors wrap ErrUnavailable and dbwrap.ErrClosed. It is safe
// to call more than once and always returns nil.
func (s *Store) Close() error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil
	}
	s.closed = true
	s.isClosed.Store(true)
	close(s.stop)
	s.mu.Unlock()
	s.wg.Wait()
	return nil
}
