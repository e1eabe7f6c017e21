package redisswitch

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/reqcanary/canary/fleetswitch"
)

// Key returns the Redis key that holds the state of the fleet switch named
// prefix ([fleetswitch.DefaultPrefix] when empty): prefix + "kill-switch".
func Key(prefix string) string { return orDefault(prefix) + "kill-switch" }

// Channel returns the Redis channel on which the changes of the fleet switch
// named prefix ([fleetswitch.DefaultPrefix] when empty) are published:
// prefix + "kill-switch:changes".
func Channel(prefix string) string { return orDefault(prefix) + "kill-switch:changes" }

func orDefault(prefix string) string {
	if prefix == "" {
		return fleetswitch.DefaultPrefix
	}
	return prefix
}

var (
	_ fleetswitch.Backend = (*backend)(nil)
	_ fleetswitch.Switch  = (*redisSwitch)(nil)
)

// backend opens switches on one Redis client.
type backend struct{ client *redis.Client }

// New returns the Redis backend of the fleet switch, over client: give it
// to canary.WithFleetSwitch. The switches it opens use client's connections
// (one of them held for the subscription) and never close client. A nil
// client makes Open fail with an error matching
// [fleetswitch.ErrInvalidOption]. The backend is safe for concurrent use.
func New(client *redis.Client) fleetswitch.Backend { return &backend{client: client} }

// Open returns a Switch configured by opts (see [fleetswitch.Options] for the
// defaults). It does not contact Redis; Load and Start do.
func (b *backend) Open(opts fleetswitch.Options) (fleetswitch.Switch, error) {
	var client *redis.Client
	if b != nil {
		client = b.client
	}
	s, err := newSwitch(client, opts)
	if err != nil {
		return nil, err // not a typed nil in the interface
	}
	return s, nil
}

// redisSwitch is one instance's view of the fleet's kill switch on Redis.
// All methods are safe for concurrent use.
type redisSwitch struct {
	rdb     *redis.Client
	opts    fleetswitch.Options
	key     string
	channel string

	state atomic.Pointer[fleetswitch.State] // never nil

	lifecycle sync.Mutex // serialises Start and Close
	mu        sync.Mutex // guards the fields below
	started   bool
	closed    bool
	listeners []func(fleetswitch.State)
	lastErr   error
	ps        *redis.PubSub
	msgs      <-chan any

	stop   chan struct{}
	notify chan struct{} // 1-buffered: the state changed
	wg     sync.WaitGroup
}

// newSwitch returns a switch over client configured by opts.
func newSwitch(client *redis.Client, opts fleetswitch.Options) (*redisSwitch, error) {
	if client == nil {
		return nil, fmt.Errorf("%w: redisswitch.New: client: nil *redis.Client", fleetswitch.ErrInvalidOption)
	}
	if opts.ResyncInterval < 0 {
		return nil, fmt.Errorf("%w: ResyncInterval: must not be negative, got %v", fleetswitch.ErrInvalidOption, opts.ResyncInterval)
	}
	if opts.Timeout < 0 {
		return nil, fmt.Errorf("%w: Timeout: must not be negative, got %v", fleetswitch.ErrInvalidOption, opts.Timeout)
	}
	opts = opts.WithDefaults()
	s := &redisSwitch{
		rdb:     client,
		opts:    opts,
		key:     Key(opts.Prefix),
		channel: Channel(opts.Prefix),
		stop:    make(chan struct{}),
		notify:  make(chan struct{}, 1),
	}
	s.state.Store(&fleetswitch.State{})
	return s, nil
}

// Start subscribes to the channel, then reads the key, so that no change
// falls between the two, and starts following the fleet in the background
// until Close. ctx bounds only this first contact; Start returns an error
// wrapping Redis's when Redis cannot be reached or the key holds a malformed
// state, and the Switch can then be started again.
func (s *redisSwitch) Start(ctx context.Context) error {
	s.lifecycle.Lock()
	defer s.lifecycle.Unlock()
	s.mu.Lock()
	closed, started := s.closed, s.started
	s.mu.Unlock()
	switch {
	case closed:
		return fleetswitch.ErrClosed
	case started:
		return fleetswitch.ErrStarted
	}
	ps := s.rdb.Subscribe(ctx, s.channel)
	if _, err := ps.Receive(ctx); err != nil { // the subscription's confirmation
		_ = ps.Close()
		return fmt.Errorf("redisswitch: subscribe to %s: %w", s.channel, err)
	}
	if _, err := s.read(ctx); err != nil {
		_ = ps.Close()
		return err
	}
	msgs := ps.ChannelWithSubscriptions(
		redis.WithChannelPingTimeout(s.opts.Timeout),
		redis.WithChannelReconnectTimeout(s.opts.Timeout),
	)
	s.mu.Lock()
	s.ps, s.msgs, s.started = ps, msgs, true
	s.mu.Unlock()
	s.wg.Add(2)
	go s.follow()
	go s.deliver()
	return nil
}

