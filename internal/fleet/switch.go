package fleet

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"
)

// Switch is one instance's view of the fleet's kill switch. Create it with
// [New], then [Switch.Start] it; [Switch.Close] it when done. All methods are
// safe for concurrent use.
type Switch struct {
	rdb     *redis.Client
	opts    Options
	key     string
	channel string

	state atomic.Pointer[State] // never nil

	lifecycle sync.Mutex // serialises Start and Close
	mu        sync.Mutex // guards the fields below
	started   bool
	closed    bool
	listeners []func(State)
	lastErr   error
	ps        *redis.PubSub
	msgs      <-chan any

	stop   chan struct{}
	notify chan struct{} // 1-buffered: the state changed
	wg     sync.WaitGroup
}

// New returns a Switch over client configured by opts (see [Options] for the
// defaults). It does not contact Redis; Start does.
func New(client *redis.Client, opts Options) (*Switch, error) {
	if client == nil {
		return nil, fmt.Errorf("%w: client: nil *redis.Client", ErrInvalidOption)
	}
	if opts.ResyncInterval < 0 {
		return nil, fmt.Errorf("%w: ResyncInterval: must not be negative, got %v", ErrInvalidOption, opts.ResyncInterval)
	}
	if opts.Timeout < 0 {
		return nil, fmt.Errorf("%w: Timeout: must not be negative, got %v", ErrInvalidOption, opts.Timeout)
	}
	opts = opts.withDefaults()
	s := &Switch{
		rdb:     client,
		opts:    opts,
		key:     opts.Key(),
		channel: opts.Channel(),
		stop:    make(chan struct{}),
		notify:  make(chan struct{}, 1),
	}
	s.state.Store(&State{})
	return s, nil
}

// Start subscribes to the channel, then reads the key, so that no change
// falls between the two, and starts following the fleet in the background
// until Close. ctx bounds only this first contact; Start returns an error
// wrapping Redis's when Redis cannot be reached or the key holds a malformed
// state, and the Switch can then be started again.
func (s *Switch) Start(ctx context.Context) error {
	s.lifecycle.Lock()
	defer s.lifecycle.Unlock()
	s.mu.Lock()
	closed, started := s.closed, s.started
	s.mu.Unlock()
	switch {
	case closed:
		return ErrClosed
	case started:
		return ErrStarted
	}
	ps := s.rdb.Subscribe(ctx, s.channel)
	if _, err := ps.Receive(ctx); err != nil { // the subscription's confirmation
		_ = ps.Close()
		return fmt.Errorf("fleet: subscribe to %s: %w", s.channel, err)
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
// cannot be reached or the key holds a malformed state, and ErrClosed after
// Close. It may be called before or after Start.
func (s *Switch) Load(ctx context.Context) error {
	s.mu.Lock()
	closed := s.closed
	s.mu.Unlock()
	if closed {
		return ErrClosed
	}
	_, err := s.read(ctx)
	return err
}

// read reads the key and applies the state it holds; found is false when
// the key does not exist (nobody has set the switch yet).
func (s *Switch) read(ctx context.Context) (found bool, err error) {
	v, err := s.rdb.Get(ctx, s.key).Result()
	if errors.Is(err, redis.Nil) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("fleet: read %s: %w", s.key, err)
	}
	st, err := decodeState(v)
	if err != nil {
		return true, fmt.Errorf("fleet: read %s: %w", s.key, err)
	}
	s.apply(st)
	return true, nil
}

// Set turns the fleet's kill switch on or off, saying why and who: it writes
// the key and publishes the change (one atomic script), then applies it
// locally before returning, so State reflects it at once; the other
// instances follow within a second. reason and actor may be empty; they are
// limited to MaxReasonLen and MaxActorLen bytes.
func (s *Switch) Set(ctx context.Context, on bool, reason, actor string) error {
	if len(reason) > MaxReasonLen {
		return fmt.Errorf("%w: reason: longer than %d bytes", ErrInvalidArgument, MaxReasonLen)
	}
	if len(actor) > MaxActorLen {
		return fmt.Errorf("%w: actor: longer than %d bytes", ErrInvalidArgument, MaxActorLen)
	}
	s.mu.Lock()
	closed, started := s.closed, s.started
	s.mu.Unlock()
	switch {
	case closed:
		return ErrClosed
	case !started:
		return ErrNotStarted
	}
	b, err := encodeBody(on, reason, actor, time.Now())
	if err != nil {
		return fmt.Errorf("fleet: set: %w", err)
	}
	v, err := setScript.Run(ctx, s.rdb, []string{s.key}, s.channel, b, "").Text()
	if err != nil {
		return fmt.Errorf("fleet: set %s: %w", s.key, err)
	}
	st, err := decodeState(v)
	if err != nil {
		return fmt.Errorf("fleet: set %s: %w", s.key, err)
	}
	s.apply(st)
	return nil
}

// State returns the kill switch as this instance last learnt it: the zero
// State (off) until something has been set.
func (s *Switch) State() State { return *s.state.Load() }

// OnChange registers f to be called with the new state after each change
// this instance learns of, its own Sets included. Calls come one at a time,
// in order, from a goroutine of the Switch; when changes come faster than f
// returns, intermediate states may be skipped, but the last call always has
// the latest state. f may call any method of the Switch except Close. A nil
// f is ignored.
func (s *Switch) OnChange(f func(State)) {
	if f == nil {
		return
	}
	s.mu.Lock()
	s.listeners = append(s.listeners, f)
	s.mu.Unlock()
}

// LastError returns the error of the last background contact with Redis
// (a re-read, or a malformed message), or nil when it succeeded.
func (s *Switch) LastError() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.lastErr
}

