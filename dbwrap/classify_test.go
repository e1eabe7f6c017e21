package dbwrap

import (
	"context"
	"database/sql"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	_ "github.com/jackc/pgx/v5/stdlib"

	"github.com/reqcanary/canary/internal/testenv"
)

// classifyCase is one statement and what classify must say about it.
type classifyCase struct {
	q       string
	ro      bool   // readOnly
	session bool   // sessionState
	reason  string // reason
}

// Shorthands for the table below.
func rd(q string) classifyCase          { return classifyCase{q: q, ro: true, reason: reasonRead} }
func pr(q, reason string) classifyCase  { return classifyCase{q: q, reason: reason} }
func pin(q, reason string) classifyCase { return classifyCase{q: q, session: true, reason: reason} }
func se(q, fn string) classifyCase      { return pr(q, reasonSideEffectPrefix+fn) }
func hint(q string, session bool) classifyCase {
	return classifyCase{q: q, session: session, reason: reasonHint}
}

var classifyCases = []classifyCase{
	// Plain reads.
	rd("SELECT 1"),
	rd("select * from users where id = $1"),
	rd("SeLeCt * FrOm t"),
	rd("  \n\tSELECT 1  "),
	rd("SELECT 1;"),
	rd("SELECT 1 ; ;  -- trailing\n"),
	rd("; SELECT 1"),
	rd("VALUES (1), (2)"),
	rd("TABLE users"),
	rd("SHOW search_path"),
	rd("show transaction_isolation"),
	rd("(SELECT 1)"),
	rd("((SELECT a FROM t) UNION (SELECT b FROM u))"),
	rd("SELECT a FROM t UNION ALL SELECT b FROM u EXCEPT SELECT c FROM v"),
	rd("SELECT count(*), coalesce(max(id), 0) FROM t WHERE name ILIKE $1 || '%'"),
	rd("SELECT * FROM t WHERE a = ? AND b = ?"),
	rd("SELECT x::text, y::int[] FROM t ORDER BY 1 DESC LIMIT 10 OFFSET 5"),
	rd("SELECT * FROM t FETCH NEXT 10 ROWS ONLY"),
	rd("SELECT substring(name FROM 1 FOR 3) FROM t"),
	rd("SELECT data #>> '{a,b}', data ? 'k' FROM docs"),
	rd("SELECT t.update, t.\"delete\" FROM log AS t"),
	rd("SELECT updated_at, inserted_by, deleted FROM t"),
	rd("SELECT * FROM t WHERE id = 1.5e-3 AND n = .5 AND m = 1_000"),
	rd("SELECT nextval FROM t"), // a column, not a call
	rd("SELECT now(), pg_is_in_recovery(), inet_server_port(), pg_backend_pid()"),
	rd("SELECT pg_last_wal_replay_lsn()"),
	rd("SELECT * FROM t WHERE name = U&'d\\0061t\\+000061'"),
	rd("SELECT B'1010', X'1F', N'text'"),
	// WITH.
	rd("WITH x AS (SELECT 1) SELECT * FROM x"),
	rd("WITH RECURSIVE r(n) AS (SELECT 1 UNION ALL SELECT n+1 FROM r WHERE n < 10) SELECT * FROM r"),
	rd("WITH a AS MATERIALIZED (SELECT 1), b AS NOT MATERIALIZED (SELECT 2) SELECT * FROM a, b"),
	rd("WITH RECURSIVE t(id) AS (SELECT 1 UNION ALL SELECT id+1 FROM t) SEARCH DEPTH FIRST BY id SET ord SELECT * FROM t"),
	rd("WITH x AS (SELECT 1) (SELECT * FROM x)"),
	rd("WITH x AS (VALUES (1)) TABLE x"),
	pr("WITH x AS (DELETE FROM t RETURNING *) SELECT * FROM x", reasonDataModifyingCTE),
	pr("WITH x AS (INSERT INTO t VALUES (1) RETURNING id) SELECT id FROM x", reasonDataModifyingCTE),
	pr("with x as (update t set a = 1 returning *) select * from x", reasonDataModifyingCTE),
	pr("WITH x AS (MERGE INTO t USING s ON t.id = s.id WHEN MATCHED THEN DELETE) SELECT 1", reasonDataModifyingCTE),
	pr("WITH RECURSIVE a AS (SELECT 1), b AS (DELETE FROM t) SELECT * FROM a", reasonDataModifyingCTE),
	pr("WITH x AS (SELECT 1) INSERT INTO t SELECT * FROM x", reasonWrite),
	pr("WITH x AS (SELECT 1) DELETE FROM t USING x RETURNING t.id", reasonReturning),
	pr("SELECT * FROM (WITH y AS (DELETE FROM t RETURNING *) SELECT * FROM y) z", reasonDataModifyingCTE),
	// Writes.
	pr("INSERT INTO t (a) VALUES (1)", reasonWrite),
	pr("insert into t values ($1) returning id", reasonReturning),
	pr("UPDATE t SET a = 1 WHERE id = 2", reasonWrite),
	pr("UPDATE t SET a = 1 RETURNING *", reasonReturning),
	pr("DELETE FROM t", reasonWrite),
	pr("DELETE FROM t WHERE id = 1 RETURNING id", reasonReturning),
	pr("MERGE INTO t USING s ON t.id = s.id WHEN NOT MATCHED THEN INSERT VALUES (s.id)", reasonWrite),
	pr("INSERT INTO t VALUES (1) ON CONFLICT (id) DO UPDATE SET a = excluded.a", reasonWrite),
	pr("(DELETE FROM t)", reasonWrite),
	pr("REPLACE INTO t VALUES (1)", reasonWrite),
	pr("SELECT * FROM t WHERE EXISTS (DELETE FROM u)", reasonWrite),
	// Locking clauses.
	pr("SELECT * FROM t FOR UPDATE", reasonLockingClause),
	pr("SELECT * FROM t FOR\nUPDATE", reasonLockingClause),
	pr("SELECT * FROM t FOR /* x */ UPDATE SKIP LOCKED", reasonLockingClause),
	pr("SELECT * FROM t FOR NO KEY UPDATE NOWAIT", reasonLockingClause),
	pr("SELECT * FROM t FOR SHARE", reasonLockingClause),
	pr("select * from t for key share of t", reasonLockingClause),
	pr("SELECT * FROM (SELECT * FROM t FOR UPDATE) s", reasonLockingClause),
	pr("SELECT * FROM t LOCK IN SHARE MODE", reasonLockingClause),
	// SELECT INTO.
	pr("SELECT * INTO newtable FROM t", reasonSelectInto),
	pr("SELECT * INTO UNLOGGED newtable FROM t", reasonSelectInto),
	pin("SELECT * INTO TEMP tmp FROM t", reasonSessionTempTable),
	pin("SELECT * INTO TEMPORARY TABLE tmp FROM t", reasonSessionTempTable),
	pin("SELECT * INTO LOCAL TEMP tmp FROM t", reasonSessionTempTable),
	pin("SELECT * INTO pg_temp.tmp FROM t", reasonSessionTempTable),
	pin("SELECT 1 INTO @x", reasonSessionSet),
	pr("SELECT a INTO OUTFILE '/tmp/x' FROM t", reasonSelectInto),
	// Side-effecting functions.
	se("SELECT nextval('s')", "nextval"),
	se("select nextval ('s')", "nextval"),
	se("select public.nextval('s')", "nextval"),
	se("select pg_catalog . NEXTVAL /* c */ ('s')", "nextval"),
	se(`select "nextval"('s')`, "nextval"),
	se(`select "pg_catalog"."nextval"('s')`, "nextval"),
	se("SELECT * FROM t WHERE id = (SELECT setval('s', 10))", "setval"),
	se("SELECT lastval()", "lastval"),
	se("SELECT currval('s')", "currval"),
	se("SELECT NEXT VALUE FOR s", "nextval"),
	se("SELECT pg_advisory_xact_lock(1)", "pg_advisory_xact_lock"),
	se("SELECT pg_try_advisory_xact_lock_shared(1)", "pg_try_advisory_xact_lock_shared"),
	se("SELECT pg_advisory_unlock(1)", "pg_advisory_unlock"),
	se("SELECT pg_notify('ch', 'x')", "pg_notify"),
	se("SELECT set_config('a.b', 'c', true)", "set_config"),
	se("SELECT set_config('a.b', 'c', 'on')", "set_config"),
	se("SELECT txid_current()", "txid_current"),
	se("SELECT pg_current_xact_id()", "pg_current_xact_id"),
	se("SELECT pg_current_wal_lsn()", "pg_current_wal_lsn"),
	se("SELECT pg_current_wal_insert_lsn()", "pg_current_wal_insert_lsn"),
	se("SELECT dblink_exec('conn', 'DELETE FROM t')", "dblink_exec"),
	se("SELECT lo_import('/etc/motd')", "lo_import"),
	se("SELECT pg_terminate_backend(pid) FROM pg_stat_activity", "pg_terminate_backend"),
	se("SELECT pg_reload_conf()", "pg_reload_conf"),
	se("SELECT pg_switch_wal()", "pg_switch_wal"),
	se("SELECT pg_create_restore_point('x')", "pg_create_restore_point"),
	se("SELECT last_insert_id()", "last_insert_id"),
	se(`WITH x AS (SELECT nextval('s')) SELECT * FROM x`, "nextval"),
	pin("SELECT pg_advisory_lock(42)", reasonSessionAdvisory),
	pin("SELECT pg_try_advisory_lock_shared(1, 2)", reasonSessionAdvisory),
	pin("SELECT GET_LOCK('x', 10)", reasonSessionAdvisory),
	pin("SELECT set_config('a.b', 'c', false)", reasonSessionSet),
	pin("SELECT set_config('a.b', 'c', $1)", reasonSessionSet),
	pin("SELECT set_config('a.b', 'c', NOT true)", reasonSessionSet),
	pin("SELECT set_config('a.b', 'c')", reasonSessionSet),
	pin("SELECT set_config(setting_name => 'a', new_value => 'b', is_local => true)", reasonSessionSet), // unsure: session
	pin("SELECT pg_catalog.set_config('search_path', '', false)", reasonSessionSet),
	se("SELECT set_config('a', (SELECT set_config('b', 'c', true)), TRUE)", "set_config"),
	pin("SELECT setseed(0.5)", reasonSessionSet),
	pin("SELECT dblink_connect('c', 'dbname=x')", reasonSessionDblink),
	pin("INSERT INTO locks VALUES (pg_advisory_lock(1))", reasonSessionAdvisory),
	pr(`SELECT U&"\006Eextval"('s')`, reasonUnknown),
	// Strings, identifiers and comments hide what they hold.
	rd("SELECT 'nextval('"),
	rd("SELECT 'nextval(''s'')'"),
	rd(`SELECT "for update" FROM t`),
	rd(`SELECT "nextval" FROM t`),
	rd("select * from t -- for update"),
	rd("select * from t /* ; delete from t */"),
	rd("select * from t /* outer /* nested ; delete */ still comment */"),
	rd("SELECT $$ update t set a = 1; $$"),
	rd("SELECT $tag$ it's delete $$ $tag$"),
	rd("SELECT $fn$ $x$ INSERT $x$ $fn$, $1"),
	rd(`SELECT E'it\'s ; delete from t'`),
	rd(`SELECT e'\\' AS backslash`),
	rd("SELECT 'don''t delete'"),
	rd(`SELECT "a""b" FROM "T""; DELETE"`),
	rd("SELECT 1 -- canary:secondary"),
	rd("SELECT 'canary:primary'"),
	rd("SELECT 1 /* canaryprimary */"),
	// Hints.
	hint("/* canary:primary */ select 1", false),
	hint("/*canary:primary*/ SELECT 1", false),
	hint("SELECT 1 /* CANARY : Primary */", false),
	hint("SELECT 1 -- canary:primary", false),
	hint("SELECT /* outer /* canary:primary */ */ 1", false),
	hint("/*NO LOAD BALANCE*/ SELECT 1", false),
	hint("/* canary:primary */ SET search_path = x", true),
	hint("/* canary:primary */", false),
	// EXPLAIN.
	rd("EXPLAIN SELECT * FROM t"),
	rd("explain (costs off, format json) select * from t"),
	rd("EXPLAIN DELETE FROM t"), // planned, not run: a standby accepts it
	rd("EXPLAIN ANALYZE SELECT * FROM t"),
	rd("EXPLAIN (ANALYZE, BUFFERS) SELECT 1"),
	rd("DESCRIBE t"),
	pr("explain analyze delete from t", reasonWrite),
	pr("EXPLAIN (ANALYZE) UPDATE t SET a = 1 RETURNING a", reasonReturning),
	pr("EXPLAIN ANALYSE VERBOSE SELECT * FROM t FOR UPDATE", reasonLockingClause),
	pr("EXPLAIN (ANALYZE false) INSERT INTO t VALUES (1)", reasonWrite),
	// A quoted option is the same option (issue 11): `("analyze")` runs the
	// statement. `"ANALYZE"` is refused by PostgreSQL, but classifying it
	// like the word costs nothing and keeps case-insensitivity.
	pr(`EXPLAIN ("analyze") INSERT INTO t VALUES (1)`, reasonWrite),
	pr(`explain ("ANALYZE") delete from t`, reasonWrite),
	pr(`explain (costs off, "analyse") update t set a = 1`, reasonWrite),
	pr(`EXPLAIN (U&"\0061nalyze") DELETE FROM t`, reasonWrite),
	pr(`EXPLAIN "analyze" DELETE FROM t`, reasonWrite),
	rd(`EXPLAIN ("costs" off, "verbose") DELETE FROM t`),
	se("EXPLAIN ANALYZE SELECT nextval('s')", "nextval"),
	pin("EXPLAIN ANALYZE SELECT pg_advisory_lock(1)", reasonSessionAdvisory),
	// DDL and utility.
	pr("CREATE TABLE t (a int REFERENCES u ON DELETE CASCADE)", reasonDDL),
	pr("CREATE UNLOGGED TABLE t (a int)", reasonDDL),
	pr("create index concurrently i on t (a)", reasonDDL),
	pr("ALTER TABLE t ADD COLUMN b int", reasonDDL),
	pr("DROP TABLE t", reasonDDL),
	pr("TRUNCATE t", reasonDDL),
	pr("GRANT SELECT ON t TO r", reasonDDL),
	pr("REFRESH MATERIALIZED VIEW v", reasonDDL),
	pr("COMMENT ON TABLE t IS 'x'", reasonDDL),
	pr("CREATE TABLE t AS SELECT * FROM u", reasonDDL),
	pr("COPY t FROM STDIN", reasonUtility),
	pr("COPY (SELECT 1) TO STDOUT", reasonUtility),
	pr("CALL p(1)", reasonUtility),
	pr("DO $$ BEGIN PERFORM 1; END $$", reasonUtility),
	pr("LOCK TABLE t IN ACCESS EXCLUSIVE MODE", reasonUtility),
	pr("VACUUM ANALYZE t", reasonUtility),
	pr("ANALYZE t", reasonUtility),
	pr("NOTIFY ch, 'x'", reasonUtility),
	pr("DECLARE c CURSOR FOR SELECT * FROM t", reasonUtility),
	pr("FETCH 10 FROM c", reasonUtility),
	pr("EXECUTE p(1)", reasonUtility),
	// Session state.
	pin("SET search_path = app, public", reasonSessionSet),
	pin("set statement_timeout to 0", reasonSessionSet),
	pin("SET SESSION work_mem = '64MB'", reasonSessionSet),
	pin("SET SESSION CHARACTERISTICS AS TRANSACTION READ ONLY", reasonSessionSet),
	pin("SET ROLE admin", reasonSessionSet),
	pin("SET NAMES utf8mb4", reasonSessionSet),
	pin("USE shop", reasonSessionSet),
	pr("SET LOCAL search_path = x", reasonSetLocal),
	pr("SET TRANSACTION ISOLATION LEVEL SERIALIZABLE", reasonTransaction),
	pr("SET CONSTRAINTS ALL DEFERRED", reasonTransaction),
	pin("RESET search_path", reasonSessionReset),
	pin("RESET ALL", reasonSessionReset),
	pin("DISCARD ALL", reasonSessionReset),
	pin("LISTEN orders", reasonSessionListen),
	pin("UNLISTEN *", reasonSessionListen),
	pin("CREATE TEMP TABLE x (a int)", reasonSessionTempTable),
	pin("CREATE TEMPORARY TABLE x AS SELECT 1", reasonSessionTempTable),
	pin("CREATE GLOBAL TEMPORARY TABLE x (a int)", reasonSessionTempTable),
	pin("create local temp table x (a int)", reasonSessionTempTable),
	pin("CREATE OR REPLACE TEMP VIEW v AS SELECT 1", reasonSessionTempTable),
	pin("CREATE TABLE pg_temp.x (a int)", reasonSessionTempTable),
	pin("PREPARE q (int) AS SELECT $1", reasonSessionPrepare),
	pin("DEALLOCATE q", reasonSessionPrepare),
	pin("DECLARE c CURSOR WITH HOLD FOR SELECT * FROM t", reasonSessionCursor),
	pin("LOAD 'auto_explain'", reasonSessionLoad),
	pin("LOCK TABLES t WRITE", reasonSessionLock),
	pin("UNLOCK TABLES", reasonSessionLock),
	// Transaction control.
	pr("BEGIN", reasonTransaction),
	pr("BEGIN ISOLATION LEVEL REPEATABLE READ", reasonTransaction),
	pr("START TRANSACTION READ ONLY", reasonTransaction),
	pr("COMMIT", reasonTransaction),
	pr("END", reasonTransaction),
	pr("ROLLBACK TO SAVEPOINT a", reasonTransaction),
	pr("SAVEPOINT a", reasonTransaction),
	pr("RELEASE SAVEPOINT a", reasonTransaction),
	pr("PREPARE TRANSACTION 'x'", reasonTransaction),
	pr("COMMIT PREPARED 'x'", reasonTransaction),
	// Several statements.
	pr("SELECT 1; DELETE FROM t", reasonMultiple),
	pr("SELECT 1; SELECT 2", reasonMultiple),
	pin("SELECT (1; 2)", reasonMultiple), // "2)" is an unknown statement
	{q: "SELECT 1; SET a = 1", session: true, reason: reasonMultiple},
	{q: "BEGIN; CREATE TEMP TABLE x (a int); COMMIT", session: true, reason: reasonMultiple},
	// Empty.
	pr("", reasonEmpty),
	pr("   \n\t ", reasonEmpty),
	pr("-- only a comment", reasonEmpty),
	pr("/* only */ /* comments */ ;", reasonEmpty),
	pr(";;", reasonEmpty),
	// Unknown, unparseable.
	pr("SELECT 'unterminated", reasonUnknown),
	pr(`SELECT "unterminated`, reasonUnknown),
	pr("SELECT 1 /* unterminated", reasonUnknown),
	pr("SELECT 1 /* nested /* once */", reasonUnknown),
	pr("SELECT $$ unterminated", reasonUnknown),
	pr("SELECT $a$ x $b$", reasonUnknown),
	pr("SELECT 1 \x00", reasonUnknown),
	pin("FROBNICATE t", reasonUnknown),
	pin("42", reasonUnknown),
	pin("'SELECT 1'", reasonUnknown),
	pin("(", reasonUnknown),
	// Readings other than PostgreSQL's default are checked too.
	rd(`SELECT * FROM t WHERE name LIKE 'a\_b%'`),
	pr(`SELECT 'it\'s'`, reasonUnknown),    // MySQL (or standard_conforming_strings=off) only: does not lex as PostgreSQL
	rd("SELECT `id`, `name` FROM `users`"), // MySQL identifiers
	rd("SELECT 1 # a MySQL comment"),       // '#': an operator to PostgreSQL, a comment to MySQL
	pr(`SELECT 'a\'' , nextval('s') --'`, reasonSideEffectPrefix+"nextval"),
	pr(`SELECT "a\"" , pg_advisory_xact_lock(1) -- "`, reasonSideEffectPrefix+"pg_advisory_xact_lock"),
	pr("SELECT 1 /*! , nextval(1) */", reasonSideEffectPrefix+"nextval"),
	pin("SELECT 1 /* /* */ ; DELETE FROM t; /* */ */", reasonMultiple), // MySQL: "*/" is an unknown statement
	pr("SELECT 1 # '\n; DELETE FROM t; -- '", reasonMultiple),
	rd("SELECT $$ ', nextval('s') -- $$"), // dollar quotes: PostgreSQL, no MySQL reading
	rd("--leading comment\nSELECT 1 --, nextval('s')\n"),
	{q: `SELECT 'a\'' ; SET x = 1 --'`, session: true, reason: reasonMultiple},
	// Too long to read.
	{q: "SELECT '" + strings.Repeat("x", maxClassifyLen) + "'", session: true, reason: reasonTooLong},
}

