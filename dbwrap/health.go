package dbwrap

import (
	"context"
	"database/sql/driver"
	"time"
)

// poller is the connector's background goroutine. Every PollInterval it
// reads the primary's write position and each replica's status on its own
// inner connections (one per server, not taken from the pool), and updates
// each replica's replay position, lag and health:
//
//   - a replica that fails the poll, is not in recovery, or lags more than
//     MaxReplicaLag is taken out at once;
//   - it serves reads again only after RecoverAfter of consecutive good polls
//     (hysteresis); a read that fails on it restarts that wait.
//
// Reads never wait for the poller and cost no round trip of their own.
type poller struct {
	c       *connector
	ctx     context.Context // cancelled by stop
	cancel  context.CancelFunc
	done    chan struct{}
	conns   []driver.Conn // by server index; only the poller's goroutine uses them
	samples []sample      // ring of primary write positions
	next    int
	n       int
	wake    chan struct{}
}

// sample is the primary's write position at one time.
type sample struct {
	at  time.Time
	pos uint64
}

func startPoller(c *connector) *poller {
	ctx, cancel := context.WithCancel(context.Background())
	size := 16
	if c.set.maxLag > 0 {
		size = max(size, min(4096, int(2*c.set.maxLag/c.set.poll)+8))
	}
	p := &poller{
		c: c, ctx: ctx, cancel: cancel, done: make(chan struct{}),
		conns: make([]driver.Conn, len(c.servers)), samples: make([]sample, size),
		wake: make(chan struct{}, 1),
	}
	go p.run()
	return p
}

// stop cancels a poll in flight, waits for the goroutine to end and closes
// the poller's connections.
func (p *poller) stop() {
	p.cancel()
	<-p.done
}

// failed tells the poller that a read failed on s: its healthy streak starts
// again, and the poller polls soon.
func (p *poller) failed(s *server) {
	s.streak.Store(0)
	select {
	case p.wake <- struct{}{}:
	default:
	}
}

func (p *poller) run() {
	defer close(p.done)
	defer func() {
		for i, ci := range p.conns {
			if ci != nil {
				_ = ci.Close()
				p.conns[i] = nil
			}
		}
	}()
	t := time.NewTicker(p.c.set.poll)
	defer t.Stop()
	for {
		p.pollOnce()
		select {
		case <-p.ctx.Done():
			return
		case <-t.C:
		case <-p.wake:
		}
	}
}

func (p *poller) pollOnce() {
	ctx, cancel := context.WithTimeout(p.ctx, max(p.c.set.poll, time.Second))
	defer cancel()
	d := p.c.set.dialect
	if d != nil {
		if ci, err := p.conn(ctx, p.c.primary); err == nil {
			pos, err := d.WritePosition(ctx, rowQuerier{ci})
			if err == nil {
				p.addSample(sample{at: time.Now(), pos: pos})
			} else if d.IsConnError(err) {
				p.drop(p.c.primary)
			}
		}
	}
	for _, s := range p.c.replicas {
		if p.ctx.Err() != nil {
			return
		}
		p.pollReplica(ctx, s)
	}
	p.c.metrics.polled()
}

func (p *poller) pollReplica(ctx context.Context, s *server) {
	good := p.checkReplica(ctx, s)
	now := time.Now()
	if !good {
		s.streak.Store(0)
		if s.healthy.CompareAndSwap(true, false) {
			p.c.metrics.replicaDown(ctx, s)
		}
		return
	}
	since := s.streak.Load()
	if since == 0 {
		since = now.UnixNano()
		s.streak.Store(since)
	}
	if !s.healthy.Load() && now.UnixNano()-since >= int64(p.c.set.recoverAfter) {
		if s.healthy.CompareAndSwap(false, true) {
			p.c.metrics.replicaUp(ctx, s)
		}
	}
}

// checkReplica polls s once and reports whether it may serve reads.
func (p *poller) checkReplica(ctx context.Context, s *server) bool {
	ci, err := p.conn(ctx, s)
	if err != nil {
		return false
	}
	d := p.c.set.dialect
	if d == nil {
		if pg, ok := ci.(driver.Pinger); ok {
			if err := pg.Ping(ctx); err != nil {
				p.drop(s)
				return false
			}
		}
		return true
	}
	st, err := d.ReplicaStatus(ctx, rowQuerier{ci})
	if err != nil {
		if d.IsConnError(err) || ctx.Err() != nil {
			p.drop(s)
		}
		return false
	}
	if !st.InRecovery {
		// Promoted, or not a replica at all: its data may have diverged.
		s.lag.Store(-1)
		return false
	}
	if st.Replay > s.replay.Load() || st.Replay < s.replay.Load()/2 {
		s.replay.Store(st.Replay)
	}
	lag := p.lagOf(st)
	s.lag.Store(int64(lag))
	return p.c.set.maxLag < 0 || lag <= p.c.set.maxLag
}

// lagOf estimates how far behind a replica is in time: the age of the oldest
// primary position it has not replayed yet. Without samples (the primary is
// unreachable), it is zero when the replica has replayed all it received,
// else the age of its last replayed transaction.
func (p *poller) lagOf(st ReplicaStatus) time.Duration {
	now := time.Now()
	if p.n > 0 {
		// Samples are in time order starting at the oldest.
		oldest := (p.next - p.n + len(p.samples)) % len(p.samples)
		for i := 0; i < p.n; i++ {
			smp := p.samples[(oldest+i)%len(p.samples)]
			if smp.pos > st.Replay {
				return max(0, now.Sub(smp.at))
			}
		}
		return 0
	}
	if st.Receive != 0 && st.Replay >= st.Receive {
		return 0
	}
	if st.LastReplay.IsZero() {
		return 0
	}
	ref := st.Now
	if ref.IsZero() {
		ref = now
	}
	return max(0, ref.Sub(st.LastReplay))
}

func (p *poller) addSample(smp sample) {
	// Keep only samples where the position moved: the oldest unreplayed one
	// then tells when that write happened.
	if p.n > 0 {
		last := p.samples[(p.next-1+len(p.samples))%len(p.samples)]
		if smp.pos <= last.pos {
			return
		}
	}
	p.samples[p.next] = smp
	p.next = (p.next + 1) % len(p.samples)
	if p.n < len(p.samples) {
		p.n++
	}
}

// conn returns the poller's connection to s, opening it when needed.
func (p *poller) conn(ctx context.Context, s *server) (driver.Conn, error) {
	if ci := p.conns[s.idx]; ci != nil {
		return ci, nil
	}
	ci, err := s.connector.Connect(ctx)
	if err != nil {
		return nil, err
	}
	p.conns[s.idx] = ci
	return ci, nil
}

func (p *poller) drop(s *server) {
	if ci := p.conns[s.idx]; ci != nil {
		p.conns[s.idx] = nil
		_ = ci.Close()
	}
}
