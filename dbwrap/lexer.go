package dbwrap

import "strings"

// This file holds the SQL lexer behind classify. It never allocates: tokens
// are byte ranges of the query, and the lexer is a small value that can be
// copied to look ahead.

// tokenKind is the class of one lexical token.
type tokenKind uint8

const (
	tkEOF         tokenKind = iota
	tkWord                  // unquoted identifier or keyword
	tkQuotedIdent           // "ident", `ident` (MySQL), U&"ident"
	tkString                // 'x', E'x', B'x', X'x', U&'x', $tag$x$tag$
	tkNumber                // 1, 1.5, .5e-3
	tkParam                 // $1, ?
	tkOp                    // any other single character: operators, '::', '[', ...
	tkLParen
	tkRParen
	tkComma
	tkSemicolon
	tkDot
	tkError // unterminated string, identifier or comment; a NUL byte
)

// token is one lexical token: src[start:end]. Offsets are int32 to keep the
// token small (it is copied for every token); classify reads at most
// maxClassifyLen bytes.
type token struct {
	start, end int32
	kind       tokenKind
	uescape    bool // U&"..." identifier: the name may hide escaped characters
}

func mkToken(kind tokenKind, start, end int) token {
	return token{start: int32(start), end: int32(end), kind: kind}
}

// body returns the name inside a quoted identifier token.
func (t token) body(src string) string {
	from := t.start + 1
	if t.uescape {
		from = t.start + 3 // U&"
	}
	return src[from : t.end-1]
}

// lexMode selects one lexical interpretation of the query text.
type lexMode uint8

const (
	// modePG is PostgreSQL with standard_conforming_strings=on (the default
	// since 9.1): backslash is an ordinary character in '...' strings.
	modePG lexMode = iota
	// modePGBackslash is PostgreSQL with standard_conforming_strings=off:
	// backslash escapes in '...' strings.
	modePGBackslash
	// modeMySQL is MySQL/MariaDB: backslash escapes in '...' and "...",
	// backtick identifiers, '#' comments, "-- " comments (the dashes followed
	// by a blank or a control character), non-nesting /* */ comments whose
	// /*! form is code, no dollar quoting ('$' is an identifier character).
	modeMySQL
	// modeMySQLNoBackslash is MySQL/MariaDB with sql_mode
	// NO_BACKSLASH_ESCAPES: backslash is an ordinary character in '...' and
	// "...".
	modeMySQLNoBackslash
)

// mysql reports whether the mode is one of MySQL's.
func (m lexMode) mysql() bool { return m >= modeMySQL }

// ambiguity flags record constructs met while lexing in modePG whose meaning
// differs in another mode, so classify knows which other readings to check.
const (
	ambBackslashString uint8 = 1 << iota // a backslash inside a '...' string: re-read with modePGBackslash and modeMySQL (in modeMySQL: inside '...' or "...", re-read with modeMySQLNoBackslash)
	ambMySQL                             // '#', backtick, /*!, nested /*, backslash in "...": re-read with modeMySQL
	// pgOnly marks a dollar-quoted string: MySQL has none, so the text is
	// PostgreSQL and is not re-read with modeMySQL (which would take the
	// string's body for code).
	pgOnly
)

// lexer splits a query into tokens. The zero value is not usable; use newLexer.
type lexer struct {
	src  string
	pos  int
	mode lexMode
	// hint is set once a comment holding a routing hint has been skipped.
	hint bool
	// amb collects ambiguity flags (modePG and modeMySQL).
	amb uint8
}

func newLexer(src string, mode lexMode) lexer {
	return lexer{src: src, mode: mode}
}

// Character classes, looked up in one table.
const (
	chSpace      = 1 << iota // blank: ' ', \t, \n, \r, \f, \v
	chIdentStart             // letter, '_', any byte >= 0x80
	chIdentCont              // identifier start, digit, '$'
	chDigit                  // '0'…'9'
)

