package etcdstore

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"go.etcd.io/etcd/api/v3/mvccpb"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"
	"google.golang.org/grpc"
	"google.golang.org/grpc/backoff"

	"github.com/reqcanary/canary/planstore"
)

// DefaultPrefix is the default key prefix of [New].
const DefaultPrefix = "/canary/plan/"

// Config configures [New]. Validate and one of Endpoints or Client
// are required.
type Config struct {
	// Endpoints are etcd's client addresses ("127.0.0.1:2379" or URLs).
	// The store opens a client and closes it on Close.
	Endpoints []string
	// Client is an etcd client to use instead of Endpoints; the store does
	// not close it. A client used for Watch should have keepalive set
	// (DialKeepAliveTime), or a hung connection is not noticed.
	Client *clientv3.Client
	// Validate checks a plan before it is written (the engine's parser);
	// a non-nil error refuses the write. Required.
	Validate func([]byte) error
	// Prefix of the store's keys: the plan is at Prefix+"current", the
	// history at Prefix+"history/<version>". Default DefaultPrefix.
	Prefix string
	// HistoryLimit is how many writes the history keeps. Default 50.
	HistoryLimit int
	// OpTimeout bounds each call to etcd (Get, Apply, ...) when the
	// caller's context has no earlier deadline. Default 3 s.
	OpTimeout time.Duration
	// RetryInterval is the pause before a watcher re-reads the plan after
	// its watch failed. Default 500 ms.
	RetryInterval time.Duration
}

// New returns a [planstore.Store] on etcd. It does not wait for etcd: a store
// created while etcd is down returns [planstore.ErrUnavailable] from its calls, and its
// watchers deliver the plan once etcd answers.
func New(cfg Config) (planstore.Store, error) {
	if cfg.Client == nil && len(cfg.Endpoints) == 0 {
		return nil, errors.New("planstore: etcdstore.Config.Endpoints or etcdstore.Config.Client is required")
	}
	set := planstore.Settings{Validate: cfg.Validate, HistoryLimit: cfg.HistoryLimit, OpTimeout: cfg.OpTimeout, RetryInterval: cfg.RetryInterval}
	if err := set.Check("etcdstore.Config"); err != nil {
		return nil, fmt.Errorf("planstore: %w", err)
	}
	cfg.HistoryLimit, cfg.OpTimeout, cfg.RetryInterval = set.HistoryLimit, set.OpTimeout, set.RetryInterval
	if cfg.Prefix == "" {
		cfg.Prefix = DefaultPrefix
	}
	s := &etcdStore{cfg: cfg, cli: cfg.Client, cur: cfg.Prefix + "current", hist: cfg.Prefix + "history/"}
	if s.cli == nil {
		for _, e := range cfg.Endpoints {
			if strings.TrimSpace(e) == "" {
				return nil, errors.New("planstore: etcdstore.Config.Endpoints holds an empty endpoint")
			}
		}
		cli, err := clientv3.New(clientv3.Config{
			Endpoints:   cfg.Endpoints,
			DialTimeout: cfg.OpTimeout,
			// Pings notice a hung connection under a watch. etcd refuses
			// pings more often than every 5 s (--grpc-keepalive-min-time)
			// and pings without a stream (GOAWAY too_many_pings).
			DialKeepAliveTime:    5 * time.Second,
			DialKeepAliveTimeout: 3 * time.Second,
			// Reconnect within a second of etcd's return, not after
			// gRPC's default backoff (1 s growing to 2 min), so that
			// watchers catch up at once.
			DialOptions: []grpc.DialOption{grpc.WithConnectParams(grpc.ConnectParams{
				Backoff:           backoff.Config{BaseDelay: 100 * time.Millisecond, Multiplier: 1.6, Jitter: 0.2, MaxDelay: time.Second},
				MinConnectTimeout: cfg.OpTimeout,
			})},
			Logger: zap.NewNop(),
		})
		if err != nil {
			return nil, fmt.Errorf("planstore: etcd client for %v: %w", cfg.Endpoints, err)
		}
		s.cli, s.own = cli, true
	}
	s.ctx, s.cancel = context.WithCancel(context.Background())
	return s, nil
}

