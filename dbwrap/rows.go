package dbwrap

import (
	"context"
	"database/sql/driver"
	"io"
	"reflect"
)

var (
	_ driver.Rows                           = (*writeRows)(nil)
	_ driver.RowsNextResultSet              = (*writeRows)(nil)
	_ driver.RowsColumnTypeScanType         = (*writeRows)(nil)
	_ driver.RowsColumnTypeDatabaseTypeName = (*writeRows)(nil)
	_ driver.RowsColumnTypeLength           = (*writeRows)(nil)
	_ driver.RowsColumnTypeNullable         = (*writeRows)(nil)
	_ driver.RowsColumnTypePrecisionScale   = (*writeRows)(nil)
)

var errEOF = io.EOF

// Reads return the inner driver's rows unwrapped, so every optional Rows
// interface the driver has reaches database/sql as is, at no cost. Only the
// rows of a write made through Query (INSERT ... RETURNING and the like) are
// wrapped, to record the write position once they are closed, when the
// statement has completed and committed.
type writeRows struct {
	driver.Rows
	c      *conn
	ctx    context.Context
	d      decision
	ci     driver.Conn
	closed bool
}

func newWriteRows(r driver.Rows, c *conn, ctx context.Context, d decision, ci driver.Conn) *writeRows {
	return &writeRows{Rows: r, c: c, ctx: ctx, d: d, ci: ci}
}

// Close closes the inner rows, then records the write.
func (r *writeRows) Close() error {
	if r.closed {
		return nil
	}
	r.closed = true
	err := r.Rows.Close()
	if err == nil && r.c.inner[r.d.srv.idx].ci == r.ci {
		r.c.afterWrite(r.ctx, r.d, r.ci)
	}
	return err
}

// HasNextResultSet forwards, or reports false like database/sql without it.
func (r *writeRows) HasNextResultSet() bool {
	if n, ok := r.Rows.(driver.RowsNextResultSet); ok {
		return n.HasNextResultSet()
	}
	return false
}

// NextResultSet forwards, or returns io.EOF.
func (r *writeRows) NextResultSet() error {
	if n, ok := r.Rows.(driver.RowsNextResultSet); ok {
		return n.NextResultSet()
	}
	return io.EOF
}

var anyType = reflect.TypeFor[any]()

// ColumnTypeScanType forwards, or returns database/sql's default (any).
func (r *writeRows) ColumnTypeScanType(i int) reflect.Type {
	if t, ok := r.Rows.(driver.RowsColumnTypeScanType); ok {
		return t.ColumnTypeScanType(i)
	}
	return anyType
}

// ColumnTypeDatabaseTypeName forwards, or returns "".
func (r *writeRows) ColumnTypeDatabaseTypeName(i int) string {
	if t, ok := r.Rows.(driver.RowsColumnTypeDatabaseTypeName); ok {
		return t.ColumnTypeDatabaseTypeName(i)
	}
	return ""
}

// ColumnTypeLength forwards, or reports no length.
func (r *writeRows) ColumnTypeLength(i int) (int64, bool) {
	if t, ok := r.Rows.(driver.RowsColumnTypeLength); ok {
		return t.ColumnTypeLength(i)
	}
	return 0, false
}

// ColumnTypeNullable forwards, or reports unknown.
func (r *writeRows) ColumnTypeNullable(i int) (nullable, ok bool) {
	if t, ok := r.Rows.(driver.RowsColumnTypeNullable); ok {
		return t.ColumnTypeNullable(i)
	}
	return false, false
}

// ColumnTypePrecisionScale forwards, or reports none.
func (r *writeRows) ColumnTypePrecisionScale(i int) (precision, scale int64, ok bool) {
	if t, ok := r.Rows.(driver.RowsColumnTypePrecisionScale); ok {
		return t.ColumnTypePrecisionScale(i)
	}
	return 0, 0, false
}
