package dbwrap

import (
	"strings"
	"testing"
)

// classifyMySQLCases are statements in MySQL/MariaDB syntax and what
// classifyMySQL (the MariaDB dialect's classifier) must say about them.
var classifyMySQLCases = []classifyCase{
	// Reads.
	rd("SELECT 1"),
	rd("SELECT `id`, `select`, `delete` FROM `users` WHERE `name` = ?"),
	rd("SELECT * FROM t WHERE a = 'it\\'s' AND b = \"say \\\"hi\\\"\""),
	rd("SELECT 1 # a comment, GET_LOCK('x', 1)\n"),
	rd("SELECT 1 -- a comment, GET_LOCK('x', 1)\n"),
	rd("SELECT 1 --\tcomment after a tab\n"),
	rd("SELECT SLEEP(0.01)"),
	rd("SELECT @@server_id, @@read_only, @@gtid_slave_pos"),
	rd("SELECT @x"),
	rd("SHOW SLAVE STATUS"),
	rd("SHOW TABLES"),
	rd("DESCRIBE t"),
	rd("EXPLAIN SELECT * FROM t"),
	rd("EXPLAIN FORMAT=JSON SELECT * FROM t"),
	rd("SELECT $x FROM t"), // '$' is an identifier character
	rd("WITH x AS (SELECT 1) SELECT * FROM x"),
	rd("SELECT * FROM t /* canary primary, not the hint */"),
	rd("SELECT a FROM t UNION SELECT b FROM u"),
	rd("SELECT IS_USED_LOCK('x'), IS_FREE_LOCK('y')"),
	rd("SELECT * FROM t WHERE a = 1--2"), // 1 minus -2
	// Writes.
	pr("INSERT INTO t (a) VALUES (1) ON DUPLICATE KEY UPDATE a = VALUES(a)", reasonWrite),
	pr("REPLACE INTO t VALUES (1)", reasonWrite),
	pr("REPLACE t SET a = 1", reasonWrite),
	pr("INSERT IGNORE INTO t VALUES (1)", reasonWrite),
	pr("UPDATE `t` SET `a` = 1", reasonWrite),
	pr("DELETE t1 FROM t1 JOIN t2 ON t1.id = t2.id", reasonWrite),
	pr("LOAD DATA LOCAL INFILE '/tmp/x.csv' INTO TABLE t", reasonWrite),
	pr("LOAD XML INFILE 'x.xml' INTO TABLE t", reasonWrite),
	pr("WITH x AS (SELECT 1) UPDATE t, x SET t.a = 1", reasonWrite),
	pr("SELECT 1 /*!40000 , NEXTVAL(s) */", reasonSideEffectPrefix+"nextval"),
	pr("SELECT 1 /*M!100000 FOR UPDATE */", reasonLockingClause),
	pr("/*!50000 DELETE FROM t */", reasonWrite),
	// Locking reads.
	pr("SELECT * FROM t WHERE id = 1 FOR UPDATE", reasonLockingClause),
	pr("SELECT * FROM t FOR SHARE", reasonLockingClause),
	pr("SELECT * FROM t LOCK IN SHARE MODE", reasonLockingClause),
	pr("SELECT * FROM t FOR UPDATE SKIP LOCKED", reasonLockingClause),
	// INTO.
	pr("SELECT * INTO OUTFILE '/tmp/x' FROM t", reasonSelectInto),
	pr("SELECT * FROM t INTO DUMPFILE '/tmp/x'", reasonSelectInto),
	pin("SELECT a INTO @a FROM t", reasonSessionSet),
	pin("SELECT a FROM t INTO @a", reasonSessionSet),
	// Side-effect functions.
	pin("SELECT GET_LOCK('job', 10)", reasonSessionAdvisory),
	se("SELECT RELEASE_LOCK('job')", "release_lock"),
	se("SELECT RELEASE_ALL_LOCKS()", "release_all_locks"),
	se("SELECT LAST_INSERT_ID()", "last_insert_id"),
	pin("SELECT LAST_INSERT_ID(42)", reasonSessionSet),
	se("SELECT ROW_COUNT()", "row_count"),
	se("SELECT FOUND_ROWS()", "found_rows"),
	se("SELECT NEXTVAL(s)", "nextval"),
	se("SELECT SETVAL(s, 100)", "setval"),
	se("SELECT LASTVAL(s)", "lastval"),
	se("SELECT NEXT VALUE FOR s", "nextval"),
	se("SELECT PREVIOUS VALUE FOR s", "lastval"),
	se("SELECT `nextval` (s)", "nextval"),
	// Session state.
	pin("SET @x = 1", reasonSessionSet),
	pin("SET SESSION sql_mode = 'ANSI'", reasonSessionSet),
	pin("SET NAMES utf8mb4", reasonSessionSet),
	pin("SET autocommit = 0", reasonSessionSet),
	pin("SELECT @x := 1", reasonSessionSet),
	pin("SELECT a, @n := @n + 1 FROM t", reasonSessionSet),
	pin("SELECT SQL_CALC_FOUND_ROWS * FROM t LIMIT 10", reasonSessionFoundRows),
	pin("CREATE TEMPORARY TABLE tmp (a INT)", reasonSessionTempTable),
	pin("LOCK TABLES t READ", reasonSessionLock),
	pin("UNLOCK TABLES", reasonSessionLock),
	pin("PREPARE s FROM 'SELECT 1'", reasonSessionPrepare),
	pin("DEALLOCATE PREPARE s", reasonSessionPrepare),
	pin("HANDLER t OPEN", reasonSessionCursor),
	pin("USE other_db", reasonSessionSet),
	// Transactions and utilities.
	pr("START TRANSACTION READ ONLY", reasonTransaction),
	pr("SET TRANSACTION ISOLATION LEVEL READ COMMITTED", reasonTransaction),
	pr("XA START 'x'", reasonTransaction),
	pr("CALL proc(1)", reasonUtility),
	pr("DO SLEEP(1)", reasonUtility),
	pin("DO GET_LOCK('x', 1)", reasonSessionAdvisory),
	pr("EXECUTE s", reasonUtility),
	pr("FLUSH TABLES", reasonUtility),
	pr("ALTER TABLE t ADD COLUMN b INT", reasonDDL),
	// Hints.
	hint("/* canary:primary */ SELECT 1", false),
	hint("SELECT 1 # canary:primary", false),
	hint("SELECT 1 -- canary: primary", false),
	// Strings with a backslash are also read with NO_BACKSLASH_ESCAPES.
	se(`SELECT 'a\' , NEXTVAL(s) -- '`, "nextval"),
	pr(`SELECT 'a\'' , 1 ; DELETE FROM t -- '`, reasonMultiple),
	rd(`SELECT 'C:\\dir' FROM t`),
	// Unknown and broken.
	pr("SELECT 'unterminated", reasonUnknown),
	pr("SELECT 1 /* unterminated", reasonUnknown),
	pin("CHECKSUM TABLE t", reasonUnknown),
	pr("SELECT 1; SELECT 2", reasonMultiple),
	pr("  ", reasonEmpty),
}