// Key returns the Redis key that holds the state.
func (s *Switch) Key() string { return s.key }

// Channel returns the Redis channel on which changes are published.
func (s *Switch) Channel() string { return s.channel }

// Close stops following the fleet and waits for the Switch's goroutines to
// end. It does not close the Redis client. The state stays readable. Calling
// Close again returns nil.
func (s *Switch) Close() error {
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
		return fmt.Errorf("fleet: close subscription: %w", err)
	}
	return nil
}

// apply adopts st when it is newer than the current state, and reports
// whether it did.
func (s *Switch) apply(st State) bool {
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
func (s *Switch) deliver() {
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
func (s *Switch) follow() {
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
var errSubscriptionEnded = errors.New("fleet: subscription ended (Redis client closed)")

// resync re-reads the key. When the key has vanished (a Redis restart
// without persistence) while this instance's switch is on, it writes its
// state back, so that the fleet and new instances do not silently turn the
// canary on again.
func (s *Switch) resync() {
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
func (s *Switch) restore(ctx context.Context, cur State) error {
	b, err := encodeBody(cur.On, cur.Reason, cur.Actor, cur.At)
	if err != nil {
		return err
	}
	v, err := setScript.Run(ctx, s.rdb, []string{s.key}, s.channel, b, "nx").Text()
	if err != nil {
		return fmt.Errorf("fleet: restore %s: %w", s.key, err)
	}
	st, err := decodeState(v)
	if err != nil {
		return fmt.Errorf("fleet: restore %s: %w", s.key, err)
	}
	s.opts.Logger.Warn("fleet: kill switch key was missing; restored this instance's state",
		"key", s.key, "on", st.On, "reason", st.Reason, "version", strconv.FormatInt(st.Version, 10))
	s.apply(st)
	return nil
}

// report records the outcome of a background contact with Redis, logging
// when it starts failing and when it recovers.
func (s *Switch) report(err error) {
	s.mu.Lock()
	prev := s.lastErr
	s.lastErr = err
	s.mu.Unlock()
	switch {
	case err != nil && prev == nil:
		s.opts.Logger.Warn("fleet: cannot follow the kill switch", "key", s.key, "error", err)
	case err == nil && prev != nil:
		s.opts.Logger.Info("fleet: following the kill switch again", "key", s.key)
	}
}
