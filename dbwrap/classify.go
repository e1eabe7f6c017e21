package dbwrap

// This file decides, for one SQL text, whether a replica may run it and
// whether it leaves per-connection session state behind. The rules are the
// "Routing rules" of docs/db-routing.md; the reasons below are part of that
// documentation and of the Explain output, so they are stable.
//
// How it works: the text is lexed (lexer.go), never matched with regular
// expressions, so strings, quoted identifiers, dollar-quoted bodies and
// comments cannot fool it. One pass reads the leading keyword of each
// statement and watches every token for the few things that make a query
// unsafe on a replica wherever they appear (a data-modifying keyword, a
// locking clause, INTO, a call of a side-effecting function). Text that does
// not lex as PostgreSQL is "unknown". When the text holds a construct that
// another reading would lex differently (a backslash in a string, '#', a
// backtick, nested or /*! comments), it is also read as PostgreSQL with
// standard_conforming_strings=off and as MySQL (unless a dollar-quoted string
// shows it is PostgreSQL); it is read-only only if every reading that lexes
// is. Nothing is allocated and the work is linear in the length of the text.
//
// For a MySQL or MariaDB server (the MariaDB dialect, or the driver name
// "mysql"), classifyMySQL reads the text as MySQL instead, and also with
// sql_mode NO_BACKSLASH_ESCAPES when a string holds a backslash.

// Reasons recorded in statement.reason.
const (
	reasonRead             = "read"                // SELECT / VALUES / TABLE / SHOW / WITH … SELECT / EXPLAIN without ANALYZE
	reasonWrite            = "write"               // INSERT / UPDATE / DELETE / MERGE (MySQL REPLACE, LOAD DATA / LOAD XML), or such a keyword elsewhere in a query
	reasonReturning        = "returning"           // a data-modifying statement with RETURNING
	reasonDataModifyingCTE = "data-modifying-cte"  // WITH x AS (INSERT/UPDATE/DELETE/MERGE …) …
	reasonLockingClause    = "locking-clause"      // FOR UPDATE / NO KEY UPDATE / SHARE / KEY SHARE, MySQL LOCK IN SHARE MODE
	reasonSelectInto       = "select-into"         // SELECT … INTO creates a table (MySQL: a file or variables)
	reasonHint             = "hint"                // a /* canary:primary */ (or pgpool /*NO LOAD BALANCE*/) comment
	reasonDDL              = "ddl"                 // CREATE / ALTER / DROP / TRUNCATE / GRANT / REVOKE / COMMENT / …
	reasonUtility          = "utility"             // COPY / CALL / DO / VACUUM / ANALYZE / LOCK / NOTIFY / cursors / EXECUTE / …
	reasonTransaction      = "transaction-control" // BEGIN / COMMIT / ROLLBACK / SAVEPOINT / SET TRANSACTION / SET CONSTRAINTS / …
	reasonSetLocal         = "set-local"           // SET LOCAL: lasts until the end of the transaction, no pinning
	reasonSessionSet       = "session:set"         // SET / SET SESSION / set_config(…, false) / setseed / MySQL USE, @var := …, INTO @var, LAST_INSERT_ID(expr)
	reasonSessionReset     = "session:reset"       // RESET / DISCARD
	reasonSessionListen    = "session:listen"      // LISTEN / UNLISTEN
	reasonSessionTempTable = "session:temp-table"  // CREATE TEMP …, SELECT … INTO TEMP, anything in schema pg_temp
	reasonSessionAdvisory  = "session:advisory-lock"
	reasonSessionPrepare   = "session:prepare"    // PREPARE / DEALLOCATE
	reasonSessionCursor    = "session:cursor"     // DECLARE … WITH HOLD, MySQL HANDLER
	reasonSessionLoad      = "session:load"       // LOAD 'library'
	reasonSessionLock      = "session:lock"       // MySQL LOCK TABLES / UNLOCK TABLES
	reasonSessionFoundRows = "session:found-rows" // MySQL SELECT SQL_CALC_FOUND_ROWS: FOUND_ROWS() reads it on the same connection
	reasonSessionDblink    = "session:dblink"     // dblink_connect
	reasonEmpty            = "empty"              // nothing but blanks, comments and semicolons
	reasonMultiple         = "multiple-statements"
	reasonUnknown          = "unknown"  // an unknown statement, or text that does not lex (unterminated string, comment …)
	reasonTooLong          = "too-long" // longer than maxClassifyLen: not read
	reasonSideEffectPrefix = "side-effect-function:"
)

// maxClassifyLen bounds the work: a longer text is not read at all and goes
// to the primary with reason "too-long", pinning the connection since its
// session effects are unknown.
const maxClassifyLen = 1 << 20

// maxSetConfigScans bounds how many set_config calls per reading get their
// is_local argument read; later ones count as session-level.
const maxSetConfigScans = 8