var charClass = func() (t [256]uint8) {
	for _, c := range " \t\n\r\f\v" {
		t[c] |= chSpace
	}
	for c := 0; c < 256; c++ {
		if c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c == '_' || c >= 0x80 {
			t[c] |= chIdentStart | chIdentCont
		}
		if c >= '0' && c <= '9' {
			t[c] |= chDigit | chIdentCont
		}
	}
	t['$'] |= chIdentCont
	return t
}()

func isIdentStart(c byte) bool { return charClass[c]&chIdentStart != 0 }
func isIdentCont(c byte) bool  { return charClass[c]&chIdentCont != 0 }
func isDigit(c byte) bool      { return charClass[c]&chDigit != 0 }
func isSpace(c byte) bool      { return charClass[c]&chSpace != 0 }

// next returns the next token, skipping white space and comments (and
// noting routing hints found in comments).
func (l *lexer) next() token {
	src := l.src
	for {
		i := l.pos
		for i < len(src) && isSpace(src[i]) {
			i++
		}
		l.pos = i
		if i >= len(src) {
			break
		}
		c := src[i]
		if c != '-' && c != '/' && c != '#' {
			return l.scanToken()
		}
		switch {
		case c == '-' && l.pos+1 < len(src) && src[l.pos+1] == '-' &&
			(!l.mode.mysql() || l.pos+2 >= len(src) || src[l.pos+2] <= ' '):
			// A comment in every mode; MySQL wants a blank or a control
			// character after the dashes, and reads "--x" as two minus
			// signs. (When a PostgreSQL text is also read as MySQL, the
			// PostgreSQL reading sees the comment.)
			l.lineComment(l.pos + 2)
			continue
		case c == '#' && l.mode.mysql():
			l.lineComment(l.pos + 1)
			continue
		case c == '/' && l.pos+1 < len(src) && src[l.pos+1] == '*':
			if l.mode.mysql() {
				if t, ok := l.mysqlBlockComment(); !ok {
					return t
				}
				continue
			}
			if !l.pgBlockComment() {
				return mkToken(tkError, l.pos, len(src))
			}
			continue
		}
		return l.scanToken()
	}
	return mkToken(tkEOF, len(src), len(src))
}

// lineComment skips a comment whose text starts at from and runs to the end
// of the line.
func (l *lexer) lineComment(from int) {
	end := len(l.src)
	if i := strings.IndexAny(l.src[from:], "\r\n"); i >= 0 {
		end = from + i
	}
	l.noteHint(l.src[from:end])
	l.pos = end
}

// pgBlockComment skips a nesting /* */ comment; false when unterminated.
func (l *lexer) pgBlockComment() bool {
	src := l.src
	start := l.pos
	if start+2 < len(src) && (src[start+2] == '!' || src[start+2]|0x20 == 'm' && start+3 < len(src) && src[start+3] == '!') {
		l.amb |= ambMySQL // MySQL runs the text of /*! ... */ as code
	}
	depth := 0
	i := start
	for i < len(src)-1 {
		switch {
		case src[i] == '/' && src[i+1] == '*':
			depth++
			if depth > 1 {
				l.amb |= ambMySQL // MySQL comments do not nest
			}
			i += 2
		case src[i] == '*' && src[i+1] == '/':
			depth--
			i += 2
			if depth == 0 {
				l.noteHint(src[start+2 : i-2])
				l.pos = i
				return true
			}
		default:
			i++
		}
	}
	l.noteHint(src[start+2:])
	l.pos = len(src)
	return false
}

// mysqlBlockComment skips a MySQL /* */ comment. /*!NNNNN ... */ and
// /*M!NNNNN ... */ (M in any case, to be safe) are code to MySQL/MariaDB:
// only the opener is skipped and lexing goes on inside. ok is false (with an
// error token) when unterminated.
func (l *lexer) mysqlBlockComment() (token, bool) {
	src := l.src
	start := l.pos
	body := start + 2
	if body < len(src) && src[body] == '!' || body+1 < len(src) && src[body]|0x20 == 'm' && src[body+1] == '!' {
		l.pos = strings.IndexByte(src[body:], '!') + body + 1
		for l.pos < len(src) && isDigit(src[l.pos]) {
			l.pos++
		}
		return token{}, true
	}
	i := strings.Index(src[body:], "*/")
	if i < 0 {
		l.noteHint(src[body:])
		l.pos = len(src)
		return mkToken(tkError, start, len(src)), false
	}
	l.noteHint(src[body : body+i])
	l.pos = body + i + 2
	return token{}, true
}

