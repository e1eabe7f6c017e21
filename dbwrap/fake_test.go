package dbwrap

import (
	"context"
	"database/sql/driver"
	"errors"
	"io"
	"reflect"
	"sync"
	"sync/atomic"
)

// An in-memory driver for unit tests of forwarding and routing: each conn
// knows its server's name, every query returns one row whose columns are the
// server name and the arguments it received, and every call is logged.

type fakeLog struct {
	mu    sync.Mutex
	calls []string // "server:kind:query"
}

func (l *fakeLog) add(s string) {
	l.mu.Lock()
	l.calls = append(l.calls, s)
	l.mu.Unlock()
}

func (l *fakeLog) all() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]string(nil), l.calls...)
}

// fakeType is an argument type only a driver's own checker accepts.
type fakeType struct{ v string }

type fakeConnector struct {
	server  string
	minimal bool // conns implement only driver.Conn
	log     *fakeLog
	open    atomic.Int64
	fail    atomic.Pointer[error] // Connect and every call fail with it
	queryFn func(query string) error
}

func (c *fakeConnector) Connect(context.Context) (driver.Conn, error) {
	if p := c.fail.Load(); p != nil {
		return nil, *p
	}
	c.open.Add(1)
	base := &fakeBase{c: c}
	if c.minimal {
		return &minimalConn{base}, nil
	}
	return &fullConn{base}, nil
}

func (c *fakeConnector) Driver() driver.Driver { return fakeDriver{} }

type fakeDriver struct{}

func (fakeDriver) Open(string) (driver.Conn, error) { return nil, errors.New("fake: by name") }

type fakeBase struct {
	c      *fakeConnector
	closed bool
}

func (b *fakeBase) err(query string) error {
	if p := b.c.fail.Load(); p != nil {
		return *p
	}
	if b.c.queryFn != nil {
		return b.c.queryFn(query)
	}
	return nil
}

func (b *fakeBase) Prepare(query string) (driver.Stmt, error) {
	if err := b.err(query); err != nil {
		return nil, err
	}
	b.c.log.add(b.c.server + ":prepare:" + query)
	return &fakeStmt{b: b, query: query}, nil
}

func (b *fakeBase) Close() error {
	if !b.closed {
		b.closed = true
		b.c.open.Add(-1)
	}
	return nil
}

func (b *fakeBase) Begin() (driver.Tx, error) {
	b.c.log.add(b.c.server + ":begin:")
	return fakeTx{b}, nil
}

func (b *fakeBase) rows(query string, args []driver.NamedValue) *fakeRows {
	vals := []driver.Value{b.c.server}
	for _, a := range args {
		vals = append(vals, a.Value)
	}
	return &fakeRows{vals: vals}
}

// minimalConn implements only driver.Conn.
type minimalConn struct{ *fakeBase }

// fullConn implements every optional interface.
type fullConn struct{ *fakeBase }

func (c *fullConn) BeginTx(_ context.Context, opts driver.TxOptions) (driver.Tx, error) {
	kind := "begin"
	if opts.ReadOnly {
		kind = "begin-ro"
	}
	c.c.log.add(c.c.server + ":" + kind + ":")
	return fakeTx{c.fakeBase}, nil
}

func (c *fullConn) PrepareContext(_ context.Context, query string) (driver.Stmt, error) {
	return c.Prepare(query)
}

func (c *fullConn) ExecContext(_ context.Context, query string, args []driver.NamedValue) (driver.Result, error) {
	if err := c.err(query); err != nil {
		return nil, err
	}
	c.c.log.add(c.c.server + ":exec:" + query)
	return driver.RowsAffected(1), nil
}

func (c *fullConn) QueryContext(_ context.Context, query string, args []driver.NamedValue) (driver.Rows, error) {
	if err := c.err(query); err != nil {
		return nil, err
	}
	c.c.log.add(c.c.server + ":query:" + query)
	return c.rows(query, args), nil
}

func (c *fullConn) Ping(context.Context) error { return c.err("") }

func (c *fullConn) ResetSession(context.Context) error { return nil }

func (c *fullConn) IsValid() bool { return !c.closed }

func (c *fullConn) CheckNamedValue(nv *driver.NamedValue) error {
	if f, ok := nv.Value.(fakeType); ok {
		nv.Value = "fake:" + f.v
		return nil
	}
	return driver.ErrSkip
}

type fakeStmt struct {
	b     *fakeBase
	query string
}

func (s *fakeStmt) Close() error  { return nil }
func (s *fakeStmt) NumInput() int { return -1 }
func (s *fakeStmt) Exec(args []driver.Value) (driver.Result, error) {
	s.b.c.log.add(s.b.c.server + ":stmt-exec:" + s.query)
	return driver.RowsAffected(1), nil
}
func (s *fakeStmt) Query(args []driver.Value) (driver.Rows, error) {
	s.b.c.log.add(s.b.c.server + ":stmt-query:" + s.query)
	named := make([]driver.NamedValue, len(args))
	for i, a := range args {
		named[i] = driver.NamedValue{Ordinal: i + 1, Value: a}
	}
	return s.b.rows(s.query, named), nil
}

type fakeTx struct{ b *fakeBase }

func (t fakeTx) Commit() error   { t.b.c.log.add(t.b.c.server + ":commit:"); return nil }
func (t fakeTx) Rollback() error { t.b.c.log.add(t.b.c.server + ":rollback:"); return nil }

// fakeRows has one row; it implements the optional Rows interfaces so tests
// can see that they reach database/sql.
type fakeRows struct {
	vals []driver.Value
	done bool
}

func (r *fakeRows) Columns() []string {
	cols := make([]string, len(r.vals))
	cols[0] = "server"
	for i := 1; i < len(cols); i++ {
		cols[i] = "arg"
	}
	return cols
}
func (r *fakeRows) Close() error { return nil }
func (r *fakeRows) Next(dest []driver.Value) error {
	if r.done {
		return io.EOF
	}
	r.done = true
	copy(dest, r.vals)
	return nil
}
func (r *fakeRows) ColumnTypeDatabaseTypeName(int) string { return "FAKETEXT" }
func (r *fakeRows) ColumnTypeScanType(int) reflect.Type   { return reflect.TypeFor[string]() }
func (r *fakeRows) HasNextResultSet() bool                { return false }
func (r *fakeRows) NextResultSet() error                  { return io.EOF }

// fakeDialect reports every replica healthy and caught up to position 1.
type fakeDialect struct{ noDialect }

func (fakeDialect) System() string { return "postgresql" }
func (fakeDialect) WritePosition(context.Context, Querier) (uint64, error) {
	return 1, nil
}
func (fakeDialect) ReplicaStatus(context.Context, Querier) (ReplicaStatus, error) {
	return ReplicaStatus{InRecovery: true, Replay: 1}, nil
}