var _ planstore.Store = (*etcdStore)(nil)

type etcdStore struct {
	cfg       Config
	cli       *clientv3.Client
	own       bool
	cur, hist string

	ctx    context.Context // canceled by Close; ends the watchers
	cancel context.CancelFunc
	wg     sync.WaitGroup
	once   sync.Once
}

func (s *etcdStore) histKey(v int64) string { return fmt.Sprintf("%s%020d", s.hist, v) }

func (s *etcdStore) opCtx(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(ctx, s.cfg.OpTimeout)
}

// get reads the current plan with the key's mod revision and the store's
// revision at the time of the read.
func (s *etcdStore) get(ctx context.Context) (p planstore.Plan, modRev, rev int64, err error) {
	octx, cancel := s.opCtx(ctx)
	defer cancel()
	resp, err := s.cli.Get(octx, s.cur)
	if err != nil {
		return planstore.Plan{}, 0, 0, planstore.Unavailable("get "+s.cur, err)
	}
	rev = resp.Header.GetRevision()
	if len(resp.Kvs) == 0 {
		return planstore.Plan{}, 0, rev, nil
	}
	var r planstore.Record
	if err := json.Unmarshal(resp.Kvs[0].Value, &r); err != nil {
		return planstore.Plan{}, 0, rev, fmt.Errorf("planstore: %s holds no plan record: %w", s.cur, err)
	}
	return r.ToPlan(), resp.Kvs[0].ModRevision, rev, nil
}

func (s *etcdStore) Get(ctx context.Context) (planstore.Plan, error) {
	p, _, _, err := s.get(ctx)
	return p, err
}

func (s *etcdStore) Apply(ctx context.Context, data []byte, expect int64, c planstore.Change) (planstore.Plan, error) {
	return s.write(ctx, data, expect, c, planstore.ActionApply, 0)
}

func (s *etcdStore) Rollback(ctx context.Context, to, expect int64, c planstore.Change) (planstore.Plan, error) {
	cur, _, _, err := s.get(ctx)
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
	octx, cancel := s.opCtx(ctx)
	resp, err := s.cli.Get(octx, s.histKey(to))
	cancel()
	if err != nil {
		return planstore.Plan{}, planstore.Unavailable("get "+s.histKey(to), err)
	}
	if len(resp.Kvs) == 0 {
		return planstore.Plan{}, fmt.Errorf("%w: version %d is older than the %d versions the history keeps", planstore.ErrVersionNotFound, to, s.cfg.HistoryLimit)
	}
	var r planstore.Record
	if err := json.Unmarshal(resp.Kvs[0].Value, &r); err != nil {
		return planstore.Plan{}, fmt.Errorf("planstore: %s holds no history record: %w", s.histKey(to), err)
	}
	// Based on the version read above: a write in between is a conflict,
	// so "the previous version" is never computed from a stale current one.
	return s.write(ctx, []byte(r.Plan), cur.Version, c, planstore.ActionRollback, to)
}