// scanToken lexes one token at l.pos, which is not white space or a comment.
func (l *lexer) scanToken() token {
	src := l.src
	start := l.pos
	c := src[start]
	switch {
	case c == '\'':
		return l.quoted(start, start, '\'', l.mode == modePGBackslash || l.mode == modeMySQL, tkString)
	case c == '"':
		return l.quoted(start, start, '"', l.mode == modeMySQL, tkQuotedIdent)
	case c == '`':
		if !l.mode.mysql() {
			// An operator character to PostgreSQL; MySQL quotes identifiers with it.
			l.amb |= ambMySQL
			l.pos++
			return mkToken(tkOp, start, l.pos)
		}
		return l.quoted(start, start, '`', false, tkQuotedIdent)
	case c == '$' && !l.mode.mysql():
		return l.dollar(start)
	case isIdentStart(c) || c == '$':
		return l.word(start)
	case isDigit(c) || c == '.' && start+1 < len(src) && isDigit(src[start+1]):
		return l.number(start)
	case c == 0:
		l.pos = len(src)
		return mkToken(tkError, start, len(src))
	}
	l.pos++
	t := mkToken(tkOp, start, l.pos)
	switch c {
	case '(':
		t.kind = tkLParen
	case ')':
		t.kind = tkRParen
	case ',':
		t.kind = tkComma
	case ';':
		t.kind = tkSemicolon
	case '.':
		t.kind = tkDot
	case '?':
		t.kind = tkParam
	case '#':
		l.amb |= ambMySQL // an operator to PostgreSQL, a comment to MySQL
		t.kind = tkOp
	default:
		t.kind = tkOp
	}
	return t
}

// quoted lexes a quoted string or identifier whose opening quote is at
// open (start is where the token starts, before any prefix). A doubled quote
// stands for one; with backslash, a backslash escapes the next byte.
func (l *lexer) quoted(start, open int, q byte, backslash bool, kind tokenKind) token {
	src := l.src
	i := open + 1
	for i < len(src) {
		c := src[i]
		switch {
		case c == q:
			if i+1 < len(src) && src[i+1] == q {
				i += 2
				continue
			}
			l.pos = i + 1
			return mkToken(kind, start, i+1)
		case c == '\\':
			if l.mode == modeMySQL && q != '`' {
				// NO_BACKSLASH_ESCAPES takes it as an ordinary character.
				l.amb |= ambBackslashString
			}
			if l.mode == modePG && !backslash {
				// Other readings take this backslash as an escape.
				if q == '\'' {
					l.amb |= ambBackslashString | ambMySQL
				} else {
					l.amb |= ambMySQL
				}
			}
			if backslash {
				i += 2
				continue
			}
		case c == 0:
			l.pos = len(src)
			return mkToken(tkError, start, len(src))
		}
		i++
	}
	l.pos = len(src)
	return mkToken(tkError, start, len(src))
}

// word lexes an identifier or keyword, including the prefixed literals
// E'..', B'..', X'..', N'..', U&'..' and U&"..".
func (l *lexer) word(start int) token {
	src := l.src
	i := start + 1
	for i < len(src) && isIdentCont(src[i]) {
		i++
	}
	if !l.mode.mysql() && i == start+1 && i < len(src) {
		switch src[start] | 0x20 {
		case 'e':
			if src[i] == '\'' {
				return l.quoted(start, i, '\'', true, tkString)
			}
		case 'b', 'x', 'n':
			if src[i] == '\'' {
				return l.quoted(start, i, '\'', l.mode != modePG, tkString)
			}
		case 'u':
			if i+1 < len(src) && src[i] == '&' {
				switch src[i+1] {
				case '\'':
					// Unicode escapes (\XXXX) never end the string: lexed as a standard string.
					return l.quoted(start, i+1, '\'', l.mode != modePG, tkString)
				case '"':
					t := l.quoted(start, i+1, '"', false, tkQuotedIdent)
					t.uescape = true
					return t
				}
			}
		}
	}
	l.pos = i
	return mkToken(tkWord, start, i)
}

