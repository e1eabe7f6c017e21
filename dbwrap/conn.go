package dbwrap

import (
	"context"
	"database/sql/driver"
	"errors"
	"time"
)

var (
	_ driver.Conn               = (*conn)(nil)
	_ driver.ConnBeginTx        = (*conn)(nil)
	_ driver.ConnPrepareContext = (*conn)(nil)
	_ driver.ExecerContext      = (*conn)(nil)
	_ driver.QueryerContext     = (*conn)(nil)
	_ driver.Pinger             = (*conn)(nil)
	_ driver.SessionResetter    = (*conn)(nil)
	_ driver.Validator          = (*conn)(nil)
	_ driver.NamedValueChecker  = (*conn)(nil)
)

// conn is one pooled wrapper connection. It holds at most one inner
// connection per server, each opened on first use: the primary's for
// writes, transactions and pinned sessions, and a replica's for reads.
//
// database/sql uses a driver.Conn from one goroutine at a time, so conn has
// no lock; the server health it reads is atomic.
type conn struct {
	c      *connector
	inner  []innerConn // by server index
	gen    uint32      // bumped for each inner connection opened
	pref   uint32      // preferred replica, so a conn mostly uses one
	pinned bool        // session state: primary until ResetSession
	// pinHeld: a statement of the pinned session has used the primary's
	// inner connection, which now holds the session's state.
	pinHeld bool
	inTx    bool
	tx      tx // the open transaction (valid while inTx)
	closed  bool
	// lost is set once the inner connection holding the open transaction or
	// the pinned session broke: every later statement, Commit and Rollback
	// fail with it, and the pool discards the conn (IsValid, ResetSession).
	lost *lostError
}

type innerConn struct {
	ci  driver.Conn
	gen uint32
}

func newConn(c *connector) *conn {
	return &conn{c: c, inner: make([]innerConn, len(c.servers)), pref: c.rr.Add(1) - 1}
}

// innerConn returns the inner connection to s, opening it when needed. An
// open inner connection that reports itself invalid (driver.Validator, e.g.
// after a cancelled statement) is replaced first, unless it holds the open
// transaction or the pinned session: then the conn is lost, and so is every
// later statement of it. A connection holding state is never replaced.
func (c *conn) innerConn(ctx context.Context, s *server) (driver.Conn, error) {
	if c.lost != nil {
		return nil, c.lost
	}
	if ic := c.inner[s.idx].ci; ic != nil {
		if v, ok := ic.(driver.Validator); !ok || v.IsValid() {
			c.notePin(s)
			return ic, nil
		}
		if c.holdsState(s) {
			return nil, c.loseConn(s, driver.ErrBadConn)
		}
		c.dropInner(s)
	} else if c.holdsState(s) {
		return nil, c.loseConn(s, errStateConnGone)
	}
	if c.closed {
		return nil, driver.ErrBadConn
	}
	primary := s.target == TargetPrimary
	if primary && c.c.set.primaryRetry > 0 {
		if err := s.failFast(time.Now()); err != nil {
			return nil, err
		}
	}
	ci, err := s.connector.Connect(ctx)
	if err != nil {
		if cerr := callerEnded(ctx); cerr != nil {
			// The caller's own cancellation or deadline, as database/sql
			// reports it when it ends before a connection is had: this is
			// what the bare driver's caller would see. Never the server's
			// failure: stored, it would fail other callers fast.
			return nil, cerr
		}
		serr := &serverError{server: s.name, primary: primary, op: "connect to", err: err}
		if primary && c.c.set.primaryRetry > 0 {
			var stored error = serr
			s.lastErr.Store(&stored)
			s.downUntil.Store(time.Now().Add(c.c.set.primaryRetry).UnixNano())
		}
		return nil, serr
	}
	if primary {
		s.downUntil.Store(0)
	}
	c.gen++
	c.inner[s.idx] = innerConn{ci: ci, gen: c.gen}
	c.notePin(s)
	return ci, nil
}

// notePin records that the pinned session's statements now run on the
// primary's inner connection: from here on it holds the session's state.
func (c *conn) notePin(s *server) {
	if c.pinned && s == c.c.primary {
		c.pinHeld = true
	}
}

// holdsState reports whether the inner connection to s holds state that a
// new connection would not have: the open transaction's, or the pinned
// session's (advisory locks, SET, temporary tables, ...).
func (c *conn) holdsState(s *server) bool {
	return c.inTx && c.tx.srv == s || c.pinHeld && s == c.c.primary
}

// loseConn closes the inner connection to s, which held the transaction or
// the session, and marks the whole conn lost (see lostError).
func (c *conn) loseConn(s *server, err error) *lostError {
	c.dropInner(s)
	if c.lost == nil {
		c.lost = &lostError{server: s.name, err: err}
	}
	return c.lost
}