// statement is what the router needs to know about one SQL text.
type statement struct {
	readOnly     bool   // true only when it is certainly safe on a replica
	forcePrimary bool   // a /* canary:primary */ hint (anywhere in a comment, case-insensitive, whitespace tolerant)
	sessionState bool   // creates per-connection session state: pin the connection to the primary until reset
	reason       string // short, stable, documented reason (the reason* constants)
}

// classify tells where query may run. It is safe for concurrent use, does
// not allocate and runs in time linear in len(query).
func classify(query string) statement {
	if len(query) > maxClassifyLen {
		return statement{sessionState: true, reason: reasonTooLong}
	}
	pg := readAs(query, modePG)
	if pg.err || pg.amb&(ambBackslashString|ambMySQL) == 0 {
		return pg.final()
	}
	// The text also means something else when read another way. It is
	// read-only only if every other reading that lexes says so too (one that
	// does not lex is one its server would reject); session state found by
	// any reading pins the connection.
	res := pg
	var other [2]reading
	n := 0
	if pg.amb&ambBackslashString != 0 {
		other[n] = readAs(query, modePGBackslash)
		n++
	}
	if pg.amb&ambMySQL != 0 && pg.amb&pgOnly == 0 {
		other[n] = readAs(query, modeMySQL)
		n++
	}
	for _, o := range other[:n] {
		res.hint = res.hint || o.hint
		if o.err {
			continue
		}
		res.st.sessionState = res.st.sessionState || o.st.sessionState
		if res.st.readOnly && !o.st.readOnly {
			res.st.readOnly, res.st.reason = false, o.st.reason
		}
	}
	return res.final()
}

// classifyMySQL tells where query may run on a MySQL or MariaDB server: it
// is read as MySQL, and when a string holds a backslash, also as MySQL with
// sql_mode NO_BACKSLASH_ESCAPES (the server's mode is not known); it is
// read-only only if both readings that lex say so. Like classify, it is
// safe for concurrent use, does not allocate and runs in linear time.
func classifyMySQL(query string) statement {
	if len(query) > maxClassifyLen {
		return statement{sessionState: true, reason: reasonTooLong}
	}
	my := readAs(query, modeMySQL)
	if my.amb&ambBackslashString == 0 {
		return my.final()
	}
	other := readAs(query, modeMySQLNoBackslash)
	res := my
	if res.err {
		res = other
	} else if !other.err {
		res.hint = res.hint || other.hint
		res.st.sessionState = res.st.sessionState || other.st.sessionState
		if res.st.readOnly && !other.st.readOnly {
			res.st.readOnly, res.st.reason = false, other.st.reason
		}
	} else {
		res.hint = res.hint || other.hint
	}
	return res.final()
}

// reading is the outcome of reading a text in one lexical mode.
type reading struct {
	st   statement
	err  bool  // the text does not lex in this mode
	hint bool  // a comment holds a routing hint
	amb  uint8 // ambiguity flags (modePG only)
}

func (r reading) final() statement {
	st := r.st
	if r.err {
		st = statement{reason: reasonUnknown}
	}
	if r.hint {
		st.readOnly, st.forcePrimary, st.reason = false, true, reasonHint
	}
	return st
}

// readAs reads every statement of query in one lexical mode.
func readAs(query string, mode lexMode) reading {
	p := parser{l: newLexer(query, mode)}
	var r reading
	count := 0
	for {
		st, empty, eof := p.statement()
		if p.err {
			r.err = true
			break
		}
		if !empty {
			count++
			if count == 1 {
				r.st = st
			} else {
				r.st.sessionState = r.st.sessionState || st.sessionState
			}
		}
		if eof {
			break
		}
	}
	switch {
	case count == 0:
		r.st = statement{reason: reasonEmpty}
	case count > 1:
		r.st.readOnly, r.st.reason = false, reasonMultiple
	}
	r.hint, r.amb = p.l.hint, p.l.amb
	return r
}

// stmtKind is the class of a statement, from its leading keyword.
type stmtKind uint8

const (
	kindUnknown stmtKind = iota
	kindQuery            // SELECT, VALUES, TABLE, WITH, SHOW
	kindDML              // INSERT, UPDATE, DELETE, MERGE, REPLACE
	kindOther            // everything else that is known: reason and session from the keyword
)

// forState follows the words of a locking clause: FOR [NO KEY] UPDATE,
// FOR [KEY] SHARE.
type forState uint8

const (
	forNone forState = iota
	forFor
	forNo
	forNoKey
	forKey
)

