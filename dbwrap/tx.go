package dbwrap

import (
	"context"
	"database/sql/driver"
	"errors"
)

var _ driver.Tx = (*tx)(nil)

// tx is the open transaction of a conn. Every statement of it runs on srv.
type tx struct {
	c     *conn
	inner driver.Tx
	srv   *server
	ctx   context.Context // BeginTx's: its session receives the position
	wrote bool            // a statement that may write ran in it
}

// Commit commits, then (when the transaction wrote) records the write
// position in the BeginTx context's session, token and user store.
func (t *tx) Commit() error {
	c := t.c
	if c == nil || !c.inTx {
		return errors.New("dbwrap: transaction already finished")
	}
	ctx, wrote, srv := t.ctx, t.wrote, t.srv
	if c.lost != nil {
		// The connection broke inside the transaction: the server rolled it
		// back; nothing after the break ran anywhere else.
		t.end()
		return c.lost
	}
	err := t.inner.Commit()
	if err != nil {
		err = c.innerFailed(srv, err)
	}
	t.end()
	if err != nil {
		return err
	}
	if wrote && srv.target == TargetPrimary {
		if ci := c.inner[srv.idx].ci; ci != nil {
			c.c.recordWrite(context.WithoutCancel(ctx), ci)
		}
	}
	return nil
}

// Rollback rolls back.
func (t *tx) Rollback() error {
	c := t.c
	if c == nil || !c.inTx {
		return errors.New("dbwrap: transaction already finished")
	}
	if c.lost != nil {
		t.end()
		return c.lost
	}
	err := t.inner.Rollback()
	if err != nil {
		ierr := err
		err = c.innerFailed(t.srv, err)
		if errors.Is(ierr, driver.ErrBadConn) {
			// database/sql never retries a rollback: the driver's
			// ErrBadConn only makes it discard the connection, as with the
			// bare driver (the conn is lost all the same).
			err = ierr
		}
	}
	t.end()
	return err
}

func (t *tx) end() {
	t.c.inTx = false
	t.inner = nil
	t.ctx = nil
}
