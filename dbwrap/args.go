package dbwrap

import (
	"context"
	"database/sql/driver"
	"errors"
	"fmt"
	"time"
)

// The wrapper conn and stmt implement driver.NamedValueChecker by accepting
// every argument (returning nil): the inner connection that will run the
// statement is not known until the statement is routed. Right before the
// inner call, checkArgs then applies database/sql's own rules with the inner
// values, as database/sql would have with the bare driver
// (database/sql/convert.go, driverArgsConnLocked): the inner stmt's
// NamedValueChecker, else the inner conn's; on driver.ErrSkip (or none) the
// inner stmt's ColumnConverter, else driver.DefaultParameterConverter;
// driver.ErrRemoveArgument drops the argument. So a driver's custom argument
// types keep working (otelsql#117), and a driver without a checker gets the
// default conversion.
func checkArgs(si driver.Stmt, ci driver.Conn, args []driver.NamedValue) ([]driver.NamedValue, error) {
	if len(args) == 0 {
		return args, nil
	}
	var nvc driver.NamedValueChecker
	var cc driver.ColumnConverter //nolint:staticcheck // database/sql still honours it
	if si != nil {
		nvc, _ = si.(driver.NamedValueChecker)
		cc, _ = si.(driver.ColumnConverter) //nolint:staticcheck
	}
	if nvc == nil {
		nvc, _ = ci.(driver.NamedValueChecker)
	}
	for i := 0; i < len(args); {
		nv := &args[i]
		err := driver.ErrSkip
		if nvc != nil {
			err = nvc.CheckNamedValue(nv)
		}
		if errors.Is(err, driver.ErrSkip) {
			if cc != nil {
				err = convertColumn(cc, nv)
			} else {
				nv.Value, err = driver.DefaultParameterConverter.ConvertValue(nv.Value)
			}
		}
		switch {
		case err == nil:
			i++
		case errors.Is(err, driver.ErrRemoveArgument):
			args = append(args[:i], args[i+1:]...)
		default:
			return nil, fmt.Errorf("sql: converting argument %s type: %w", describeArg(nv), err)
		}
	}
	return args, nil
}

// convertColumn converts nv with the inner statement's column converter, as
// database/sql's ccChecker does.
func convertColumn(cc driver.ColumnConverter, nv *driver.NamedValue) error { //nolint:staticcheck
	v := nv.Value
	if vr, ok := v.(driver.Valuer); ok {
		var err error
		if v, err = vr.Value(); err != nil {
			return err
		}
		if !driver.IsValue(v) {
			return fmt.Errorf("non-subset type %T returned from Value", v)
		}
	}
	idx := nv.Ordinal - 1
	var err error
	if v, err = cc.ColumnConverter(idx).ConvertValue(v); err != nil {
		return err
	}
	if !driver.IsValue(v) {
		return fmt.Errorf("driver ColumnConverter error converted %T to unsupported type %T", nv.Value, v)
	}
	nv.Value = v
	return nil
}

func describeArg(nv *driver.NamedValue) string {
	if nv.Name == "" {
		return fmt.Sprintf("$%d", nv.Ordinal)
	}
	return fmt.Sprintf("with name %q", nv.Name)
}

// valuesOf converts named arguments for the pre-context driver interfaces,
// which take no names (database/sql's namedValueToValue).
func valuesOf(args []driver.NamedValue) ([]driver.Value, error) {
	out := make([]driver.Value, len(args))
	for i, a := range args {
		if a.Name != "" {
			return nil, errors.New("sql: driver does not support the use of Named Parameters")
		}
		out[i] = a.Value
	}
	return out, nil
}

// callerEnded returns the caller's reason when ctx has ended: ctx.Err(), or
// context.DeadlineExceeded once its deadline has passed even if ctx.Err()
// does not say so yet. A dialer times out at the deadline itself (the
// socket's deadline), which can be a moment before the context's own timer
// marks it done: that failure is the caller's deadline, not the server's.
func callerEnded(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if dl, ok := ctx.Deadline(); ok && !time.Now().Before(dl) {
		return context.DeadlineExceeded
	}
	return nil
}

// ctxDone returns ctx.Err() when ctx is already done: the pre-context
// fallbacks check it before and after the call, as database/sql does.
func ctxDone(ctx context.Context) error {
	select {
	case <-ctx.Done():
		return ctx.Err()
	default:
		return nil
	}
}

// innerExec runs query on an inner conn with database/sql's fallbacks:
// ExecerContext, else Execer, else driver.ErrSkip (database/sql then prepares
// the statement through the wrapper).
func innerExec(ctx context.Context, ci driver.Conn, query string, args []driver.NamedValue) (driver.Result, error) {
	if ec, ok := ci.(driver.ExecerContext); ok {
		args, err := checkArgs(nil, ci, args)
		if err != nil {
			return nil, err
		}
		return ec.ExecContext(ctx, query, args)
	}
	if e, ok := ci.(driver.Execer); ok { //nolint:staticcheck
		args, err := checkArgs(nil, ci, args)
		if err != nil {
			return nil, err
		}
		vals, err := valuesOf(args)
		if err != nil {
			return nil, err
		}
		if err := ctxDone(ctx); err != nil {
			return nil, err
		}
		return e.Exec(query, vals)
	}
	return nil, driver.ErrSkip
}