// scan collects what one statement holds.
type scan struct {
	kind       stmtKind
	reason     string // for kindOther and kindUnknown
	session    bool   // from the leading keywords
	explain    bool   // EXPLAIN / DESCRIBE without ANALYZE: nothing runs
	withDepth  int    // paren depth of a leading WITH; -1 when none
	mainSeen   bool   // the main statement of a WITH has been met
	mainDML    bool   // … and it modifies data
	sawWith    bool   // WITH met anywhere
	dml        bool   // INSERT/UPDATE/DELETE/MERGE outside a leading position
	dmlCTE     bool   // … inside the CTE list of a WITH
	returning  bool
	locking    bool
	into       bool
	intoTemp   bool // INTO TEMP / LOCAL / GLOBAL
	intoVar    bool // MySQL INTO @var
	assignVar  bool // MySQL @var := … (a user variable set by a query)
	foundRows  bool // MySQL SQL_CALC_FOUND_ROWS
	pgTemp     bool // the word pg_temp
	hold       bool // WITH HOLD
	fnReason   string
	fnSession  bool
	fnSessReas string
	fs         forState
}

// parser reads statements from a lexer.
type parser struct {
	l        lexer
	err      bool
	setCfgs  int // set_config calls whose arguments were read
	depth    int
	prevKind tokenKind
	prevKw   keyword
	prevTok  token
}

// statement reads one statement, up to a ';' or the end. empty reports a
// statement with no tokens, eof that the text has ended.
func (p *parser) statement() (st statement, empty, eof bool) {
	s := scan{withDepth: -1}
	p.depth, p.prevKind, p.prevKw = 0, tkEOF, kwNone
	t := p.l.next()
	for t.kind == tkLParen {
		p.depth++
		t = p.l.next()
	}
	switch t.kind {
	case tkEOF:
		if p.depth > 0 { // nothing but '('
			return statement{sessionState: true, reason: reasonUnknown}, false, true
		}
		return st, true, true
	case tkSemicolon:
		if p.depth == 0 {
			return st, true, false
		}
	case tkError:
		p.err = true
		return st, false, true
	}
	t = p.head(&s, t)
	for {
		switch t.kind {
		case tkEOF, tkSemicolon:
			return s.result(), false, t.kind == tkEOF
		case tkError:
			p.err = true
			return st, false, true
		}
		p.feature(&s, t)
		t = p.l.next()
	}
}

// word returns the keyword a word token spells, kwNone for other tokens.
func (p *parser) word(t token) keyword {
	if t.kind != tkWord {
		return kwNone
	}
	return lookupKeyword(p.l.src[t.start:t.end])
}

// peekWord returns the keyword of the token after the current position
// without consuming it.
func (p *parser) peekWord() keyword {
	look := p.l
	return p.word(look.next())
}

// head reads the leading keyword(s) of a statement whose first token (after
// any opening parentheses) is t, sets the statement kind, and returns the
// next token for feature scanning.
func (p *parser) head(s *scan, t token) token {
	for {
		k := p.word(t)
		info := leadingKeywords[k]
		s.kind, s.reason, s.session = info.kind, info.reason, info.session
		switch k {
		case kwWith:
			s.withDepth, s.sawWith = p.depth, true
		case kwExplain, kwDescribe, kwDesc:
			if !p.explainOptions() {
				s.explain = true
			}
			t = p.l.next()
			for t.kind == tkLParen {
				p.depth++
				t = p.l.next()
			}
			if t.kind == tkWord {
				continue // classify what is explained
			}
			s.kind, s.reason, s.session = kindUnknown, reasonUnknown, true
			return t
		case kwCreate:
			p.create(s)
		case kwSet:
			p.set(s)
		case kwPrepare:
			if p.peekWord() == kwTransaction {
				s.reason, s.session = reasonTransaction, false // two-phase commit
			}
		case kwLock:
			if p.peekWord() == kwTables {
				s.reason, s.session = reasonSessionLock, true // MySQL: held by the session
			}
		case kwLoad:
			if w := p.peekWord(); w == kwData || w == kwXML {
				s.reason, s.session = reasonWrite, false // MySQL LOAD DATA / LOAD XML: fills a table
			}
		}
		if t.kind == tkWord {
			p.prevKind, p.prevKw, p.prevTok = tkWord, k, t
			return p.l.next()
		}
		return t // not a word: unknown, scanned for features all the same
	}
}

