package dbwrap

import (
	"context"
	"database/sql/driver"
	"errors"
)

var (
	_ driver.Stmt              = (*stmt)(nil)
	_ driver.StmtExecContext   = (*stmt)(nil)
	_ driver.StmtQueryContext  = (*stmt)(nil)
	_ driver.NamedValueChecker = (*stmt)(nil)
)

// stmt is a prepared statement of one wrapper conn. It is classified once,
// routed on every execution like the same query run directly, and prepared
// on each server it is routed to (lazily, except the first).
type stmt struct {
	c        *conn
	query    string
	st       statement
	inner    []innerStmt // by server index
	numInput int
}

type innerStmt struct {
	si  driver.Stmt
	gen uint32 // the inner conn it belongs to
}

// newStmt prepares query on the server a call right now would use, so that
// syntax errors and the number of placeholders are known at once.
func newStmt(ctx context.Context, c *conn, query string) (*stmt, error) {
	s := &stmt{c: c, query: query, st: classifyCached(c.c, query), inner: make([]innerStmt, len(c.c.servers)), numInput: -1}
	op := opQuery
	if !s.st.readOnly {
		op = opExec
	}
	d := c.route(ctx, s.st, op)
	si, err := s.innerFor(ctx, d.srv)
	// A replica that fails the prepare is left as a query would leave it: a
	// stale inner connection is replaced, a dead replica is taken out and
	// the statement prepared on another server (see QueryContext).
	for try := 0; err != nil; try++ {
		cause := c.retryable(ctx, d, err)
		if cause == failoverNone || try == maxReadRetries {
			return nil, err
		}
		d = c.failover(ctx, d, cause)
		si, err = s.innerFor(ctx, d.srv)
	}
	s.numInput = si.NumInput()
	return s, nil
}

// innerFor returns the statement prepared on the conn's inner connection to
// srv, preparing it when needed.
func (s *stmt) innerFor(ctx context.Context, srv *server) (driver.Stmt, error) {
	ci, err := s.c.innerConn(ctx, srv)
	if err != nil {
		return nil, err
	}
	gen := s.c.inner[srv.idx].gen
	if is := s.inner[srv.idx]; is.si != nil && is.gen == gen {
		return is.si, nil
	}
	si, err := innerPrepare(ctx, ci, s.query)
	if err != nil {
		return nil, s.c.innerFailed(srv, err)
	}
	s.inner[srv.idx] = innerStmt{si: si, gen: gen}
	return si, nil
}

// Close closes the inner statements whose connections are still open.
func (s *stmt) Close() error {
	var errs []error
	for i, is := range s.inner {
		if is.si != nil && s.c.inner[i].ci != nil && s.c.inner[i].gen == is.gen {
			errs = append(errs, is.si.Close())
		}
		s.inner[i] = innerStmt{}
	}
	return errors.Join(errs...)
}

// NumInput returns the inner statement's count, or -1 (unknown).
func (s *stmt) NumInput() int { return s.numInput }

// Exec implements driver.Stmt.
func (s *stmt) Exec(args []driver.Value) (driver.Result, error) {
	return s.ExecContext(context.Background(), namedOf(args))
}

// Query implements driver.Stmt.
func (s *stmt) Query(args []driver.Value) (driver.Rows, error) {
	return s.QueryContext(context.Background(), namedOf(args))
}

// ExecContext runs the statement on the primary (or the transaction's
// server).
func (s *stmt) ExecContext(ctx context.Context, args []driver.NamedValue) (driver.Result, error) {
	c := s.c
	d := c.route(ctx, s.st, opExec)
	si, err := s.innerFor(ctx, d.srv)
	if err != nil {
		return nil, err
	}
	ci := c.inner[d.srv.idx].ci
	res, err := innerStmtExec(ctx, si, ci, args)
	if err != nil {
		return nil, c.innerFailed(d.srv, err)
	}
	c.c.metrics.routed(ctx, d)
	c.afterWrite(ctx, d, ci)
	return res, nil
}

// QueryContext runs the statement where the routing rules send it, with the
// same failover as conn.QueryContext.
func (s *stmt) QueryContext(ctx context.Context, args []driver.NamedValue) (driver.Rows, error) {
	c := s.c
	d := c.route(ctx, s.st, opQuery)
	rows, ci, err := s.queryOn(ctx, d.srv, args)
	for try := 0; err != nil; try++ {
		cause := c.retryable(ctx, d, err)
		if cause == failoverNone || try == maxReadRetries {
			return nil, err
		}
		d = c.failover(ctx, d, cause)
		rows, ci, err = s.queryOn(ctx, d.srv, args)
	}
	c.c.metrics.routed(ctx, d)
	if d.write {
		return newWriteRows(rows, c, ctx, d, ci), nil
	}
	return rows, nil
}

func (s *stmt) queryOn(ctx context.Context, srv *server, args []driver.NamedValue) (driver.Rows, driver.Conn, error) {
	si, err := s.innerFor(ctx, srv)
	if err != nil {
		return nil, nil, err
	}
	ci := s.c.inner[srv.idx].ci
	rows, err := innerStmtQuery(ctx, si, ci, args)
	if err != nil {
		return nil, ci, s.c.innerFailed(srv, err)
	}
	return rows, ci, nil
}

// CheckNamedValue accepts every argument; see checkArgs.
func (s *stmt) CheckNamedValue(*driver.NamedValue) error { return nil }

func namedOf(args []driver.Value) []driver.NamedValue {
	out := make([]driver.NamedValue, len(args))
	for i, v := range args {
		out[i] = driver.NamedValue{Ordinal: i + 1, Value: v}
	}
	return out
}
