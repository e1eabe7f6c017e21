package dbwrap

import (
	"context"
	"database/sql/driver"
	"errors"
	"io"
	"sync"
	"sync/atomic"

	"github.com/reqcanary/canary/tenant"
)

var (
	_ driver.Connector = (*connector)(nil)
	_ io.Closer        = (*connector)(nil)
)

// connector is the wrapper's driver.Connector. database/sql pools the conns
// it makes; each conn lazily holds at most one inner connection per server.
// It owns the background poller, started by start (by newConnector unless
// Config.DeferStart) and stopped by Close (which sql.DB.Close calls).
type connector struct {
	set        settings
	system     string // db.system attribute value
	drv        *wrapDriver
	servers    []*server // [0] is the primary
	primary    *server
	replicas   []*server // every replica, in server order
	defaults   []*server // the read set of requests without a cohort entry
	cohorts    map[tenant.Cohort][]*server
	metrics    *metrics
	poller     atomic.Pointer[poller] // nil without replicas, and until started
	classified classifyCache

	rr atomic.Uint32 // assigns each conn its preferred replica

	started  atomic.Bool     // start ran: the poller judges replicas, conns stay pooled
	polled   chan struct{}   // closed once every replica has had its first verdict
	done     chan struct{}   // closed by Close
	probeCtx context.Context // of the replay probes' queries; cancelled by Close
	cancel   context.CancelFunc
	probes   sync.WaitGroup // replay probes in flight
	life     sync.Mutex     // serialises start and Close
	closed   bool           // under life
	closeErr error          // under life
}

// Connectors are the inner connectors of OpenDB and NewConnector: one per
// server, each a distinct server.
type Connectors struct {
	// Primary connects to the primary. Required.
	Primary driver.Connector
	// Replicas connect to the replicas that serve reads by default.
	Replicas []driver.Connector
	// CohortReplicas connect to the replicas that serve the reads of a
	// cohort (see Config.CohortReplicas).
	CohortReplicas map[tenant.Cohort][]driver.Connector
}

// newConnector builds the connector. cohortShared maps, for Open, a cohort
// replica to the index of the default replica with the same DSN.
func newConnector(cs Connectors, cohortSame map[tenant.Cohort][]int, cfg Config) (*connector, error) {
	if cs.Primary == nil {
		return nil, configError("Primary", "is required")
	}
	for i, r := range cs.Replicas {
		if r == nil {
			return nil, configError("Replicas", "entry %d is nil", i)
		}
	}
	set, err := cfg.settings()
	if err != nil {
		return nil, err
	}
	c := &connector{
		set: set, cohorts: make(map[tenant.Cohort][]*server, len(cs.CohortReplicas)),
		polled: make(chan struct{}), done: make(chan struct{}),
	}
	c.probeCtx, c.cancel = context.WithCancel(context.Background())
	if set.dialect != nil {
		c.system = set.dialect.System()
	}
	// Statements are classified in the server's syntax.
	if ms, ok := set.dialect.(mysqlSyntaxer); ok {
		c.classified.mysql = ms.mysqlSyntax()
	} else if set.dialect == nil || set.dialect.System() == "" {
		c.classified.mysql = cfg.DriverName == "mysql"
	}
	c.drv = &wrapDriver{c: c, inner: cs.Primary.Driver()}
	c.primary = newServer(0, "primary", TargetPrimary, cs.Primary)
	c.servers = append(c.servers, c.primary)
	for i, r := range cs.Replicas {
		s := newServer(len(c.servers), "replica-"+itoa(i), TargetReplica, r)
		c.servers = append(c.servers, s)
		c.replicas = append(c.replicas, s)
		c.defaults = append(c.defaults, s)
	}
	for cohort, list := range cs.CohortReplicas {
		if cohort == "" {
			return nil, configError("CohortReplicas", "the cohort name is empty")
		}
		set := make([]*server, 0, len(list))
		for i, r := range list {
			if same := cohortSame[cohort]; same != nil && same[i] >= 0 {
				set = append(set, c.defaults[same[i]])
				continue
			}
			if r == nil {
				return nil, configError("CohortReplicas", "cohort %q entry %d is nil", cohort, i)
			}
			s := newServer(len(c.servers), string(cohort)+"-replica-"+itoa(i), TargetReplica, r)
			c.servers = append(c.servers, s)
			c.replicas = append(c.replicas, s)
			set = append(set, s)
		}
		if len(set) > 0 {
			c.cohorts[cohort] = set
		}
	}
	if len(c.replicas) == 0 {
		close(c.polled) // nothing to judge
	}
	c.metrics = newMetrics(c)
	if !set.deferStart {
		_ = c.start() // cannot fail: not closed yet
	}
	return c, nil
}

// start starts the poller and the replica gauges; it is a no-op once
// started, and ErrClosed after Close.
func (c *connector) start() error {
	c.life.Lock()
	defer c.life.Unlock()
	switch {
	case c.closed:
		return ErrClosed
	case c.started.Load():
		return nil
	}
	c.metrics.register()
	if len(c.replicas) > 0 {
		c.poller.Store(startPoller(c))
	}
	c.started.Store(true)
	return nil
}

// Connect returns a new wrapper connection. It opens no inner connection:
// each is opened on first use.
func (c *connector) Connect(ctx context.Context) (driver.Conn, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	return newConn(c), nil
}

// Driver returns the wrapper driver.
func (c *connector) Driver() driver.Driver { return c.drv }

// Close stops the poller and closes its connections and the replay probes,
// then closes the inner
// connectors that implement io.Closer. sql.DB.Close calls it after closing
// every pooled connection. It is safe to call more than once.
func (c *connector) Close() error {
	c.life.Lock()
	defer c.life.Unlock()
	if c.closed {
		return c.closeErr
	}
	c.closed = true
	close(c.done)
	var errs []error
	if p := c.poller.Load(); p != nil {
		p.stop()
	}
	for _, s := range c.replicas {
		s.probe.stop()
	}
	c.cancel()
	c.probes.Wait()
	for _, s := range c.replicas {
		s.probe.closeConn()
	}
	errs = append(errs, c.metrics.close())
	for _, s := range c.servers {
		if cl, ok := s.connector.(io.Closer); ok {
			errs = append(errs, cl.Close())
		}
	}
	c.closeErr = errors.Join(errs...)
	return c.closeErr
}

// readSet returns the replicas that may serve a read of the given labels.
func (c *connector) readSet(l tenant.Labels, hasLabels bool) []*server {
	if hasLabels && len(c.cohorts) > 0 {
		if set, ok := c.cohorts[l.Cohort]; ok && anyHealthy(set) {
			return set
		}
	}
	return c.defaults
}

// awaitingPoll reports whether a replica that a read of the given labels
// could use has had no verdict from the poller yet.
func (c *connector) awaitingPoll(l tenant.Labels, hasLabels bool) bool {
	if hasLabels && len(c.cohorts) > 0 {
		if set, ok := c.cohorts[l.Cohort]; ok && anyUnpolled(set) {
			return true
		}
	}
	return anyUnpolled(c.defaults)
}

func anyUnpolled(set []*server) bool {
	for _, s := range set {
		if !s.polled.Load() {
			return true
		}
	}
	return false
}

func anyHealthy(set []*server) bool {
	for _, s := range set {
		if s.healthy.Load() {
			return true
		}
	}
	return false
}

func itoa(i int) string {
	if i < 10 {
		return string(rune('0' + i))
	}
	return itoa(i/10) + string(rune('0'+i%10))
}