// explainOptions consumes the options of EXPLAIN/DESCRIBE and reports
// whether the statement is executed (ANALYZE).
func (p *parser) explainOptions() (analyze bool) {
	for {
		look := p.l
		t := look.next()
		switch {
		case t.kind == tkLParen:
			// EXPLAIN ( option [value] , … ): any mention of ANALYZE counts,
			// even ANALYZE false.
			depth := 0
			for {
				t = look.next()
				switch t.kind {
				case tkLParen:
					depth++
				case tkRParen:
					depth--
				case tkWord, tkQuotedIdent:
					if p.analyzeOption(t) {
						analyze = true
					}
				}
				if depth < 0 || t.kind == tkEOF || t.kind == tkError || t.kind == tkSemicolon {
					break
				}
			}
			if depth >= 0 {
				return analyze // unterminated: let the main loop meet the end or the error
			}
			p.l = look
		case t.kind == tkQuotedIdent:
			// Not PostgreSQL syntax without parentheses; a quoted ANALYZE
			// is taken at its word all the same.
			if !p.analyzeOption(t) {
				return analyze
			}
			analyze = true
			p.l = look
		case t.kind == tkWord:
			switch lookupKeyword(p.l.src[t.start:t.end]) {
			case kwAnalyze:
				analyze = true
			case kwVerbose, kwExtended, kwPartitions:
			case kwFormat: // MySQL: FORMAT = name
				l2 := look
				if t2 := l2.next(); t2.kind == tkOp && p.l.src[t2.start] == '=' {
					switch l2.next().kind {
					case tkWord, tkQuotedIdent, tkString:
						look = l2
					default:
						return analyze // "FORMAT =" without a name: let the main loop see what follows
					}
				}
			default:
				return analyze
			}
			p.l = look
		default:
			return analyze
		}
	}
}

// analyzeOption reports whether an EXPLAIN option token spells ANALYZE (or
// ANALYSE): the word, or a quoted identifier of that name in any case, since
// ("analyze") is the same option to PostgreSQL. A U&"…" identifier may spell
// it with escapes: it is assumed to.
func (p *parser) analyzeOption(t token) bool {
	switch t.kind {
	case tkWord:
		return lookupKeyword(p.l.src[t.start:t.end]) == kwAnalyze
	case tkQuotedIdent:
		return t.uescape || lookupKeyword(t.body(p.l.src)) == kwAnalyze
	}
	return false
}

// create refines CREATE: temporary objects are session state.
func (p *parser) create(s *scan) {
	look := p.l
	k := p.word(look.next())
	if k == kwOr { // OR REPLACE
		look.next()
		k = p.word(look.next())
	}
	if k == kwLocal || k == kwGlobal {
		k = p.word(look.next())
	}
	if k == kwTemp {
		s.reason, s.session = reasonSessionTempTable, true
	}
}

// set refines SET: transaction-scoped forms do not pin the connection.
func (p *parser) set(s *scan) {
	look := p.l
	switch p.word(look.next()) {
	case kwLocal:
		s.reason, s.session = reasonSetLocal, false
	case kwTransaction, kwConstraints:
		s.reason, s.session = reasonTransaction, false
	}
}

// feature looks at one token of a statement body.
func (p *parser) feature(s *scan, t token) {
	k := kwNone
	if t.kind == tkWord && p.prevKind != tkDot { // after '.', a word is a name
		k = lookupKeyword(p.l.src[t.start:t.end])
	}
	switch p.prevKw {
	case kwInto:
		if k == kwTemp || k == kwLocal || k == kwGlobal {
			s.intoTemp = true
		} else if t.kind == tkOp && p.l.src[t.start] == '@' {
			s.intoVar = true
		}
	case kwNext:
		if k == kwValue { // NEXT VALUE FOR seq (MariaDB, SQL Server)
			s.fnReason = reasonSideEffectPrefix + "nextval"
		}
	case kwPrevious:
		if k == kwValue {
			s.fnReason = reasonSideEffectPrefix + "lastval"
		}
	case kwWith:
		if k == kwHold {
			s.hold = true
		}
	}
	if p.l.mode.mysql() && t.kind == tkOp && p.prevKind == tkOp && p.l.src[t.start] == '=' &&
		p.l.src[p.prevTok.start] == ':' && p.prevTok.end == t.start {
		s.assignVar = true // MySQL: @var := expr sets a user variable
	}
	switch t.kind {
	case tkLParen:
		if p.prevKind == tkWord || p.prevKind == tkQuotedIdent {
			p.call(s)
		}
		p.depth++
	case tkRParen:
		p.depth--
	}
	if k != kwNone {
		p.keyword(s, k)
	} else {
		s.fs = forNone
	}
	p.prevKind, p.prevKw, p.prevTok = t.kind, k, t
}

// keyword handles a keyword met in a statement body.
func (p *parser) keyword(s *scan, k keyword) {
	fs := s.fs
	s.fs = forNone
	switch k {
	case kwFor:
		s.fs = forFor
	case kwNo:
		if fs == forFor {
			s.fs = forNo
		}
	case kwKey:
		switch fs {
		case forFor:
			s.fs = forKey
		case forNo:
			s.fs = forNoKey
		}
	case kwShare:
		if fs == forFor || fs == forKey {
			s.locking = true
		}
	case kwLock: // MySQL: LOCK IN SHARE MODE
		s.locking = true
	case kwInto:
		s.into = true
	case kwReturning:
		s.returning = true
	case kwPgTemp:
		s.pgTemp = true
	case kwSQLCalcFoundRows:
		s.foundRows = true
	case kwWith:
		s.sawWith = true
	case kwUpdate:
		if fs == forFor || fs == forNoKey {
			s.locking = true
			return
		}
		p.dml(s)
	case kwInsert, kwDelete, kwMerge:
		p.dml(s)
	case kwSelect, kwValues, kwTable:
		if s.withDepth >= 0 && p.depth == s.withDepth && !s.mainSeen {
			s.mainSeen = true
		}
	}
}

