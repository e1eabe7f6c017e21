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
//   - a replica starts out of service; its first verdict decides: the first
//     poll that finds it fit puts it in service at once, the first that finds
//     it unfit (or fails) keeps it out. Until then it is "not polled".
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
	judged  bool // every replica has had its first verdict; c.polled is closed
}

// verdict is what one poll says of a replica.
type verdict uint8

const (
	verdictFit verdict = iota
	verdictUnfit
	// verdictUndecided: the replica is behind every write position sampled
	// since the poller started, less than MaxReplicaLag ago, so its lag is
	// not known yet. Only a replica with no verdict yet is left undecided.
	verdictUndecided
)

// lagSampler is implemented by a dialect whose lag samples are better read
// with another query than WritePosition (Postgres: the flushed position, which
// a replica can reach, rather than the insert position).
type lagSampler interface {
	lagSample(ctx context.Context, q Querier) (uint64, error)
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
			var pos uint64
			if ls, ok := d.(lagSampler); ok {
				pos, err = ls.lagSample(ctx, rowQuerier{ci})
			} else {
				pos, err = d.WritePosition(ctx, rowQuerier{ci})
			}
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
	if !p.judged && p.allJudged() {
		p.judged = true
		close(p.c.polled)
	}
	p.c.metrics.polled()
}

// allJudged reports whether every replica has had its first verdict.
func (p *poller) allJudged() bool {
	for _, s := range p.c.replicas {
		if !s.polled.Load() {
			return false
		}
	}
	return true
}

func (p *poller) pollReplica(ctx context.Context, s *server) {
	v := p.checkReplica(ctx, s)
	if p.ctx.Err() != nil {
		return // stopping: the poll was cut short, it says nothing
	}
	now := time.Now()
	first := !s.polled.Load()
	switch v {
	case verdictUndecided:
		return
	case verdictUnfit:
		s.streak.Store(0)
		// A replica found unfit by its first poll was never in service; it
		// counts as a "down" event all the same, so that alerts on those
		// events see a replica that is unfit from the start.
		if s.healthy.CompareAndSwap(true, false) || first {
			p.c.metrics.replicaDown(ctx, s)
		}
		s.polled.Store(true)
		return
	}
	since := s.streak.Load()
	if since == 0 {
		since = now.UnixNano()
		s.streak.Store(since)
	}
	if first {
		// The first verdict admits it at once: RecoverAfter is for a replica
		// that was found unfit and came back. Healthy is set before polled,
		// so whoever sees it polled sees the verdict.
		s.healthy.Store(true)
		s.polled.Store(true)
		return
	}
	if !s.healthy.Load() && now.UnixNano()-since >= int64(p.c.set.recoverAfter) {
		if s.healthy.CompareAndSwap(false, true) {
			p.c.metrics.replicaUp(ctx, s)
		}
	}
}

// checkReplica polls s once and says whether it may serve reads.
func (p *poller) checkReplica(ctx context.Context, s *server) verdict {
	ci, err := p.conn(ctx, s)
	if err != nil {
		return verdictUnfit
	}
	d := p.c.set.dialect
	if d == nil {
		if pg, ok := ci.(driver.Pinger); ok {
			if err := pg.Ping(ctx); err != nil {
				p.drop(s)
				return verdictUnfit
			}
		}
		return verdictFit
	}
	st, err := d.ReplicaStatus(ctx, rowQuerier{ci})
	if err != nil {
		if d.IsConnError(err) || ctx.Err() != nil {
			p.drop(s)
		}
		return verdictUnfit
	}
	if !st.InRecovery {
		// Promoted, or not a replica at all: its data may have diverged.
		s.lag.Store(-1)
		return verdictUnfit
	}
	if st.Replay > s.replay.Load() || st.Replay < s.replay.Load()/2 {
		s.replay.Store(st.Replay)
	}
	lag, known := p.lagOf(st)
	if !known && !s.polled.Load() {
		// Its lag is at least the age of the oldest sample, which is still
		// under MaxReplicaLag: too early to admit it, and to reject it.
		return verdictUndecided
	}
	s.lag.Store(int64(lag))
	if p.c.set.maxLag < 0 || lag <= p.c.set.maxLag {
		return verdictFit
	}
	return verdictUnfit
}

// lagOf estimates how far behind a replica is in time: the age of the oldest
// primary position it has not replayed yet. Without samples (the primary is
// unreachable), it is zero when the replica has replayed all it received,
// else the age of its last replayed transaction.
//
// known is false when the replica has not replayed even the oldest sample
// and that sample is not older than MaxReplicaLag (the poller started
// recently): the lag is then at least the returned value, but may be far
// more. Right after the poller starts, a replica that stopped replaying long
// ago looks like one a few milliseconds behind.
func (p *poller) lagOf(st ReplicaStatus) (lag time.Duration, known bool) {
	now := time.Now()
	if p.n > 0 {
		// Samples are in time order starting at the oldest.
		oldest := (p.next - p.n + len(p.samples)) % len(p.samples)
		for i := 0; i < p.n; i++ {
			smp := p.samples[(oldest+i)%len(p.samples)]
			if smp.pos > st.Replay {
				lag = max(0, now.Sub(smp.at))
				known = i > 0 || p.c.set.maxLag < 0 || lag > p.c.set.maxLag
				return lag, known
			}
		}
		return 0, true
	}
	if st.Receive != 0 && st.Replay >= st.Receive {
		return 0, true
	}
	if st.LastReplay.IsZero() {
		return 0, true
	}
	ref := st.Now
	if ref.IsZero() {
		ref = now
	}
	return max(0, ref.Sub(st.LastReplay)), true
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