func (s *etcdStore) write(ctx context.Context, data []byte, expect int64, c planstore.Change, action string, rbTo int64) (planstore.Plan, error) {
	if err := planstore.CheckPlan(data, s.cfg.Validate); err != nil {
		return planstore.Plan{}, err
	}
	for attempt := 0; ; attempt++ {
		cur, modRev, _, err := s.get(ctx)
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
		ops := []clientv3.Op{
			clientv3.OpPut(s.cur, string(curVal)),
			clientv3.OpPut(s.histKey(next.Version), string(histVal)),
		}
		if oldest := next.Version - int64(s.cfg.HistoryLimit) + 1; oldest > 1 {
			ops = append(ops, clientv3.OpDelete(s.histKey(0), clientv3.WithRange(s.histKey(oldest))))
		}
		octx, cancel := s.opCtx(ctx)
		resp, err := s.cli.Txn(octx).
			If(clientv3.Compare(clientv3.ModRevision(s.cur), "=", modRev)).
			Then(ops...).
			Commit()
		cancel()
		if err != nil {
			return planstore.Plan{}, planstore.Unavailable("write "+s.cur, err)
		}
		if resp.Succeeded {
			return next.ToPlan(), nil
		}
		// Someone wrote between our read and our transaction.
		if expect != planstore.AnyVersion || attempt >= 5 {
			now, _, _, err := s.get(ctx)
			if err != nil {
				return planstore.Plan{}, err
			}
			return planstore.Plan{}, &planstore.ConflictError{Expected: cur.Version, Current: now.Version}
		}
	}
}

func (s *etcdStore) History(ctx context.Context, limit int) ([]planstore.Entry, error) {
	opts := []clientv3.OpOption{clientv3.WithPrefix(), clientv3.WithSort(clientv3.SortByKey, clientv3.SortDescend)}
	if limit > 0 {
		opts = append(opts, clientv3.WithLimit(int64(limit)))
	}
	octx, cancel := s.opCtx(ctx)
	defer cancel()
	resp, err := s.cli.Get(octx, s.hist, opts...)
	if err != nil {
		return nil, planstore.Unavailable("get "+s.hist, err)
	}
	out := make([]planstore.Entry, 0, len(resp.Kvs))
	for _, kv := range resp.Kvs {
		var r planstore.Record
		if err := json.Unmarshal(kv.Value, &r); err != nil {
			return nil, fmt.Errorf("planstore: %s holds no history record: %w", kv.Key, err)
		}
		out = append(out, planstore.Entry{Plan: r.ToPlan(), Diff: r.Diff})
	}
	return out, nil
}

func (s *etcdStore) Watch(ctx context.Context) <-chan planstore.Plan {
	ch := make(chan planstore.Plan)
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		defer close(ch)
		ctx, cancel := context.WithCancel(ctx)
		defer cancel()
		defer context.AfterFunc(s.ctx, cancel)()
		s.watch(ctx, ch)
	}()
	return ch
}

// watch reads the plan, delivers it when it is newer than the last one
// delivered, and follows the key from the revision of that read; when the
// watch fails (compaction, store gone, channel closed) it starts again with
// a fresh read, so nothing written meanwhile is missed for long.
func (s *etcdStore) watch(ctx context.Context, ch chan<- planstore.Plan) {
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
		p, _, rev, err := s.get(ctx)
		if err == nil && send(p) {
			s.follow(ctx, rev, send)
		}
		select {
		case <-ctx.Done():
		case <-time.After(s.cfg.RetryInterval):
		}
	}
}

// follow watches the plan key from after rev until the watch ends.
func (s *etcdStore) follow(ctx context.Context, rev int64, send func(planstore.Plan) bool) {
	wctx, cancel := context.WithCancel(clientv3.WithRequireLeader(ctx))
	defer cancel()
	for resp := range s.cli.Watch(wctx, s.cur, clientv3.WithRev(rev+1)) {
		if resp.Err() != nil { // ErrCompacted, no leader, canceled: re-read
			return
		}
		for _, ev := range resp.Events {
			if ev.Type != mvccpb.PUT {
				continue
			}
			var r planstore.Record
			if json.Unmarshal(ev.Kv.Value, &r) != nil {
				continue
			}
			if !send(r.ToPlan()) {
				return
			}
		}
	}
}

func (s *etcdStore) Close() error {
	var err error
	s.once.Do(func() {
		s.cancel()
		s.wg.Wait()
		if s.own {
			err = s.cli.Close()
		}
	})
	return err
}