// Load reads the key once and adopts the state it holds, without
// subscribing or starting anything in the background: for a caller that must
// know the fleet's switch before it may Start (State then tells it). The
// listeners of OnChange hear of the state only once the Switch is started.
// ctx bounds the read; Load returns an error wrapping Redis's when Redis
// cannot be reached or the key holds a malformed state, and
// [fleetswitch.ErrClosed] after Close. It may be called before or after Start.
func (s *redisSwitch) Load(ctx context.Context) error {
	s.mu.Lock()
	closed := s.closed
	s.mu.Unlock()
	if closed {
		return fleetswitch.ErrClosed
	}
	_, err := s.read(ctx)
	return err
}

// read reads the key and applies the state it holds; found is false when
// the key does not exist (nobody has set the switch yet).
func (s *redisSwitch) read(ctx context.Context) (found bool, err error) {
	v, err := s.rdb.Get(ctx, s.key).Result()
	if errors.Is(err, redis.Nil) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("redisswitch: read %s: %w", s.key, err)
	}
	st, err := decodeState(v)
	if err != nil {
		return true, fmt.Errorf("redisswitch: read %s: %w", s.key, err)
	}
	s.apply(st)
	return true, nil
}

// Set turns the fleet's kill switch on or off, saying why and who: it writes
// the key and publishes the change (one atomic script), then applies it
// locally before returning, so State reflects it at once; the other
// instances follow within a second. reason and actor may be empty; they are
// limited to [fleetswitch.MaxReasonLen] and [fleetswitch.MaxActorLen] bytes.
func (s *redisSwitch) Set(ctx context.Context, on bool, reason, actor string) error {
	if len(reason) > fleetswitch.MaxReasonLen {
		return fmt.Errorf("%w: reason: longer than %d bytes", fleetswitch.ErrInvalidArgument, fleetswitch.MaxReasonLen)
	}
	if len(actor) > fleetswitch.MaxActorLen {
		return fmt.Errorf("%w: actor: longer than %d bytes", fleetswitch.ErrInvalidArgument, fleetswitch.MaxActorLen)
	}
	s.mu.Lock()
	closed, started := s.closed, s.started
	s.mu.Unlock()
	switch {
	case closed:
		return fleetswitch.ErrClosed
	case !started:
		return fleetswitch.ErrNotStarted
	}
	b, err := encodeBody(on, reason, actor, time.Now())
	if err != nil {
		return fmt.Errorf("redisswitch: set: %w", err)
	}
	v, err := setScript.Run(ctx, s.rdb, []string{s.key}, s.channel, b, "").Text()
	if err != nil {
		return fmt.Errorf("redisswitch: set %s: %w", s.key, err)
	}
	st, err := decodeState(v)
	if err != nil {
		return fmt.Errorf("redisswitch: set %s: %w", s.key, err)
	}
	s.apply(st)
	return nil
}

// State returns the kill switch as this instance last learnt it: the zero
// State (off) until something has been set.
func (s *redisSwitch) State() fleetswitch.State { return *s.state.Load() }

// OnChange registers f to be called with the new state after each change
// this instance learns of, its own Sets included. Calls come one at a time,
// in order, from a goroutine of the Switch; when changes come faster than f
// returns, intermediate states may be skipped, but the last call always has
// the latest state. f may call any method of the Switch except Close. A nil
// f is ignored.
func (s *redisSwitch) OnChange(f func(fleetswitch.State)) {
	if f == nil {
		return
	}
	s.mu.Lock()
	s.listeners = append(s.listeners, f)
	s.mu.Unlock()
}

// LastError returns the error of the last background contact with Redis
// (a re-read, or a malformed message), or nil when it succeeded.
func (s *redisSwitch) LastError() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.lastErr
}

// Key returns the Redis key that holds the state.
func (s *redisSwitch) Key() string { return s.key }