func TestClassify(t *testing.T) {
	t.Parallel()
	if len(classifyCases) < 80 {
		t.Fatalf("only %d cases", len(classifyCases))
	}
	seen := map[string]bool{}
	for _, c := range classifyCases {
		if seen[c.q] {
			t.Errorf("duplicate case %q", c.q)
		}
		seen[c.q] = true
		name := c.q
		if len(name) > 60 {
			name = name[:60]
		}
		t.Run(name, func(t *testing.T) {
			got := classify(c.q)
			want := statement{readOnly: c.ro, sessionState: c.session, reason: c.reason, forcePrimary: c.reason == reasonHint}
			if got != want {
				t.Errorf("classify(%q)\n got %+v\nwant %+v", c.q, got, want)
			}
		})
	}
}

// TestClassifyReadOnlyImpliesNothingElse pins the shape of a read verdict
// the router relies on.
func TestClassifyReadOnlyImpliesNothingElse(t *testing.T) {
	t.Parallel()
	for _, c := range classifyCases {
		got := classify(c.q)
		if got.readOnly && (got.forcePrimary || got.sessionState || got.reason != reasonRead) {
			t.Errorf("classify(%q) = %+v: a read must be nothing else", c.q, got)
		}
		if !got.readOnly && got.reason == reasonRead {
			t.Errorf("classify(%q) = %+v: reason read on the primary", c.q, got)
		}
	}
}