// dml records a data-modifying keyword in a statement body.
func (p *parser) dml(s *scan) {
	switch {
	case s.withDepth >= 0 && p.depth == s.withDepth && !s.mainSeen:
		s.mainSeen, s.mainDML = true, true
	case s.withDepth >= 0 && p.depth > s.withDepth && !s.mainSeen:
		s.dmlCTE = true
	default:
		s.dml = true
	}
}

// call looks up the function whose name is the token before '('.
func (p *parser) call(s *scan) {
	name := p.l.src[p.prevTok.start:p.prevTok.end]
	if p.prevKind == tkQuotedIdent {
		name = p.prevTok.body(p.l.src)
		if p.prevTok.uescape {
			// U&"…" may spell any name with escapes: assume the worst.
			if s.fnReason == "" {
				s.fnReason = reasonUnknown
			}
			return
		}
	}
	i, ok := lookupFunc(name)
	if !ok {
		return
	}
	f := &sideEffectFuncs[i]
	session := f.session
	if f.localArg > 0 {
		session = !p.argIsTrue(f.localArg)
	}
	if f.argSession {
		look := p.l
		session = look.next().kind != tkRParen
	}
	if session {
		if !s.fnSession {
			s.fnSession, s.fnSessReas = true, f.sessionReason
		}
	} else if s.fnReason == "" {
		s.fnReason = f.reason
	}
}

// argIsTrue reports whether argument n (1-based) of the call whose '(' was
// just read is the literal true (TRUE, 'true', 't', 'on', 'yes', '1'). Any
// doubt (an expression, a parameter, too many calls read) answers false.
func (p *parser) argIsTrue(n int) bool {
	if p.setCfgs >= maxSetConfigScans {
		return false
	}
	p.setCfgs++
	look := p.l
	arg, depth, tokens := 1, 0, 0
	var only token
	for {
		t := look.next()
		switch t.kind {
		case tkEOF, tkError, tkSemicolon:
			return false
		case tkLParen:
			depth++
		case tkRParen:
			depth--
		case tkComma:
			if depth == 0 {
				arg++
				continue
			}
		}
		if depth < 0 || arg > n {
			break
		}
		if arg == n {
			tokens++
			only = t
		}
	}
	if tokens != 1 {
		return false
	}
	text := p.l.src[only.start:only.end]
	switch only.kind {
	case tkWord:
		return eqFold(text, "true")
	case tkString:
		if text[0] != '\'' {
			return false
		}
		v := text[1 : len(text)-1]
		return eqFold(v, "true") || eqFold(v, "t") || eqFold(v, "on") || eqFold(v, "yes") || v == "1"
	}
	return false
}

// result turns what was collected into a statement.
func (s *scan) result() statement {
	if s.explain {
		return statement{readOnly: true, reason: reasonRead}
	}
	st := statement{sessionState: s.session, reason: s.reason}
	if s.session {
		return st
	}
	sessReason := ""
	switch {
	case s.fnSession:
		sessReason = s.fnSessReas
	case s.kind == kindQuery && (s.intoTemp || s.into && s.pgTemp):
		sessReason = reasonSessionTempTable
	case s.kind == kindQuery && (s.intoVar || s.assignVar):
		sessReason = reasonSessionSet
	case s.kind == kindQuery && s.foundRows:
		sessReason = reasonSessionFoundRows
	case s.kind == kindOther && s.reason == reasonDDL && s.pgTemp:
		sessReason = reasonSessionTempTable // CREATE TABLE pg_temp.t …
	case s.kind == kindOther && s.reason == reasonUtility && s.hold:
		sessReason = reasonSessionCursor // DECLARE … WITH HOLD
	}
	if sessReason != "" {
		return statement{sessionState: true, reason: sessReason}
	}
	switch s.kind {
	case kindDML:
		if s.returning {
			st.reason = reasonReturning
		} else {
			st.reason = reasonWrite
		}
	case kindQuery:
		switch {
		case s.dmlCTE:
			st.reason = reasonDataModifyingCTE
		case s.mainDML && s.returning:
			st.reason = reasonReturning
		case s.mainDML:
			st.reason = reasonWrite
		case s.dml && s.sawWith:
			st.reason = reasonDataModifyingCTE
		case s.dml:
			st.reason = reasonWrite
		case s.locking:
			st.reason = reasonLockingClause
		case s.into:
			st.reason = reasonSelectInto
		case s.fnReason != "":
			st.reason = s.fnReason
		default:
			st.readOnly, st.reason = true, reasonRead
		}
	}
	return st
}