// innerFailed handles err returned by the inner connection to s. A
// connection error closes that inner connection, so the next use opens a
// new one; when it held the open transaction or the pinned session, the
// conn is lost instead (nothing of it runs on a new connection). It returns
// the error for the caller: the driver's own error, except that
// driver.ErrBadConn becomes the lostError inside a transaction or pinned
// session, where database/sql must not retry the statement elsewhere.
func (c *conn) innerFailed(s *server, err error) error {
	if errors.Is(err, driver.ErrSkip) || !c.isConnError(err) {
		return err
	}
	if !c.holdsState(s) {
		c.dropInner(s)
		return err
	}
	lost := c.loseConn(s, err)
	if errors.Is(err, driver.ErrBadConn) {
		return lost
	}
	return err
}

// countsAgainst reports whether err, from a replica, says the replica
// failed: a connect or network failure while the caller's context was live.
// A failure the caller's own cancellation or deadline caused says nothing of
// the server, and neither does driver.ErrBadConn from an inner connection
// opened earlier (the driver found it unusable before sending anything, e.g.
// after a cancelled statement): that read is retried on a new connection to
// the same replica, and only failing to connect counts.
func (c *conn) countsAgainst(ctx context.Context, err error) bool {
	if callerEnded(ctx) != nil || !c.isConnError(err) {
		return false
	}
	var se *serverError
	return errors.As(err, &se) || !errors.Is(err, driver.ErrBadConn)
}

// dropInner closes and forgets the inner connection to s (it failed); the
// next use opens a new one.
func (c *conn) dropInner(s *server) {
	if ic := c.inner[s.idx].ci; ic != nil {
		c.inner[s.idx] = innerConn{}
		_ = ic.Close()
	}
}

// Prepare implements driver.Conn.
func (c *conn) Prepare(query string) (driver.Stmt, error) {
	return c.PrepareContext(context.Background(), query)
}

// PrepareContext returns a routed statement: it is prepared now on the server
// it would run on, and on another server when a later call routes it there.
func (c *conn) PrepareContext(ctx context.Context, query string) (driver.Stmt, error) {
	return newStmt(ctx, c, query)
}

// Close closes every inner connection.
func (c *conn) Close() error {
	c.closed = true
	var errs []error
	for i := range c.inner {
		if ic := c.inner[i].ci; ic != nil {
			c.inner[i] = innerConn{}
			errs = append(errs, ic.Close())
		}
	}
	return errors.Join(errs...)
}

// Begin implements driver.Conn.
func (c *conn) Begin() (driver.Tx, error) {
	return c.BeginTx(context.Background(), driver.TxOptions{})
}

// BeginTx begins a transaction on the primary, or, when opts.ReadOnly and a
// replica may serve the context's reads, on one replica. Every statement of
// the transaction runs on that one inner connection.
func (c *conn) BeginTx(ctx context.Context, opts driver.TxOptions) (driver.Tx, error) {
	if c.inTx {
		return nil, errors.New("dbwrap: a transaction is already open on this connection")
	}
	d := c.routeBegin(ctx, opts)
	it, err := c.beginOn(ctx, d.srv, opts)
	for try := 0; err != nil && try < 2 && d.srv.target == TargetReplica && callerEnded(ctx) == nil && c.isConnError(err); try++ {
		if c.countsAgainst(ctx, err) {
			c.replicaFailed(ctx, d.srv, err)
			d = c.failover(ctx, d, failoverConn)
		}
		it, err = c.beginOn(ctx, d.srv, opts)
	}
	if err != nil {
		return nil, err
	}
	c.c.metrics.routed(ctx, d)
	c.inTx = true
	c.tx = tx{c: c, inner: it, srv: d.srv, ctx: ctx}
	return &c.tx, nil
}

func (c *conn) beginOn(ctx context.Context, s *server, opts driver.TxOptions) (driver.Tx, error) {
	ci, err := c.innerConn(ctx, s)
	if err != nil {
		return nil, err
	}
	it, err := innerBegin(ctx, ci, opts)
	if err != nil {
		return nil, c.innerFailed(s, err)
	}
	return it, nil
}

// ExecContext runs query on the primary (or the transaction's server).
func (c *conn) ExecContext(ctx context.Context, query string, args []driver.NamedValue) (driver.Result, error) {
	d := c.route(ctx, classifyCached(c.c, query), opExec)
	ci, err := c.innerConn(ctx, d.srv)
	if err != nil {
		return nil, err
	}
	res, err := innerExec(ctx, ci, query, args)
	if err != nil {
		return nil, c.innerFailed(d.srv, err)
	}
	c.c.metrics.routed(ctx, d)
	c.afterWrite(ctx, d, ci)
	return res, nil
}

