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
	inTx   bool
	tx     tx // the open transaction (valid while inTx)
	closed bool
}

type innerConn struct {
	ci  driver.Conn
	gen uint32
}

func newConn(c *connector) *conn {
	return &conn{c: c, inner: make([]innerConn, len(c.servers)), pref: c.rr.Add(1) - 1}
}

// innerConn returns the inner connection to s, opening it when needed.
func (c *conn) innerConn(ctx context.Context, s *server) (driver.Conn, error) {
	if ic := c.inner[s.idx].ci; ic != nil {
		return ic, nil
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
		serr := &serverError{server: s.name, primary: primary, op: "connect to", err: err}
		if primary && ctx.Err() == nil && c.c.set.primaryRetry > 0 {
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
	return ci, nil
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
	d := c.routeBegin(ctx, opts.ReadOnly)
	it, err := c.beginOn(ctx, d.srv, opts)
	if err != nil && d.srv.target == TargetReplica && ctx.Err() == nil && c.isConnError(err) {
		c.replicaFailed(ctx, d.srv, err)
		d = c.failover(ctx, d, failoverConn)
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
	if err != nil && c.isConnError(err) {
		c.dropInner(s)
	}
	return it, err
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
		if !errors.Is(err, driver.ErrSkip) && c.isConnError(err) {
			c.dropInner(d.srv)
		}
		return nil, err
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
	if err != nil {
		var cause failoverCause
		if cause = c.retryable(ctx, d, err); cause == failoverNone {
			return nil, err
		}
		d = c.failover(ctx, d, cause)
		if rows, ci, err = c.queryOn(ctx, d.srv, query, args); err != nil {
			return nil, err
		}
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
	if err != nil && !errors.Is(err, driver.ErrSkip) && c.isConnError(err) {
		c.dropInner(s)
	}
	return rows, ci, err
}

// Ping pings the primary.
func (c *conn) Ping(ctx context.Context) error {
	ci, err := c.innerConn(ctx, c.c.primary)
	if err != nil {
		return err
	}
	if p, ok := ci.(driver.Pinger); ok {
		if err := p.Ping(ctx); err != nil {
			c.dropInner(c.c.primary)
			return err
		}
	}
	return nil
}

// ResetSession ends a session pin and resets every open inner connection;
// an inner connection that fails its reset is closed and reopened on next
// use, so the wrapper conn itself stays usable.
func (c *conn) ResetSession(ctx context.Context) error {
	if c.closed {
		return driver.ErrBadConn
	}
	c.pinned = false
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

// IsValid reports false once the conn is closed, and before the connector
// is started (Config.DeferStart), so that database/sql closes the conn
// instead of keeping it idle; invalid inner connections are closed and
// reopened on next use.
func (c *conn) IsValid() bool {
	if c.closed || !c.c.started.Load() {
		return false
	}
	for _, s := range c.c.servers {
		if v, ok := c.inner[s.idx].ci.(driver.Validator); ok && !v.IsValid() {
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
	ci, err := c.innerConn(context.Background(), c.c.primary)
	if err != nil {
		return nil
	}
	c.pinned = true
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