// keyword is a word the classifier knows.
type keyword uint8

const (
	kwNone keyword = iota
	// Leading keywords.
	kwSelect
	kwValues
	kwTable
	kwWith
	kwShow
	kwExplain
	kwDescribe
	kwDesc
	kwInsert
	kwUpdate
	kwDelete
	kwMerge
	kwReplace
	kwSet
	kwReset
	kwDiscard
	kwListen
	kwUnlisten
	kwPrepare
	kwDeallocate
	kwDeclare
	kwLoad
	kwUse
	kwHandler
	kwLock
	kwUnlock
	kwCreate
	kwAlter
	kwDrop
	kwTruncate
	kwGrant
	kwRevoke
	kwComment
	kwSecurity
	kwReindex
	kwCluster
	kwImport
	kwRefresh
	kwRename
	kwCopy
	kwCall
	kwDo
	kwVacuum
	kwAnalyze
	kwCheckpoint
	kwNotify
	kwFetch
	kwMove
	kwClose
	kwExecute
	kwReassign
	kwOptimize
	kwFlush
	kwKill
	kwBegin
	kwStart
	kwCommit
	kwEnd
	kwRollback
	kwAbort
	kwSavepoint
	kwRelease
	kwXA
	// Words that matter after the first.
	kwFor
	kwInto
	kwReturning
	kwNext
	kwPrevious
	kwValue
	kwHold
	kwNo
	kwKey
	kwShare
	kwTemp
	kwLocal
	kwGlobal
	kwOr
	kwTransaction
	kwConstraints
	kwTables
	kwVerbose
	kwFormat
	kwExtended
	kwPartitions
	kwPgTemp
	kwData
	kwXML
	kwSQLCalcFoundRows
	kwCount // number of keywords
)

// keywordSpellings maps each spelling (lower case) to its keyword.
var keywordSpellings = map[string]keyword{
	"select": kwSelect, "values": kwValues, "table": kwTable, "with": kwWith, "show": kwShow,
	"explain": kwExplain, "describe": kwDescribe, "desc": kwDesc,
	"insert": kwInsert, "update": kwUpdate, "delete": kwDelete, "merge": kwMerge, "replace": kwReplace,
	"set": kwSet, "reset": kwReset, "discard": kwDiscard, "listen": kwListen, "unlisten": kwUnlisten,
	"prepare": kwPrepare, "deallocate": kwDeallocate, "declare": kwDeclare, "load": kwLoad, "use": kwUse,
	"handler": kwHandler, "lock": kwLock, "unlock": kwUnlock,
	"create": kwCreate, "alter": kwAlter, "drop": kwDrop, "truncate": kwTruncate, "grant": kwGrant,
	"revoke": kwRevoke, "comment": kwComment, "security": kwSecurity, "reindex": kwReindex,
	"cluster": kwCluster, "import": kwImport, "refresh": kwRefresh, "rename": kwRename,
	"copy": kwCopy, "call": kwCall, "do": kwDo, "vacuum": kwVacuum, "analyze": kwAnalyze, "analyse": kwAnalyze,
	"checkpoint": kwCheckpoint, "notify": kwNotify, "fetch": kwFetch, "move": kwMove, "close": kwClose,
	"execute": kwExecute, "reassign": kwReassign, "optimize": kwOptimize, "flush": kwFlush, "kill": kwKill,
	"begin": kwBegin, "start": kwStart, "commit": kwCommit, "end": kwEnd, "rollback": kwRollback,
	"abort": kwAbort, "savepoint": kwSavepoint, "release": kwRelease, "xa": kwXA,
	"for": kwFor, "into": kwInto, "returning": kwReturning, "next": kwNext, "previous": kwPrevious,
	"value": kwValue, "hold": kwHold, "no": kwNo, "key": kwKey, "share": kwShare,
	"temp": kwTemp, "temporary": kwTemp, "local": kwLocal, "global": kwGlobal, "or": kwOr,
	"transaction": kwTransaction, "constraints": kwConstraints, "tables": kwTables,
	"verbose": kwVerbose, "format": kwFormat, "extended": kwExtended, "partitions": kwPartitions,
	"pg_temp": kwPgTemp, "data": kwData, "xml": kwXML, "sql_calc_found_rows": kwSQLCalcFoundRows,
}

// leadingInfo says what a statement's leading keyword makes it.
type leadingInfo struct {
	kind    stmtKind
	reason  string
	session bool
}