// QueryContext runs query where the routing rules send it; a read that a
// replica fails (connection error, or a write it refuses) before returning
// rows is retried once elsewhere.
func (c *conn) QueryContext(ctx context.Context, query string, args []driver.NamedValue) (driver.Rows, error) {
	d := c.route(ctx, classifyCached(c.c, query), opQuery)
	rows, ci, err := c.queryOn(ctx, d.srv, query, args)
	for try := 0; err != nil; try++ {
		cause := c.retryable(ctx, d, err)
		if cause == failoverNone || try == maxReadRetries {
			return nil, err
		}
		d = c.failover(ctx, d, cause)
		rows, ci, err = c.queryOn(ctx, d.srv, query, args)
	}
	c.c.metrics.routed(ctx, d)
	if d.write {
		// The write commits when the statement completes: read the position
		// once the rows are closed.
		return newWriteRows(rows, c, ctx, d, ci), nil
	}
	return rows, nil
}

func (c *conn) queryOn(ctx context.Context, s *server, query string, args []driver.NamedValue) (driver.Rows, driver.Conn, error) {
	ci, err := c.innerConn(ctx, s)
	if err != nil {
		return nil, nil, err
	}
	rows, err := innerQuery(ctx, ci, query, args)
	if err != nil {
		return nil, ci, c.innerFailed(s, err)
	}
	return rows, ci, nil
}

// Ping pings the primary.
func (c *conn) Ping(ctx context.Context) error {
	ci, err := c.innerConn(ctx, c.c.primary)
	if err != nil {
		return err
	}
	if p, ok := ci.(driver.Pinger); ok {
		if err := p.Ping(ctx); err != nil {
			if !c.holdsState(c.c.primary) {
				c.dropInner(c.c.primary)
				return err
			}
			return c.innerFailed(c.c.primary, err)
		}
	}
	return nil
}

// ResetSession ends a session pin and resets every open inner connection;
// an inner connection that fails its reset is closed and reopened on next
// use, so the wrapper conn itself stays usable. A lost conn (see lostError)
// reports driver.ErrBadConn, so that database/sql discards it.
func (c *conn) ResetSession(ctx context.Context) error {
	if c.closed || c.lost != nil {
		return driver.ErrBadConn
	}
	c.pinned, c.pinHeld = false, false
	for _, s := range c.c.servers {
		ci := c.inner[s.idx].ci
		if ci == nil {
			continue
		}
		if sr, ok := ci.(driver.SessionResetter); ok {
			if err := sr.ResetSession(ctx); err != nil {
				c.dropInner(s)
				if ctx.Err() != nil {
					return err
				}
			}
		}
	}
	return nil
}

// IsValid reports false once the conn is closed or lost (see lostError),
// and before the connector is started (Config.DeferStart), so that
// database/sql closes the conn instead of keeping it idle; invalid inner
// connections are closed and reopened on next use, except one that holds
// the session's state: then the conn is lost.
func (c *conn) IsValid() bool {
	if c.closed || c.lost != nil || !c.c.started.Load() {
		return false
	}
	for _, s := range c.c.servers {
		if v, ok := c.inner[s.idx].ci.(driver.Validator); ok && !v.IsValid() {
			if c.holdsState(s) {
				c.loseConn(s, driver.ErrBadConn)
				return false
			}
			c.dropInner(s)
		}
	}
	return true
}

// CheckNamedValue accepts every argument; the inner driver's rules are
// applied once the statement is routed (see checkArgs).
func (c *conn) CheckNamedValue(*driver.NamedValue) error { return nil }

// Raw returns the inner connection to the primary, opening it if needed, or
// nil if it cannot be opened. Using it pins this connection to the primary
// until it is returned to the pool, since anything may be done on it. Reach
// it with sql.Conn.Raw:
//
//	conn.Raw(func(dc any) error {
//		inner := dc.(interface{ Raw() driver.Conn }).Raw()
//		...
//	})
func (c *conn) Raw() driver.Conn {
	c.pinned = true
	ci, err := c.innerConn(context.Background(), c.c.primary)
	if err != nil {
		return nil
	}
	return ci
}

func (c *conn) isConnError(err error) bool {
	if d := c.c.set.dialect; d != nil {
		return d.IsConnError(err)
	}
	return isConnError(err)
}

// afterWrite records the write position after a successful write outside a
// transaction, and marks the transaction as writing inside one.
func (c *conn) afterWrite(ctx context.Context, d decision, ci driver.Conn) {
	if !d.write {
		return
	}
	if c.inTx {
		c.tx.wrote = true
		return
	}
	c.c.recordWrite(ctx, ci)
}