// TestClassifyCaps checks that a text just under the cap is still read.
func TestClassifyCaps(t *testing.T) {
	t.Parallel()
	long := "SELECT '" + strings.Repeat("x", maxClassifyLen-10) + "'"
	if got := classify(long); !got.readOnly {
		t.Errorf("a %d-byte SELECT: %+v", len(long), got)
	}
	long = "SELECT 1 " + strings.Repeat("; ", (maxClassifyLen-30)/2) + "DELETE FROM t"
	if got := classify(long); got.readOnly || got.reason != reasonMultiple {
		t.Errorf("a %d-byte SELECT ; … ; DELETE: %+v", len(long), got)
	}
	nested := strings.Repeat("set_config(", 10000) + "'a', 'b', true" + strings.Repeat(", 'x', true)", 10000)
	if got := classify("SELECT " + nested); !got.sessionState {
		t.Errorf("deeply nested set_config calls: %+v, want pinned (more than %d calls read)", got, maxSetConfigScans)
	}
}

// TestSideEffectTable checks that every function in the table is found,
// in any case and however it is called.
func TestSideEffectTable(t *testing.T) {
	t.Parallel()
	for _, f := range sideEffectFuncs {
		for _, q := range []string{
			"SELECT " + f.name + "(1)",
			"SELECT " + strings.ToUpper(f.name) + " (1)",
			"SELECT x FROM t WHERE y = pg_catalog." + f.name + "\n(1)",
			`SELECT "` + f.name + `"(1)`,
		} {
			got := classify(q)
			if got.readOnly {
				t.Errorf("classify(%q) = %+v, want the primary", q, got)
			}
			if want := f.reason; !f.session && f.localArg == 0 && !f.argSession && got.reason != want {
				t.Errorf("classify(%q).reason = %q, want %q", q, got.reason, want)
			}
			if (f.session || f.argSession) && (!got.sessionState || got.reason != f.sessionReason) {
				t.Errorf("classify(%q) = %+v, want pinned with %q", q, got, f.sessionReason)
			}
		}
	}
}