// leadingKeywords classifies statements by their leading keyword. Keywords
// not listed (and non-keywords) make an unknown statement: primary, and the
// connection is pinned since its session effects are unknown.
var leadingKeywords = func() (t [kwCount]leadingInfo) {
	for k := range t {
		t[k] = leadingInfo{kindUnknown, reasonUnknown, true}
	}
	for _, k := range []keyword{kwSelect, kwValues, kwTable, kwWith, kwShow} {
		t[k] = leadingInfo{kind: kindQuery}
	}
	for _, k := range []keyword{kwInsert, kwUpdate, kwDelete, kwMerge, kwReplace} {
		t[k] = leadingInfo{kindDML, reasonWrite, false}
	}
	for _, k := range []keyword{kwCreate, kwAlter, kwDrop, kwTruncate, kwGrant, kwRevoke, kwComment,
		kwSecurity, kwReindex, kwCluster, kwImport, kwRefresh, kwRename} {
		t[k] = leadingInfo{kindOther, reasonDDL, false}
	}
	for _, k := range []keyword{kwCopy, kwCall, kwDo, kwVacuum, kwAnalyze, kwCheckpoint, kwNotify,
		kwFetch, kwMove, kwClose, kwExecute, kwReassign, kwOptimize, kwFlush, kwKill, kwLock, kwDeclare} {
		t[k] = leadingInfo{kindOther, reasonUtility, false}
	}
	for _, k := range []keyword{kwBegin, kwStart, kwCommit, kwEnd, kwRollback, kwAbort, kwSavepoint,
		kwRelease, kwXA} {
		t[k] = leadingInfo{kindOther, reasonTransaction, false}
	}
	t[kwSet] = leadingInfo{kindOther, reasonSessionSet, true}
	t[kwUse] = leadingInfo{kindOther, reasonSessionSet, true}
	t[kwReset] = leadingInfo{kindOther, reasonSessionReset, true}
	t[kwDiscard] = leadingInfo{kindOther, reasonSessionReset, true}
	t[kwListen] = leadingInfo{kindOther, reasonSessionListen, true}
	t[kwUnlisten] = leadingInfo{kindOther, reasonSessionListen, true}
	t[kwPrepare] = leadingInfo{kindOther, reasonSessionPrepare, true}
	t[kwDeallocate] = leadingInfo{kindOther, reasonSessionPrepare, true}
	t[kwLoad] = leadingInfo{kindOther, reasonSessionLoad, true}
	t[kwHandler] = leadingInfo{kindOther, reasonSessionCursor, true}
	t[kwUnlock] = leadingInfo{kindOther, reasonSessionLock, true}
	return t
}()

// sideEffect describes a function whose call makes a statement unsafe on a
// replica.
type sideEffect struct {
	name    string // lower case, unqualified
	session bool   // leaves state in the session: pins the connection
	// sessionReason is the reason when session is true (or may be).
	sessionReason string
	// localArg is the 1-based argument that, when the literal true, makes
	// the effect last only for the transaction (set_config's is_local).
	localArg int
	// argSession: a call with arguments sets session state (MySQL
	// LAST_INSERT_ID(expr)); without, it only reads it.
	argSession bool
	reason     string // filled in: reasonSideEffectPrefix + name
}

