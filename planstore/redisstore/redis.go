package redisstore

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"reflect"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/reqcanary/canary/planstore"
)

// DefaultPrefix is the default key prefix of [New]; the braces make every
// key of the store hash to one Redis Cluster slot.
const DefaultPrefix = "{canary-plan}:"

// Config configures [New]. Client and Validate are required.
type Config struct {
	// Client is the Redis client; the store does not close it. Give it
	// ContextTimeoutEnabled so that OpTimeout bounds each command.
	Client redis.UniversalClient
	// Validate checks a plan before it is written (the engine's parser,
	// canary.ValidatePlan); a non-nil error refuses the write. Required.
	Validate func([]byte) error
	// Prefix of the keys: Prefix+"current" (the plan record),
	// Prefix+"history" (a list, newest first) and the pub/sub channel
	// Prefix+"changes". Default DefaultPrefix.
	Prefix string
	// HistoryLimit is how many writes the history keeps. Default
	// planstore.DefaultHistoryLimit (50).
	HistoryLimit int
	// OpTimeout bounds each call to Redis (Get, Apply, ...) when the
	// caller's context has no earlier deadline, and a watcher's PING.
	// Default planstore.DefaultOpTimeout (3 s).
	OpTimeout time.Duration
	// RetryInterval is the pause before a watcher subscribes again after
	// its subscription failed. Default planstore.DefaultRetryInterval
	// (500 ms).
	RetryInterval time.Duration
}

// New returns a [planstore.Store] on Redis, for teams without etcd: the same
// semantics as etcdstore.New, with the compare-and-swap, the history and the
// notification done by one Lua script, and watchers subscribed to a pub/sub
// channel (re-reading the plan on every (re)subscription, so a watcher that
// lost its connection catches up). It does not wait for Redis: a store
// created while Redis is down returns [planstore.ErrUnavailable] from its
// calls, and its watchers deliver the plan once Redis answers. The store is
// safe for concurrent use.
func New(cfg Config) (planstore.Store, error) {
	if cfg.Client == nil {
		return nil, errors.New("planstore: redisstore.Config.Client is required")
	}
	if v := reflect.ValueOf(cfg.Client); v.Kind() == reflect.Pointer && v.IsNil() {
		return nil, errors.New("planstore: redisstore.Config.Client is a nil pointer")
	}
	set := planstore.Settings{Validate: cfg.Validate, HistoryLimit: cfg.HistoryLimit, OpTimeout: cfg.OpTimeout, RetryInterval: cfg.RetryInterval}
	if err := set.Check("redisstore.Config"); err != nil {
		return nil, fmt.Errorf("planstore: %w", err)
	}
	cfg.HistoryLimit, cfg.OpTimeout, cfg.RetryInterval = set.HistoryLimit, set.OpTimeout, set.RetryInterval
	if cfg.Prefix == "" {
		cfg.Prefix = DefaultPrefix
	}
	s := &redisStore{cfg: cfg, cur: cfg.Prefix + "current", hist: cfg.Prefix + "history", channel: cfg.Prefix + "changes"}
	s.ctx, s.cancel = context.WithCancel(context.Background())
	return s, nil
}

var _ planstore.Store = (*redisStore)(nil)

type redisStore struct {
	cfg                Config
	cur, hist, channel string

	ctx    context.Context // canceled by Close; ends the watchers
	cancel context.CancelFunc
	wg     sync.WaitGroup
	once   sync.Once
}

// casScript writes the plan when the current version is ARGV[1]: the plan
// Record, the history entry (trimmed to ARGV[4] entries) and the
// notification. It returns {1, version} on success, {0, current version}
// otherwise.
var casScript = redis.NewScript(`
local cur = redis.call('GET', KEYS[1])
local v = 0
if cur then v = tonumber(cjson.decode(cur)['version']) end
if tonumber(ARGV[1]) ~= v then return {0, v} end
redis.call('SET', KEYS[1], ARGV[2])
redis.call('LPUSH', KEYS[2], ARGV[3])
redis.call('LTRIM', KEYS[2], 0, tonumber(ARGV[4]) - 1)
redis.call('PUBLISH', ARGV[5], ARGV[2])
return {1, v}
`)

func (s *redisStore) opCtx(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(ctx, s.cfg.OpTimeout)
}

func (s *redisStore) Get(ctx context.Context) (planstore.Plan, error) {
	octx, cancel := s.opCtx(ctx)
	defer cancel()
	b, err := s.cfg.Client.Get(octx, s.cur).Bytes()
	if errors.Is(err, redis.Nil) {
		return planstore.Plan{}, nil
	}
	if err != nil {
		return planstore.Plan{}, planstore.Unavailable("GET "+s.cur, err)
	}
	var r planstore.Record
	if err := json.Unmarshal(b, &r); err != nil {
		return planstore.Plan{}, fmt.Errorf("planstore: %s holds no plan record: %w", s.cur, err)
	}
	return r.ToPlan(), nil
}

func (s *redisStore) Apply(ctx context.Context, data []byte, expect int64, c planstore.Change) (planstore.Plan, error) {
	return s.write(ctx, data, expect, c, planstore.ActionApply, 0)
}