// TestLexerTokens checks token boundaries on the tricky literals.
func TestLexerTokens(t *testing.T) {
	t.Parallel()
	tests := []struct {
		src   string
		mode  lexMode
		kinds []tokenKind
		texts []string
	}{
		{"SELECT a.b, $1, ? FROM t;", modePG,
			[]tokenKind{tkWord, tkWord, tkDot, tkWord, tkComma, tkParam, tkComma, tkParam, tkWord, tkWord, tkSemicolon},
			[]string{"SELECT", "a", ".", "b", ",", "$1", ",", "?", "FROM", "t", ";"}},
		{`E'a\'b' 'c''d' "e""f" $$g$$ $t$h$t$ U&"i" x'1F'`, modePG,
			[]tokenKind{tkString, tkString, tkQuotedIdent, tkString, tkString, tkQuotedIdent, tkString},
			[]string{`E'a\'b'`, `'c''d'`, `"e""f"`, "$$g$$", "$t$h$t$", `U&"i"`, "x'1F'"}},
		{"1.5e-3 .5 1into 1_000 a$b$", modePG,
			[]tokenKind{tkNumber, tkNumber, tkNumber, tkWord, tkNumber, tkWord},
			[]string{"1.5e-3", ".5", "1", "into", "1_000", "a$b$"}},
		{"a /* x /* y */ z */ b -- c\nd", modePG,
			[]tokenKind{tkWord, tkWord, tkWord},
			[]string{"a", "b", "d"}},
		{`'a\'' b`, modeMySQL,
			[]tokenKind{tkString, tkWord},
			[]string{`'a\''`, "b"}},
		{"`a``b` # c\nd --e f\ng -- h\ni /* j */ k /*!50000 l */", modeMySQL,
			// "--e": two minus signs to MySQL; "-- h": a comment.
			[]tokenKind{tkQuotedIdent, tkWord, tkOp, tkOp, tkWord, tkWord, tkWord, tkWord, tkWord, tkWord, tkOp, tkOp},
			[]string{"`a``b`", "d", "-", "-", "e", "f", "g", "i", "k", "l", "*", "/"}},
		{`'a\' b "c\" d`, modeMySQLNoBackslash,
			[]tokenKind{tkString, tkWord, tkQuotedIdent, tkWord},
			[]string{`'a\'`, "b", `"c\"`, "d"}},
	}
	for _, tc := range tests {
		l := newLexer(tc.src, tc.mode)
		var kinds []tokenKind
		var texts []string
		for {
			tok := l.next()
			if tok.kind == tkEOF || tok.kind == tkError {
				if tok.kind == tkError {
					t.Errorf("%q: error token at %d", tc.src, tok.start)
				}
				break
			}
			kinds = append(kinds, tok.kind)
			texts = append(texts, tc.src[tok.start:tok.end])
		}
		if strings.Join(texts, "|") != strings.Join(tc.texts, "|") {
			t.Errorf("%q: tokens %q, want %q", tc.src, texts, tc.texts)
		}
		if len(kinds) != len(tc.kinds) {
			t.Errorf("%q: kinds %v, want %v (tokens %q)", tc.src, kinds, tc.kinds, texts)
			continue
		}
		for i := range kinds {
			if kinds[i] != tc.kinds[i] {
				t.Errorf("%q: token %d (%q) kind %d, want %d", tc.src, i, texts[i], kinds[i], tc.kinds[i])
			}
		}
	}
}