func TestClassifyMySQL(t *testing.T) {
	t.Parallel()
	seen := map[string]bool{}
	for _, c := range classifyMySQLCases {
		if seen[c.q] {
			t.Errorf("duplicate case %q", c.q)
		}
		seen[c.q] = true
		got := classifyMySQL(c.q)
		want := statement{readOnly: c.ro, sessionState: c.session, reason: c.reason, forcePrimary: c.reason == reasonHint}
		if got != want {
			t.Errorf("classifyMySQL(%q) = %+v, want %+v", c.q, got, want)
		}
		checkShape(t, c.q, got)
	}
}

// TestClassifyMySQLDiffers pins the texts MySQL and PostgreSQL read
// differently: the dialect decides.
func TestClassifyMySQLDiffers(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		q         string
		pg, mysql bool // readOnly
	}{
		{`SELECT 'it\'s'`, false, true},                       // does not lex as PostgreSQL
		{"SELECT a--b, GET_LOCK('x', 1) FROM t", true, false}, // MySQL: a - (-b), then a call
		{"SELECT @x := 1", true, false},                       // PostgreSQL: an operator; MySQL: an assignment
	} {
		if got := classify(c.q).readOnly; got != c.pg {
			t.Errorf("classify(%q).readOnly = %v, want %v", c.q, got, c.pg)
		}
		if got := classifyMySQL(c.q).readOnly; got != c.mysql {
			t.Errorf("classifyMySQL(%q).readOnly = %v, want %v", c.q, got, c.mysql)
		}
	}
}

// FuzzClassifyMySQL checks that classifyMySQL never panics and keeps the
// properties the router relies on.
func FuzzClassifyMySQL(f *testing.F) {
	for _, c := range classifyMySQLCases {
		f.Add(c.q)
	}
	f.Fuzz(func(t *testing.T, q string) {
		got := classifyMySQL(q)
		if again := classifyMySQL(q); again != got {
			t.Fatalf("classifyMySQL(%q) not deterministic: %+v then %+v", q, got, again)
		}
		checkShape(t, q, got)
		checkLexer(t, q)
		if len(q) > maxClassifyLen-64 {
			return
		}
		if h := classifyMySQL("/* canary:primary */ " + q); !h.forcePrimary || h.readOnly {
			t.Fatalf("hint before %q: %+v", q, h)
		}
		if got.readOnly {
			if more := classifyMySQL(q + "\n; DELETE FROM t"); more.readOnly {
				t.Fatalf("classifyMySQL(%q + DELETE) = %+v", q, more)
			}
			// Both readings of a read see no write keyword or call outside
			// strings and comments.
			for _, mode := range []lexMode{modeMySQL, modeMySQLNoBackslash} {
				if word, ok := writeTokenIn(q, mode); ok {
					t.Fatalf("classifyMySQL(%q) = %+v though it holds %q (mode %d)", q, got, word, mode)
				}
			}
		}
		if isASCII(q) {
			for _, v := range []string{strings.ToUpper(q), strings.ToLower(q)} {
				if c := classifyMySQL(v); c.readOnly != got.readOnly && !strings.ContainsAny(q, "'\"`") {
					t.Fatalf("classifyMySQL(%q) = %+v but classifyMySQL(%q) = %+v", q, got, v, c)
				}
			}
		}
	})
}