func (s *redisStore) Rollback(ctx context.Context, to, expect int64, c planstore.Change) (planstore.Plan, error) {
	cur, err := s.Get(ctx)
	if err != nil {
		return planstore.Plan{}, err
	}
	if expect != planstore.AnyVersion && expect != cur.Version {
		return planstore.Plan{}, &planstore.ConflictError{Expected: expect, Current: cur.Version}
	}
	if to == 0 {
		to = cur.Version - 1
		if to < 1 {
			return planstore.Plan{}, fmt.Errorf("%w: version %d has no previous version", planstore.ErrVersionNotFound, cur.Version)
		}
	}
	if to < 1 || to > cur.Version {
		return planstore.Plan{}, fmt.Errorf("%w: version %d (the current version is %d)", planstore.ErrVersionNotFound, to, cur.Version)
	}
	h, err := s.History(ctx, 0)
	if err != nil {
		return planstore.Plan{}, err
	}
	for _, e := range h {
		if e.Version == to {
			return s.write(ctx, e.Data, cur.Version, c, planstore.ActionRollback, to)
		}
	}
	return planstore.Plan{}, fmt.Errorf("%w: version %d is older than the %d versions the history keeps", planstore.ErrVersionNotFound, to, s.cfg.HistoryLimit)
}

func (s *redisStore) write(ctx context.Context, data []byte, expect int64, c planstore.Change, action string, rbTo int64) (planstore.Plan, error) {
	if err := planstore.CheckPlan(data, s.cfg.Validate); err != nil {
		return planstore.Plan{}, err
	}
	for attempt := 0; ; attempt++ {
		cur, err := s.Get(ctx)
		if err != nil {
			return planstore.Plan{}, err
		}
		if expect != planstore.AnyVersion && expect != cur.Version {
			return planstore.Plan{}, &planstore.ConflictError{Expected: expect, Current: cur.Version}
		}
		next := planstore.Record{Version: cur.Version + 1, Plan: string(data), Author: c.Author, Note: c.Note,
			Time: time.Now().UTC().Round(0), Action: action, From: cur.Version, RolledBackTo: rbTo}
		curVal, err := json.Marshal(next)
		if err != nil {
			return planstore.Plan{}, fmt.Errorf("planstore: encode plan record: %w", err)
		}
		next.Diff = planstore.Diff(cur.Data, data)
		histVal, err := json.Marshal(next)
		if err != nil {
			return planstore.Plan{}, fmt.Errorf("planstore: encode history record: %w", err)
		}
		octx, cancel := s.opCtx(ctx)
		res, err := casScript.Run(octx, s.cfg.Client, []string{s.cur, s.hist},
			cur.Version, curVal, histVal, s.cfg.HistoryLimit, s.channel).Int64Slice()
		cancel()
		if err != nil {
			return planstore.Plan{}, planstore.Unavailable("write "+s.cur, err)
		}
		if len(res) == 2 && res[0] == 1 {
			return next.ToPlan(), nil
		}
		if expect != planstore.AnyVersion || attempt >= 5 {
			now := int64(0)
			if len(res) == 2 {
				now = res[1]
			}
			return planstore.Plan{}, &planstore.ConflictError{Expected: cur.Version, Current: now}
		}
	}
}

func (s *redisStore) History(ctx context.Context, limit int) ([]planstore.Entry, error) {
	stop := int64(-1)
	if limit > 0 {
		stop = int64(limit) - 1
	}
	octx, cancel := s.opCtx(ctx)
	defer cancel()
	vals, err := s.cfg.Client.LRange(octx, s.hist, 0, stop).Result()
	if err != nil {
		return nil, planstore.Unavailable("LRANGE "+s.hist, err)
	}
	out := make([]planstore.Entry, 0, len(vals))
	for _, v := range vals {
		var r planstore.Record
		if err := json.Unmarshal([]byte(v), &r); err != nil {
			return nil, fmt.Errorf("planstore: %s holds no history record: %w", s.hist, err)
		}
		out = append(out, planstore.Entry{Plan: r.ToPlan(), Diff: r.Diff})
	}
	return out, nil
}

func (s *redisStore) Watch(ctx context.Context) <-chan planstore.Plan {
	ch := make(chan planstore.Plan)
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		defer close(ch)
		ctx, cancel := context.WithCancel(ctx)
		defer cancel()
		defer context.AfterFunc(s.ctx, cancel)()
		last := int64(-1)
		send := func(p planstore.Plan) bool {
			if p.Version <= last {
				return true
			}
			select {
			case ch <- p:
				last = p.Version
				return true
			case <-ctx.Done():
				return false
			}
		}
		for ctx.Err() == nil {
			s.subscribe(ctx, send)
			select {
			case <-ctx.Done():
			case <-time.After(s.cfg.RetryInterval):
			}
		}
	}()
	return ch
}

// subscribe follows the change channel on one subscription until it fails.
// Each (re)subscription re-reads the plan; a PING that is not answered
// within two heartbeats (a hung connection) ends the subscription.
func (s *redisStore) subscribe(ctx context.Context, send func(planstore.Plan) bool) {
	ps := s.cfg.Client.Subscribe(ctx, s.channel)
	defer ps.Close()
	// A read in progress does not see ctx; closing the subscription ends it.
	defer context.AfterFunc(ctx, func() { _ = ps.Close() })()
	hb := max(s.cfg.OpTimeout/2, 100*time.Millisecond)
	pending := false
	for ctx.Err() == nil {
		msg, err := ps.ReceiveTimeout(ctx, hb)
		if err != nil {
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() && !pending {
				if ps.Ping(ctx) != nil {
					return
				}
				pending = true
				continue
			}
			return
		}
		switch m := msg.(type) {
		case *redis.Subscription:
			pending = false
			p, err := s.Get(ctx)
			if err != nil || !send(p) {
				return
			}
		case *redis.Pong:
			pending = false
		case *redis.Message:
			pending = false
			var r planstore.Record
			if json.Unmarshal([]byte(m.Payload), &r) == nil && !send(r.ToPlan()) {
				return
			}
		}
	}
}

func (s *redisStore) Close() error {
	s.once.Do(func() {
		s.cancel()
		s.wg.Wait()
	})
	return nil
}