// TestClassifyDoesNotAllocate: classify runs on every query.
func TestClassifyDoesNotAllocate(t *testing.T) {
	for _, q := range []string{
		"SELECT 1",
		"SELECT id, name FROM users WHERE tenant = $1 AND email = $2 ORDER BY id LIMIT 20",
		"INSERT INTO t (a, b) VALUES ($1, $2) RETURNING id",
		"WITH x AS (SELECT * FROM t WHERE a = 'q''s') SELECT count(*) FROM x FOR UPDATE",
		"/* canary:primary */ SELECT set_config('a', 'b', true)",
		`SELECT * FROM t WHERE name LIKE 'a\_%' AND data #>> '{a}' = $$x$$`, // three readings
		"SET search_path = x; LISTEN y",
	} {
		if n := testing.AllocsPerRun(100, func() { classify(q) }); n != 0 {
			t.Errorf("classify(%q): %v allocations per call, want 0", q, n)
		}
	}
}

func BenchmarkClassify(b *testing.B) {
	for _, bc := range []struct{ name, q string }{
		{"select1", "SELECT 1"},
		{"typical_read", "SELECT u.id, u.name, o.total FROM users u JOIN orders o ON o.user_id = u.id WHERE u.tenant_id = $1 AND o.created_at > $2 ORDER BY o.created_at DESC LIMIT 50"},
		{"insert_returning", "INSERT INTO orders (user_id, total, note) VALUES ($1, $2, 'it''s') RETURNING id"},
		{"cte", "WITH recent AS (SELECT * FROM orders WHERE created_at > now() - interval '1 day') SELECT user_id, sum(total) FROM recent GROUP BY user_id"},
		{"ambiguous_3_readings", `SELECT * FROM t WHERE name LIKE 'a\_%' AND data #>> '{a}' = $1`},
	} {
		b.Run(bc.name, func(b *testing.B) {
			b.ReportAllocs()
			b.SetBytes(int64(len(bc.q)))
			for b.Loop() {
				classify(bc.q)
			}
		})
	}
}

