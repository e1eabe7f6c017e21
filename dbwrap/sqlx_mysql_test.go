package dbwrap

import (
	"context"
	"testing"

	"github.com/jmoiron/sqlx"
	"go.opentelemetry.io/otel/attribute"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
)

func TestMySQLSqlx(t *testing.T) {
	e := newMyEnv(t)
	tbl := e.table(t, "id INT PRIMARY KEY, name VARCHAR(20) NOT NULL")
	db := sqlx.NewDb(e.open(t, e.config()), "mysql")
	ctx := context.Background()

	type item struct {
		ID   int    `db:"id"`
		Name string `db:"name"`
	}
	// NamedExec: sqlx rewrites :name to ? because the driver name is mysql.
	if _, err := db.NamedExecContext(ctx, "INSERT INTO "+tbl+" (id, name) VALUES (:id, :name)",
		[]item{{1, "one"}, {2, "two"}}); err != nil {
		t.Fatal(err)
	}
	e.waitReplicated(t)
	var got item
	if err := db.GetContext(ctx, &got, "SELECT id, name FROM "+tbl+" WHERE id = ?", 2); err != nil || got.Name != "two" {
		t.Errorf("Get = %+v, %v", got, err)
	}
	var all []item
	if err := db.SelectContext(ctx, &all, db.Rebind("SELECT id, name FROM "+tbl+" WHERE id IN (?, ?) ORDER BY id"), 1, 2); err != nil || len(all) != 2 {
		t.Errorf("Select = %+v, %v", all, err)
	}
	var a myAnswer
	if err := db.QueryRowxContext(ctx, myWhoQuery).Scan(&a.ServerID, &a.ReadOnly, &a.Port); err != nil || a.ServerID != e.replicaID {
		t.Errorf("sqlx read answered by %+v (%v), want the replica", a, err)
	}
	tx, err := db.BeginTxx(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tx.NamedExecContext(ctx, "INSERT INTO "+tbl+" (id, name) VALUES (:id, :name)", item{3, "three"}); err != nil {
		t.Fatal(err)
	}
	var inTx item
	if err := tx.GetContext(ctx, &inTx, "SELECT id, name FROM "+tbl+" WHERE id = 3"); err != nil || inTx.Name != "three" {
		t.Errorf("Get in the transaction = %+v, %v (it must see its own insert)", inTx, err)
	}
	if err := tx.Commit(); err != nil {
		t.Fatal(err)
	}
	st, err := db.PreparexContext(ctx, myWhoQuery)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	if err := st.QueryRowxContext(ctx).Scan(&a.ServerID, &a.ReadOnly, &a.Port); err != nil || a.ServerID != e.replicaID {
		t.Errorf("prepared read answered by %+v (%v), want the replica", a, err)
	}
	if err := st.QueryRowxContext(WithPrimary(ctx)).Scan(&a.ServerID, &a.ReadOnly, &a.Port); err != nil || a.ServerID != e.primaryID {
		t.Errorf("prepared read WithPrimary answered by %+v (%v), want the primary", a, err)
	}
}

// TestMySQLTelemetrySystem checks that spans of statements on MariaDB carry
// the dialect's system.
func TestMySQLTelemetrySystem(t *testing.T) {
	e := newMyEnv(t)
	db := e.open(t, e.config())
	rec := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec))
	defer tp.Shutdown(context.Background())
	ctx, span := tp.Tracer("test").Start(context.Background(), "handler")
	myWho(t, ctx, db)
	span.End()
	got := map[attribute.Key]string{}
	for _, kv := range rec.Ended()[0].Attributes() {
		got[kv.Key] = kv.Value.Emit()
	}
	want := map[attribute.Key]string{AttrDBSystem: "mariadb", AttrTarget: "replica", AttrReason: ReasonRead}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("span attribute %s = %q, want %q", k, got[k], v)
		}
	}
}