// sideEffectFuncs is the one table of functions that write, read or create
// session state, or fail on a standby. A call anywhere in a statement (any
// schema qualification, quoted or not, blanks or comments before '(') sends
// the statement to the primary. Functions of the users' own that write are
// not known here: a replica refuses their writes (SQLSTATE 25006) and the
// router retries them on the primary.
var sideEffectFuncs = func() []sideEffect {
	fs := []sideEffect{
		// Sequences: change them, or read this session's last value.
		{name: "nextval"}, {name: "setval"}, {name: "lastval"}, {name: "currval"},
		{name: "pg_sequence_last_value"},
		// Session-level advisory locks: held by the connection until unlocked.
		{name: "pg_advisory_lock", session: true, sessionReason: reasonSessionAdvisory},
		{name: "pg_advisory_lock_shared", session: true, sessionReason: reasonSessionAdvisory},
		{name: "pg_try_advisory_lock", session: true, sessionReason: reasonSessionAdvisory},
		{name: "pg_try_advisory_lock_shared", session: true, sessionReason: reasonSessionAdvisory},
		// Transaction-level advisory locks and unlocking: primary, no pinning.
		{name: "pg_advisory_xact_lock"}, {name: "pg_advisory_xact_lock_shared"},
		{name: "pg_try_advisory_xact_lock"}, {name: "pg_try_advisory_xact_lock_shared"},
		{name: "pg_advisory_unlock"}, {name: "pg_advisory_unlock_shared"}, {name: "pg_advisory_unlock_all"},
		// Notifications and settings.
		{name: "pg_notify"},
		{name: "set_config", sessionReason: reasonSessionSet, localArg: 3},
		{name: "setseed", session: true, sessionReason: reasonSessionSet},
		// Transaction ids and WAL positions: assign an id, or fail on a standby.
		{name: "txid_current"}, {name: "txid_current_if_assigned"},
		{name: "pg_current_xact_id"}, {name: "pg_current_xact_id_if_assigned"},
		{name: "pg_current_wal_lsn"}, {name: "pg_current_wal_insert_lsn"}, {name: "pg_current_wal_flush_lsn"},
		{name: "pg_current_xlog_location"}, {name: "pg_current_xlog_insert_location"},
		{name: "pg_current_xlog_flush_location"},
		{name: "pg_switch_wal"}, {name: "pg_switch_xlog"}, {name: "pg_create_restore_point"},
		{name: "pg_logical_emit_message"},
		{name: "pg_backup_start"}, {name: "pg_backup_stop"}, {name: "pg_start_backup"}, {name: "pg_stop_backup"},
		// Server administration.
		{name: "pg_terminate_backend"}, {name: "pg_cancel_backend"}, {name: "pg_reload_conf"},
		{name: "pg_rotate_logfile"}, {name: "pg_promote"}, {name: "pg_log_backend_memory_contexts"},
		{name: "pg_stat_reset"}, {name: "pg_stat_reset_shared"}, {name: "pg_stat_reset_single_table_counters"},
		{name: "pg_stat_reset_single_function_counters"}, {name: "pg_stat_reset_slru"},
		{name: "pg_stat_reset_replication_slot"}, {name: "pg_stat_reset_subscription_stats"},
		{name: "pg_stat_statements_reset"}, {name: "pg_import_system_collations"},
		// Replication slots and origins.
		{name: "pg_create_physical_replication_slot"}, {name: "pg_create_logical_replication_slot"},
		{name: "pg_drop_replication_slot"}, {name: "pg_copy_physical_replication_slot"},
		{name: "pg_copy_logical_replication_slot"}, {name: "pg_replication_slot_advance"},
		{name: "pg_logical_slot_get_changes"}, {name: "pg_logical_slot_get_binary_changes"},
		{name: "pg_replication_origin_create"}, {name: "pg_replication_origin_drop"},
		{name: "pg_replication_origin_advance"}, {name: "pg_replication_origin_xact_setup"},
		{name: "pg_replication_origin_session_setup", session: true, sessionReason: reasonSessionSet},
		// dblink: remote writes, and named connections kept by the session.
		{name: "dblink_exec"},
		{name: "dblink_connect", session: true, sessionReason: reasonSessionDblink},
		{name: "dblink_connect_u", session: true, sessionReason: reasonSessionDblink},
		// Large objects and server files.
		{name: "lo_create"}, {name: "lo_creat"}, {name: "lo_import"}, {name: "lo_export"},
		{name: "lo_unlink"}, {name: "lo_put"}, {name: "lo_from_bytea"}, {name: "lo_open"},
		{name: "lowrite"}, {name: "lo_truncate"}, {name: "lo_truncate64"},
		{name: "pg_file_write"}, {name: "pg_file_rename"}, {name: "pg_file_unlink"}, {name: "pg_file_sync"},
		// MySQL / MariaDB.
		{name: "get_lock", session: true, sessionReason: reasonSessionAdvisory},
		{name: "release_lock"}, {name: "release_all_locks"},
		{name: "last_insert_id", argSession: true, sessionReason: reasonSessionSet},
		{name: "row_count"}, {name: "found_rows"},
	}
	for i := range fs {
		fs[i].reason = reasonSideEffectPrefix + fs[i].name
	}
	return fs
}()

// wordIndex finds lower-case words ignoring ASCII case, by length then
// first letter, without allocating.
type wordIndex struct {
	byLen [][]wordRef
}

type wordRef struct {
	word string
	val  int
}

func (w *wordIndex) add(word string, val int) {
	for len(w.byLen) <= len(word) {
		w.byLen = append(w.byLen, nil)
	}
	w.byLen[len(word)] = append(w.byLen[len(word)], wordRef{word, val})
}

func (w *wordIndex) find(s string) (int, bool) {
	if len(s) == 0 || len(s) >= len(w.byLen) {
		return 0, false
	}
	c := s[0]
	if c >= 'A' && c <= 'Z' {
		c += 'a' - 'A'
	}
	for _, r := range w.byLen[len(s)] {
		if r.word[0] == c && eqFold(s, r.word) {
			return r.val, true
		}
	}
	return 0, false
}

var keywordIndex, funcIndex = func() (k, f wordIndex) {
	for s, kw := range keywordSpellings {
		k.add(s, int(kw))
	}
	for i, fn := range sideEffectFuncs {
		f.add(fn.name, i)
	}
	return k, f
}()

// lookupKeyword returns the keyword s spells (any case), or kwNone.
func lookupKeyword(s string) keyword {
	v, _ := keywordIndex.find(s)
	return keyword(v)
}

// lookupFunc returns the index in sideEffectFuncs of the function named s
// (any case).
func lookupFunc(s string) (int, bool) { return funcIndex.find(s) }