// TestClassifyAgreesWithReplica runs statements on the real streaming
// replica: every statement classified read-only must run there, and every
// statement classified for the primary that the primary runs must be refused
// by the replica. It proves the rules against the server, not against our
// own reading of the documentation.
func TestClassifyAgreesWithReplica(t *testing.T) {
	primary := openTestDB(t, testenv.PGPrimary(t))
	replica := openTestDB(t, testenv.PGReplica(t))
	lockReplica(t) // the replica must replay the fixture
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	setupClassifyFixture(ctx, t, primary, replica)

	reads := []string{
		"SELECT 1",
		"SeLeCt * FrOm t WHERE id = 1",
		"VALUES (1), (2)",
		"TABLE t",
		"SHOW search_path",
		"(SELECT 1)",
		"((SELECT a FROM t) UNION (SELECT id FROM t))",
		"WITH x AS (SELECT 1) SELECT * FROM x",
		"WITH RECURSIVE r(n) AS (SELECT 1 UNION ALL SELECT n+1 FROM r WHERE n < 10) SELECT * FROM r",
		"SELECT * FROM t ORDER BY id FETCH NEXT 10 ROWS ONLY",
		"SELECT data #>> '{a}', 1 # 3 FROM t",
		"SELECT 'nextval(''s'')' FROM t",
		`SELECT a AS "for update" FROM t`,
		"select * from t -- for update",
		"SELECT $$ update t set a = 1; $$",
		`SELECT E'it\'s ; delete from t'`,
		`SELECT * FROM t WHERE name LIKE 'a\_b%'`,
		"SELECT nextval FROM (SELECT 1 AS nextval) x",
		"SELECT pg_is_in_recovery(), pg_last_wal_replay_lsn(), now()",
		"EXPLAIN SELECT * FROM t",
		"EXPLAIN DELETE FROM t",
		"EXPLAIN INSERT INTO t VALUES (1)",
		"EXPLAIN (ANALYZE, COSTS OFF) SELECT * FROM t",
	}
	for _, q := range reads {
		if st := classify(q); !st.readOnly {
			t.Errorf("classify(%q) = %+v, want read-only", q, st)
		}
		if err := runRolledBack(ctx, replica, q); err != nil {
			t.Errorf("replica refused %q, classified read-only: %v", q, err)
		}
	}

	writes := []string{
		"INSERT INTO t VALUES (1000, 1, 'x', '{}')",
		"insert into t (id) values (1001) returning id",
		"UPDATE t SET a = 1",
		"DELETE FROM t",
		"MERGE INTO t USING (SELECT 1 AS id) s ON t.id = s.id WHEN MATCHED THEN DELETE",
		"WITH x AS (DELETE FROM t RETURNING *) SELECT * FROM x",
		"SELECT * FROM t FOR UPDATE",
		"SELECT * FROM t FOR\nNO KEY UPDATE",
		"SELECT * FROM t FOR SHARE",
		"SELECT * FROM t FOR KEY SHARE",
		"SELECT * INTO t2 FROM t",
		"SELECT nextval('s')",
		"select pg_catalog.nextval ('s')",
		"SELECT setval('s', 10)",
		"SELECT txid_current()",
		"SELECT pg_current_xact_id()",
		"SELECT pg_current_wal_lsn()",
		"SELECT pg_current_wal_insert_lsn()",
		"SELECT pg_notify('dbwrap_classify', 'x')",
		"explain analyze delete from t",
		"CREATE TABLE t3 (a int)",
		"CREATE TEMP TABLE tt (a int)",
		"TRUNCATE t",
		"LISTEN dbwrap_classify",
		"LOCK TABLE t IN ACCESS EXCLUSIVE MODE",
	}
	for _, q := range writes {
		if st := classify(q); st.readOnly {
			t.Errorf("classify(%q) = %+v, want the primary", q, st)
		}
		if err := runRolledBack(ctx, primary, q); err != nil {
			t.Errorf("primary refused %q (the test statement is wrong): %v", q, err)
			continue
		}
		err := runRolledBack(ctx, replica, q)
		var pgErr *pgconn.PgError
		switch {
		case err == nil:
			t.Errorf("replica ran %q: the classifier is right to send it to the primary, but this test expects a refusal", q)
		case !errors.As(err, &pgErr) || (pgErr.Code != "25006" && pgErr.Code != "55000"):
			t.Errorf("replica refused %q with %v, want SQLSTATE 25006 or 55000", q, err)
		}
	}
}