// Close stops following the fleet and waits for the Switch's goroutines to
// end. It does not close the Redis client. The state stays readable. Calling
// Close again returns nil.
func (s *redisSwitch) Close() error {
	s.lifecycle.Lock()
	defer s.lifecycle.Unlock()
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil
	}
	s.closed = true
	ps, msgs := s.ps, s.msgs
	s.mu.Unlock()

	close(s.stop)
	s.wg.Wait()
	if ps == nil {
		return nil
	}
	err := ps.Close()
	for range msgs {
		// go-redis closes msgs once its receiving goroutine has ended
	}
	if err != nil {
		return fmt.Errorf("redisswitch: close subscription: %w", err)
	}
	return nil
}

// apply adopts st when it is newer than the current state, and reports
// whether it did.
func (s *redisSwitch) apply(st fleetswitch.State) bool {
	for {
		cur := s.state.Load()
		if st.Version <= cur.Version {
			return false
		}
		if s.state.CompareAndSwap(cur, &st) {
			select {
			case s.notify <- struct{}{}:
			default:
			}
			return true
		}
	}
}

// deliver calls the listeners after changes.
func (s *redisSwitch) deliver() {
	defer s.wg.Done()
	var told int64
	for {
		select {
		case <-s.stop:
			return
		case <-s.notify:
		}
		st := s.State()
		if st.Version <= told {
			continue
		}
		told = st.Version
		s.mu.Lock()
		fs := s.listeners[:len(s.listeners):len(s.listeners)]
		s.mu.Unlock()
		for _, f := range fs {
			f(st)
		}
	}
}

// follow applies published changes, re-reads the key every ResyncInterval
// and whenever the subscription is restored after a lost connection.
func (s *redisSwitch) follow() {
	defer s.wg.Done()
	tick := time.NewTicker(s.opts.ResyncInterval)
	defer tick.Stop()
	msgs := s.msgs
	for {
		select {
		case <-s.stop:
			return
		case <-tick.C:
			s.resync()
		case m, ok := <-msgs:
			if !ok {
				// go-redis gave up the subscription: its client was closed.
				// Keep re-reading the key, which reports the errors.
				msgs = nil
				s.report(errSubscriptionEnded)
				continue
			}
			switch m := m.(type) {
			case *redis.Subscription:
				// A confirmation after the first one: go-redis reconnected,
				// and messages may have been missed meanwhile.
				s.resync()
			case *redis.Message:
				st, err := decodeState(m.Payload)
				s.report(err)
				if err == nil {
					s.apply(st)
				}
			}
		}
	}
}

// errSubscriptionEnded is reported when go-redis closes the subscription.
var errSubscriptionEnded = errors.New("redisswitch: subscription ended (Redis client closed)")

// resync re-reads the key. When the key has vanished (a Redis restart
// without persistence) while this instance's switch is on, it writes its
// state back, so that the fleet and new instances do not silently turn the
// canary on again.
func (s *redisSwitch) resync() {
	ctx, cancel := context.WithTimeout(context.Background(), s.opts.Timeout)
	defer cancel()
	found, err := s.read(ctx)
	if err == nil && !found {
		if cur := s.State(); cur.On {
			err = s.restore(ctx, cur)
		}
	}
	s.report(err)
}

// restore writes cur back into the missing key (unless another instance
// has just done so) and applies what the key then holds.
func (s *redisSwitch) restore(ctx context.Context, cur fleetswitch.State) error {
	b, err := encodeBody(cur.On, cur.Reason, cur.Actor, cur.At)
	if err != nil {
		return err
	}
	v, err := setScript.Run(ctx, s.rdb, []string{s.key}, s.channel, b, "nx").Text()
	if err != nil {
		return fmt.Errorf("redisswitch: restore %s: %w", s.key, err)
	}
	st, err := decodeState(v)
	if err != nil {
		return fmt.Errorf("redisswitch: restore %s: %w", s.key, err)
	}
	s.opts.Logger.Warn("redisswitch: kill switch key was missing; restored this instance's state",
		"key", s.key, "on", st.On, "reason", st.Reason, "version", strconv.FormatInt(st.Version, 10))
	s.apply(st)
	return nil
}

// report records the outcome of a background contact with Redis, logging
// when it starts failing and when it recovers.
func (s *redisSwitch) report(err error) {
	s.mu.Lock()
	prev := s.lastErr
	s.lastErr = err
	s.mu.Unlock()
	switch {
	case err != nil && prev == nil:
		s.opts.Logger.Warn("redisswitch: cannot follow the kill switch", "key", s.key, "error", err)
	case err == nil && prev != nil:
		s.opts.Logger.Info("redisswitch: following the kill switch again", "key", s.key)
	}
}
