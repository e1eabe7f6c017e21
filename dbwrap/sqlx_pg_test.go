package dbwrap

import (
	"context"
	"testing"

	"github.com/jmoiron/sqlx"
)

func TestPGSqlx(t *testing.T) {
	e := newPGEnv(t)
	db := sqlx.NewDb(e.open(t, e.config()), "pgx")
	tbl := e.table(t, "id int primary key, name text not null")
	ctx := context.Background()

	type item struct {
		ID   int    `db:"id"`
		Name string `db:"name"`
	}
	// NamedExec: sqlx rewrites :name to $n because the driver name is pgx.
	if _, err := db.NamedExecContext(ctx, "insert into "+tbl+" (id, name) values (:id, :name)",
		[]item{{1, "one"}, {2, "two"}}); err != nil {
		t.Fatal(err)
	}
	e.waitReplicated(t)

	var got item
	if err := db.GetContext(ctx, &got, "select id, name from "+tbl+" where id = $1", 2); err != nil || got.Name != "two" {
		t.Errorf("Get = %+v, %v", got, err)
	}
	var all []item
	if err := db.SelectContext(ctx, &all, "select id, name from "+tbl+" order by id"); err != nil || len(all) != 2 {
		t.Errorf("Select = %+v, %v", all, err)
	}
	var a answer
	if err := db.QueryRowxContext(ctx, whoQuery).Scan(&a.InRecovery, &a.Port, &a.PID); err != nil || !a.InRecovery {
		t.Errorf("sqlx read answered by %+v (%v), want the replica", a, err)
	}

	tx, err := db.BeginTxx(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tx.NamedExecContext(ctx, "insert into "+tbl+" (id, name) values (:id, :name)", item{3, "three"}); err != nil {
		t.Fatal(err)
	}
	var inTx item
	if err := tx.GetContext(ctx, &inTx, "select id, name from "+tbl+" where id = 3"); err != nil || inTx.Name != "three" {
		t.Errorf("Get in Beginx transaction = %+v, %v (it must see its own insert)", inTx, err)
	}
	if err := tx.Commit(); err != nil {
		t.Fatal(err)
	}
	btx, err := db.Beginx()
	if err != nil {
		t.Fatal(err)
	}
	if a := who(t, ctx, btx); a.InRecovery {
		t.Errorf("Beginx transaction ran on %+v, want the primary", a)
	}
	btx.Rollback()

	st, err := db.PreparexContext(ctx, "select id, name from "+tbl+" where id = $1")
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	var p item
	if err := st.GetContext(WithPrimary(ctx), &p, 3); err != nil || p.Name != "three" {
		t.Errorf("Preparex Get = %+v, %v", p, err)
	}
	ws, err := db.PreparexContext(ctx, whoQuery)
	if err != nil {
		t.Fatal(err)
	}
	defer ws.Close()
	if err := ws.QueryRowxContext(ctx).Scan(&a.InRecovery, &a.Port, &a.PID); err != nil || !a.InRecovery {
		t.Errorf("prepared read answered by %+v (%v), want the replica", a, err)
	}
	if err := ws.QueryRowxContext(WithPrimary(ctx)).Scan(&a.InRecovery, &a.Port, &a.PID); err != nil || a.InRecovery {
		t.Errorf("prepared read WithPrimary answered by %+v (%v), want the primary", a, err)
	}
}