// innerQuery is innerExec for queries.
func innerQuery(ctx context.Context, ci driver.Conn, query string, args []driver.NamedValue) (driver.Rows, error) {
	if qc, ok := ci.(driver.QueryerContext); ok {
		args, err := checkArgs(nil, ci, args)
		if err != nil {
			return nil, err
		}
		return qc.QueryContext(ctx, query, args)
	}
	if q, ok := ci.(driver.Queryer); ok { //nolint:staticcheck
		args, err := checkArgs(nil, ci, args)
		if err != nil {
			return nil, err
		}
		vals, err := valuesOf(args)
		if err != nil {
			return nil, err
		}
		if err := ctxDone(ctx); err != nil {
			return nil, err
		}
		return q.Query(query, vals)
	}
	return nil, driver.ErrSkip
}

// innerPrepare prepares query on an inner conn: ConnPrepareContext, else
// Prepare with database/sql's context check.
func innerPrepare(ctx context.Context, ci driver.Conn, query string) (driver.Stmt, error) {
	if pc, ok := ci.(driver.ConnPrepareContext); ok {
		return pc.PrepareContext(ctx, query)
	}
	si, err := ci.Prepare(query)
	if err != nil {
		return nil, err
	}
	if err := ctxDone(ctx); err != nil {
		return nil, errors.Join(err, si.Close())
	}
	return si, nil
}

// innerStmtExec runs a prepared inner statement: StmtExecContext, else Exec.
func innerStmtExec(ctx context.Context, si driver.Stmt, ci driver.Conn, args []driver.NamedValue) (driver.Result, error) {
	args, err := checkArgs(si, ci, args)
	if err != nil {
		return nil, err
	}
	if sc, ok := si.(driver.StmtExecContext); ok {
		return sc.ExecContext(ctx, args)
	}
	vals, err := valuesOf(args)
	if err != nil {
		return nil, err
	}
	if err := ctxDone(ctx); err != nil {
		return nil, err
	}
	return si.Exec(vals) //nolint:staticcheck
}

// innerStmtQuery is innerStmtExec for queries.
func innerStmtQuery(ctx context.Context, si driver.Stmt, ci driver.Conn, args []driver.NamedValue) (driver.Rows, error) {
	args, err := checkArgs(si, ci, args)
	if err != nil {
		return nil, err
	}
	if sc, ok := si.(driver.StmtQueryContext); ok {
		return sc.QueryContext(ctx, args)
	}
	vals, err := valuesOf(args)
	if err != nil {
		return nil, err
	}
	if err := ctxDone(ctx); err != nil {
		return nil, err
	}
	return si.Query(vals) //nolint:staticcheck
}

// innerBegin begins a transaction on an inner conn: ConnBeginTx, else Begin
// with database/sql's checks (ctxutil.go: a non-default isolation level or
// read-only needs ConnBeginTx).
func innerBegin(ctx context.Context, ci driver.Conn, opts driver.TxOptions) (driver.Tx, error) {
	if bc, ok := ci.(driver.ConnBeginTx); ok {
		return bc.BeginTx(ctx, opts)
	}
	if opts.Isolation != 0 {
		return nil, errors.New("sql: driver does not support non-default isolation level")
	}
	if opts.ReadOnly {
		return nil, errors.New("sql: driver does not support read-only transactions")
	}
	tx, err := ci.Begin() //nolint:staticcheck
	if err != nil {
		return nil, err
	}
	if err := ctxDone(ctx); err != nil {
		return nil, errors.Join(err, tx.Rollback())
	}
	return tx, nil
}

// rowQuerier runs a one-row query on an inner conn, for the Dialect.
type rowQuerier struct{ ci driver.Conn }

var (
	_ Querier       = rowQuerier{}
	_ columnQuerier = rowQuerier{}
)

func (q rowQuerier) QueryRow(ctx context.Context, query string) ([]driver.Value, error) {
	_, row, err := q.QueryRowColumns(ctx, query)
	return row, err
}

// QueryRowColumns is QueryRow that also returns the column names.
func (q rowQuerier) QueryRowColumns(ctx context.Context, query string) ([]string, []driver.Value, error) {
	rows, err := innerQuery(ctx, q.ci, query, nil)
	if errors.Is(err, driver.ErrSkip) {
		var si driver.Stmt
		if si, err = innerPrepare(ctx, q.ci, query); err != nil {
			return nil, nil, err
		}
		defer si.Close()
		rows, err = innerStmtQuery(ctx, si, q.ci, nil)
	}
	if err != nil {
		return nil, nil, err
	}
	defer rows.Close()
	cols := rows.Columns()
	dest := make([]driver.Value, len(cols))
	if err := rows.Next(dest); err != nil {
		if errors.Is(err, errEOF) {
			return cols, nil, nil
		}
		return cols, nil, err
	}
	return cols, dest, nil
}
