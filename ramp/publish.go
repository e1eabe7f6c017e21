package ramp

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.etcd.io/etcd/client/v3/concurrency"

	"github.com/reqcanary/canary/ramp/spec"
)

// Defaults of a [PublisherConfig].
const (
	DefaultPublishInterval = 500 * time.Millisecond
	DefaultPublishTTL      = 5 * time.Second
)

// FigureSource gives the figures of one engine's guard window;
// *canary.Engine is one (Engine.GuardFigures). ok is false when the guard
// is off: nothing is published then.
type FigureSource interface {
	GuardFigures() (f spec.Figures, ok bool)
}

// PublisherConfig configures [NewPublisher]. Instance is required.
type PublisherConfig struct {
	// Prefix is the controller's prefix ([Config.Prefix]); the figures go
	// to Prefix+"figures/"+Instance. Default DefaultPrefix.
	Prefix string
	// Instance names the engine; unique in the fleet. Required.
	Instance string
	// Interval between publications. Default 500ms.
	Interval time.Duration
	// TTL of the lease the key lives under: an engine that stops is left
	// out of the sum after it (and after the controller's FiguresMaxAge).
	// Whole seconds, at least 2s. Default 5s.
	TTL time.Duration
	// OpTimeout bounds each etcd call. Default 3s.
	OpTimeout time.Duration
	// Logger. Default slog.Default().
	Logger *slog.Logger
}

// Publisher publishes an engine's guard figures to etcd for the ramp
// controller. Close stops it and removes its key.
type Publisher struct {
	cli  *clientv3.Client
	src  FigureSource
	cfg  PublisherConfig
	key  string
	stop context.CancelFunc
	done chan struct{}
	once sync.Once

	published bool // the key may exist; owned by run
}

// NewPublisher starts publishing src's figures every cfg.Interval under a
// lease of cfg.TTL, until Close. It does not wait for etcd: publications
// that fail are retried at the next interval.
func NewPublisher(cli *clientv3.Client, src FigureSource, cfg PublisherConfig) (*Publisher, error) {
	switch {
	case cli == nil:
		return nil, errors.New("ramp: NewPublisher: nil etcd client")
	case src == nil:
		return nil, errors.New("ramp: NewPublisher: nil FigureSource")
	case strings.TrimSpace(cfg.Instance) == "" || strings.Contains(cfg.Instance, "/"):
		return nil, fmt.Errorf("ramp: PublisherConfig.Instance is required, without '/', got %q", cfg.Instance)
	case cfg.Interval < 0 || cfg.TTL < 0 || cfg.OpTimeout < 0:
		return nil, errors.New("ramp: PublisherConfig.Interval, TTL and OpTimeout must not be negative")
	}
	if cfg.Prefix == "" {
		cfg.Prefix = DefaultPrefix
	}
	if cfg.Interval == 0 {
		cfg.Interval = DefaultPublishInterval
	}
	if cfg.TTL == 0 {
		cfg.TTL = DefaultPublishTTL
	}
	if cfg.TTL < 2*time.Second || cfg.TTL%time.Second != 0 {
		return nil, fmt.Errorf("ramp: PublisherConfig.TTL must be whole seconds, at least 2s, got %v", cfg.TTL)
	}
	if cfg.OpTimeout == 0 {
		cfg.OpTimeout = DefaultOpTimeout
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	ctx, cancel := context.WithCancel(context.Background())
	p := &Publisher{cli: cli, src: src, cfg: cfg, key: cfg.Prefix + "figures/" + cfg.Instance, stop: cancel,
		done: make(chan struct{})}
	go p.run(ctx)
	return p, nil
}

// Key returns the etcd key the figures go to.
func (p *Publisher) Key() string { return p.key }

func (p *Publisher) run(ctx context.Context) {
	defer close(p.done)
	var sess *concurrency.Session
	defer func() {
		if sess != nil {
			cctx, cancel := context.WithTimeout(context.Background(), p.cfg.OpTimeout)
			_, _ = p.cli.Revoke(cctx, sess.Lease()) // removes the key at once
			cancel()
			sess.Orphan()
		}
	}()
	t := time.NewTicker(p.cfg.Interval)
	defer t.Stop()
	warned := false
	for {
		if sess != nil {
			select {
			case <-sess.Done(): // the lease was lost: a new one
				sess.Orphan()
				sess = nil
			default:
			}
		}
		err := p.publish(ctx, &sess)
		switch {
		case err != nil && !warned && ctx.Err() == nil:
			p.cfg.Logger.Warn("ramp: publishing the guard's figures", "key", p.key, "error", err)
			warned = true
		case err == nil:
			warned = false
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

func (p *Publisher) publish(ctx context.Context, sess **concurrency.Session) error {
	f, ok := p.src.GuardFigures()
	octx, cancel := context.WithTimeout(ctx, p.cfg.OpTimeout)
	defer cancel()
	if !ok { // the guard is off: take the figures back once
		if !p.published {
			return nil
		}
		if _, err := p.cli.Delete(octx, p.key); err != nil {
			return err
		}
		p.published = false
		return nil
	}
	if *sess == nil {
		s, err := concurrency.NewSession(p.cli, concurrency.WithTTL(int(p.cfg.TTL/time.Second)),
			concurrency.WithContext(context.WithoutCancel(ctx)))
		if err != nil {
			return err
		}
		*sess = s
	}
	b, err := json.Marshal(f)
	if err != nil {
		return fmt.Errorf("encode figures: %w", err)
	}
	if _, err = p.cli.Put(octx, p.key, string(b), clientv3.WithLease((*sess).Lease())); err != nil {
		return err
	}
	p.published = true
	return nil
}

// Close stops publishing and removes the key (revokes its lease).
func (p *Publisher) Close() error {
	p.once.Do(func() {
		p.stop()
		<-p.done
	})
	return nil
}