// dollar lexes what starts with '$' in PostgreSQL: a parameter ($1), a
// dollar-quoted string ($$..$$, $tag$..$tag$), or a lone '$' operator.
func (l *lexer) dollar(start int) token {
	src := l.src
	i := start + 1
	if i < len(src) && isDigit(src[i]) {
		for i < len(src) && isDigit(src[i]) {
			i++
		}
		l.pos = i
		return mkToken(tkParam, start, i)
	}
	if i < len(src) && isIdentStart(src[i]) {
		for i < len(src) && isIdentCont(src[i]) && src[i] != '$' {
			i++
		}
	}
	if i >= len(src) || src[i] != '$' {
		l.pos = start + 1
		return mkToken(tkOp, start, start+1)
	}
	l.amb |= pgOnly
	delim := src[start : i+1]
	body := i + 1
	j := strings.Index(src[body:], delim)
	if j < 0 {
		l.pos = len(src)
		return mkToken(tkError, start, len(src))
	}
	l.pos = body + j + len(delim)
	return mkToken(tkString, start, l.pos)
}

// number lexes a numeric literal: digits (with '_' separators), a fraction,
// an exponent. Letters glued to the end are left for the next token, as
// PostgreSQL before 15 did, so "1into" still shows the keyword INTO.
func (l *lexer) number(start int) token {
	src := l.src
	i := skipDigits(src, start)
	if i < len(src) && src[i] == '.' && !(i+1 < len(src) && src[i+1] == '.') {
		i = skipDigits(src, i+1)
	}
	if i < len(src) && src[i]|0x20 == 'e' {
		j := i + 1
		if j < len(src) && (src[j] == '+' || src[j] == '-') {
			j++
		}
		if j < len(src) && isDigit(src[j]) {
			i = skipDigits(src, j)
		}
	}
	l.pos = i
	return mkToken(tkNumber, start, i)
}

// skipDigits returns the index after the digits (and '_' separators between
// digits) that start at i.
func skipDigits(src string, i int) int {
	for i < len(src) && (isDigit(src[i]) || src[i] == '_' && i+1 < len(src) && isDigit(src[i+1])) {
		i++
	}
	return i
}

// noteHint sets l.hint when comment text holds a routing hint:
// "canary:primary" (any case, blanks allowed around the colon) or pgpool's
// "NO LOAD BALANCE".
func (l *lexer) noteHint(text string) {
	if l.hint {
		return
	}
	for i := 0; i < len(text); i++ {
		if i > 0 && isIdentCont(text[i-1]) {
			continue
		}
		switch text[i] | 0x20 {
		case 'c':
			if matchHint(text[i:], "canary", ":", "primary") {
				l.hint = true
				return
			}
		case 'n':
			if matchHint(text[i:], "no", "", "load", "", "balance") {
				l.hint = true
				return
			}
		}
	}
}

// matchHint reports whether s starts with the given parts, case-insensitive,
// with optional blanks between parts; an empty part stands for required
// blanks. The last part must end the word.
func matchHint(s string, parts ...string) bool {
	i := 0
	for n, p := range parts {
		blanks := i
		for i < len(s) && isSpace(s[i]) {
			i++
		}
		if p == "" {
			if i == blanks {
				return false
			}
			continue
		}
		if n > 0 && parts[n-1] != "" && isIdentCont(p[0]) && isIdentCont(parts[n-1][len(parts[n-1])-1]) && i == blanks {
			return false // two words need a blank between them
		}
		if len(s)-i < len(p) || !eqFold(s[i:i+len(p)], p) {
			return false
		}
		i += len(p)
	}
	return i == len(s) || !isIdentCont(s[i])
}

// eqFold reports whether s equals the lower-case ASCII word lower, ignoring
// ASCII case.
func eqFold(s, lower string) bool {
	if len(s) != len(lower) {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c >= 'A' && c <= 'Z' {
			c += 'a' - 'A'
		}
		if c != lower[i] {
			return false
		}
	}
	return true
}