func openTestDB(t *testing.T, dsn string) *sql.DB {
	t.Helper()
	db, err := sql.Open("pgx", dsn)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

// runRolledBack runs q in a transaction with the fixture schema first in
// the search path, reads every row, and rolls back.
func runRolledBack(ctx context.Context, db *sql.DB, q string) error {
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer tx.Rollback()
	if _, err := tx.ExecContext(ctx, "SET LOCAL search_path TO dbwrap_classify, public"); err != nil {
		return err
	}
	rows, err := tx.QueryContext(ctx, q)
	if err != nil {
		return err
	}
	for rows.Next() {
	}
	if err := rows.Close(); err != nil {
		return err
	}
	return rows.Err()
}

// setupClassifyFixture creates schema dbwrap_classify (a table t and a
// sequence s) on the primary and waits until the replica has replayed it.
func setupClassifyFixture(ctx context.Context, t *testing.T, primary, replica *sql.DB) {
	t.Helper()
	for _, q := range []string{
		"CREATE SCHEMA IF NOT EXISTS dbwrap_classify",
		"CREATE TABLE IF NOT EXISTS dbwrap_classify.t (id int PRIMARY KEY, a int, name text, data jsonb)",
		"CREATE SEQUENCE IF NOT EXISTS dbwrap_classify.s",
	} {
		if _, err := primary.ExecContext(ctx, q); err != nil {
			var pgErr *pgconn.PgError
			if !errors.As(err, &pgErr) || pgErr.Code != "23505" { // a concurrent run created it
				t.Fatalf("fixture %q: %v", q, err)
			}
		}
	}
	var lsn string
	if err := primary.QueryRowContext(ctx, "SELECT pg_current_wal_lsn()::text").Scan(&lsn); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(time.Minute)
	for {
		var caughtUp bool
		err := replica.QueryRowContext(ctx, "SELECT pg_last_wal_replay_lsn() >= $1::pg_lsn AND to_regclass('dbwrap_classify.t') IS NOT NULL", lsn).Scan(&caughtUp)
		if err != nil {
			t.Fatal(err)
		}
		if caughtUp {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("the replica did not replay %s within a minute (is replay paused by another test?)", lsn)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
