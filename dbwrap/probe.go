package dbwrap

import (
	"context"
	"database/sql/driver"
	"errors"
	"sync"
	"time"
)

// Bounds of the replay probe (see replayProbe).
const (
	probeMinGap  = time.Millisecond      // between two probes of a replica that is replaying
	probeMaxGap  = 10 * time.Millisecond // between two probes of a replica that is not
	probeTimeout = time.Second           // of one probe query
	// probeConnectTimeout bounds the opening of a probe's connection.
	probeConnectTimeout = 5 * time.Second
)

// errNotInRecovery: the server asked for its replay position is no replica.
var errNotInRecovery = errors.New("dbwrap: not in recovery")

// replayPositioner is implemented by a dialect that reads a replica's replay
// position with a cheaper query than ReplicaStatus (Postgres:
// pg_last_wal_replay_lsn() alone).
type replayPositioner interface {
	replayPosition(ctx context.Context, q Querier) (uint64, error)
}

// replayProbe asks one replica for its replay position on behalf of the
// reads that wait for it to replay their token (Config.ConsistencyWait). At
// most one probe query of a replica is in flight at a time, on a connection
// of the probe's own, and every read waiting for that replica shares its
// answer; probes follow each other at least probeMinGap apart, up to
// probeMaxGap while the replica's position does not move (a paused or
// stuck replica costs at most 1/probeMaxGap queries a second, whatever the
// number of waiting reads). Each probe runs on a goroutine of its own,
// which ends with it; Close cancels and waits for them. No probe runs when
// no read waits: reads whose
// token the poller's last position already covers, and reads without a
// token, cost nothing.
type replayProbe struct {
	mu       sync.Mutex
	inflight chan struct{} // closed when the current probe ends; nil when none runs
	conn     driver.Conn   // used only by the probe in flight
	last     time.Time     // when the last probe ended
	gap      time.Duration // before the next probe
	closed   bool
}

// await returns a channel closed when a probe of s that started no earlier
// than now has ended: the probe in flight, or a new one that it starts on a
// goroutine of its own (so that every waiting read, the first one too, stops
// waiting at its own deadline). It returns nil once the connector is closed.
func (p *replayProbe) await(c *connector, s *server) <-chan struct{} {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return nil
	}
	if p.inflight != nil {
		return p.inflight
	}
	ch := make(chan struct{})
	p.inflight = ch
	wait := p.gap - time.Since(p.last)
	c.probes.Add(1)
	go p.run(c, s, ch, wait)
	return ch
}

// run is one probe: it waits for the gap since the previous one, reads the
// replica's replay position, raises s.replay, and closes ch.
func (p *replayProbe) run(c *connector, s *server, ch chan struct{}, wait time.Duration) {
	defer c.probes.Done()
	if wait > 0 {
		t := time.NewTimer(wait)
		select {
		case <-t.C:
		case <-c.probeCtx.Done():
			t.Stop()
		}
	}
	before := s.replay.Load()
	pos, err := p.query(c, s)

	p.mu.Lock()
	if err == nil && pos > before {
		s.replay.Store(max(s.replay.Load(), pos))
		p.gap = probeMinGap
	} else {
		p.gap = min(max(2*p.gap, probeMinGap), probeMaxGap)
	}
	p.last = time.Now()
	p.inflight = nil
	p.mu.Unlock()
	close(ch)
}

// query reads the replica's replay position on the probe's connection,
// opening it when needed. Only the probe in flight calls it.
func (p *replayProbe) query(c *connector, s *server) (uint64, error) {
	if c.probeCtx.Err() != nil {
		return 0, c.probeCtx.Err()
	}
	if p.conn == nil {
		ctx, cancel := context.WithTimeout(c.probeCtx, probeConnectTimeout)
		ci, err := s.connector.Connect(ctx)
		cancel()
		if err != nil {
			return 0, err
		}
		p.conn = ci
	}
	ctx, cancel := context.WithTimeout(c.probeCtx, probeTimeout)
	defer cancel()
	d := c.set.dialect
	var pos uint64
	var err error
	if rp, ok := d.(replayPositioner); ok {
		pos, err = rp.replayPosition(ctx, rowQuerier{p.conn})
	} else {
		var st ReplicaStatus
		if st, err = d.ReplicaStatus(ctx, rowQuerier{p.conn}); err == nil && !st.InRecovery {
			return 0, errNotInRecovery
		}
		pos = st.Replay
	}
	if err != nil && (d.IsConnError(err) || ctx.Err() != nil) {
		_ = p.conn.Close()
		p.conn = nil
	}
	return pos, err
}

// stop refuses new probes; the connector then cancels and waits for the
// ones in flight, and calls closeConn.
func (p *replayProbe) stop() {
	p.mu.Lock()
	p.closed = true
	p.mu.Unlock()
}

// closeConn closes the probe's connection (no probe runs any more).
func (p *replayProbe) closeConn() {
	if p.conn != nil {
		_ = p.conn.Close()
		p.conn = nil
	}
}
