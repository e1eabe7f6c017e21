package dbwrap

import (
	"strings"
	"testing"
)

// FuzzClassify checks that classify never panics and that its verdicts keep
// the properties the router relies on, whatever the text.
func FuzzClassify(f *testing.F) {
	for _, c := range classifyCases {
		if len(c.q) < 4096 {
			f.Add(c.q)
		}
	}
	f.Fuzz(func(t *testing.T, q string) {
		got := classify(q)
		if again := classify(q); again != got {
			t.Fatalf("classify(%q) not deterministic: %+v then %+v", q, got, again)
		}
		checkShape(t, q, got)

		// The lexer always moves forward and stays inside the text.
		checkLexer(t, q)

		if len(q) > maxClassifyLen-64 {
			return
		}
		// A hint comment forces the primary, wherever it is; the session
		// verdict does not depend on it.
		hinted := classify("/* canary:primary */ " + q)
		if !hinted.forcePrimary || hinted.readOnly || hinted.reason != reasonHint {
			t.Fatalf("hint before %q: %+v", q, hinted)
		}
		if lexesAs(q, modePG) {
			hinted = classify(q + "\n-- Canary : Primary")
			if !hinted.forcePrimary || hinted.readOnly {
				t.Fatalf("hint after %q: %+v", q, hinted)
			}
		}

		if got.readOnly {
			// Another statement after a read makes it not a read.
			if more := classify(q + "\n; DELETE FROM t"); more.readOnly {
				t.Fatalf("classify(%q + DELETE) = %+v", q, more)
			}
			// A read stays a read inside parentheses and after a comment.
			if c := classify("/* c */ " + q); !c.readOnly {
				t.Fatalf("classify(comment + %q) = %+v, want read", q, c)
			}
		}

		// Keywords are case-insensitive: changing the case of ASCII text
		// changes nothing (but dollar-quote tags are case-sensitive).
		if isASCII(q) && !strings.Contains(q, "$") {
			for _, v := range []string{strings.ToUpper(q), strings.ToLower(q)} {
				if c := classify(v); c != got {
					t.Fatalf("classify(%q) = %+v but classify(%q) = %+v", q, got, v, c)
				}
			}
		}

		// A data-modifying keyword or a side-effecting call outside strings,
		// identifiers and comments is never a read (unless only EXPLAINed).
		if got.readOnly {
			if word, ok := writeToken(q); ok {
				t.Fatalf("classify(%q) = %+v though it holds %q", q, got, word)
			}
		}
	})
}

// checkShape checks the fields of a verdict against each other.
func checkShape(t *testing.T, q string, st statement) {
	t.Helper()
	switch {
	case st.readOnly && (st.forcePrimary || st.sessionState || st.reason != reasonRead):
		t.Fatalf("classify(%q) = %+v: a read is nothing else", q, st)
	case !st.readOnly && st.reason == reasonRead:
		t.Fatalf("classify(%q) = %+v: reason read for the primary", q, st)
	case st.forcePrimary != (st.reason == reasonHint):
		t.Fatalf("classify(%q) = %+v: forcePrimary without reason hint", q, st)
	case !knownReason(st.reason):
		t.Fatalf("classify(%q) = %+v: undocumented reason", q, st)
	}
}

var documentedReasons = []string{
	reasonRead, reasonWrite, reasonReturning, reasonDataModifyingCTE, reasonLockingClause,
	reasonSelectInto, reasonHint, reasonDDL, reasonUtility, reasonTransaction, reasonSetLocal,
	reasonSessionSet, reasonSessionReset, reasonSessionListen, reasonSessionTempTable,
	reasonSessionAdvisory, reasonSessionPrepare, reasonSessionCursor, reasonSessionLoad,
	reasonSessionLock, reasonSessionFoundRows, reasonSessionDblink, reasonEmpty, reasonMultiple, reasonUnknown, reasonTooLong,
}

func knownReason(r string) bool {
	for _, d := range documentedReasons {
		if r == d {
			return true
		}
	}
	if name, ok := strings.CutPrefix(r, reasonSideEffectPrefix); ok {
		_, found := lookupFunc(name)
		return found
	}
	return false
}

// checkLexer lexes q in every mode and checks that tokens move forward and
// stay inside q.
func checkLexer(t *testing.T, q string) {
	t.Helper()
	for _, mode := range []lexMode{modePG, modePGBackslash, modeMySQL, modeMySQLNoBackslash} {
		l := newLexer(q, mode)
		last := 0
		for n := 0; ; n++ {
			tok := l.next()
			start, end := int(tok.start), int(tok.end)
			if start < last || end < start || end > len(q) || l.pos > len(q) {
				t.Fatalf("mode %d, %q: token %+v after offset %d", mode, q, tok, last)
			}
			if tok.kind == tkEOF || tok.kind == tkError {
				break
			}
			if end == start || n > len(q) {
				t.Fatalf("mode %d, %q: no progress at %d", mode, q, start)
			}
			last = end
		}
	}
}

// lexesAs reports whether q lexes without error in mode.
func lexesAs(q string, mode lexMode) bool {
	l := newLexer(q, mode)
	for {
		switch l.next().kind {
		case tkEOF:
			return true
		case tkError:
			return false
		}
	}
}

// writeToken returns a data-modifying keyword or a side-effecting call
// found among q's PostgreSQL tokens, checked independently of the parser:
// any INSERT/UPDATE/DELETE/MERGE word not after '.', or a name from the
// side-effect table followed by '('. Texts that mention EXPLAIN/DESCRIBE,
// or do not lex, are skipped.
func writeToken(q string) (string, bool) { return writeTokenIn(q, modePG) }

// writeTokenIn is writeToken reading q in mode.
func writeTokenIn(q string, mode lexMode) (string, bool) {
	l := newLexer(q, mode)
	var prev token
	found := ""
	for {
		tok := l.next()
		switch tok.kind {
		case tkEOF:
			return found, found != ""
		case tkError:
			return "", false
		case tkWord:
			w := strings.ToLower(q[tok.start:tok.end])
			switch w {
			case "explain", "describe", "desc":
				return "", false
			case "insert", "update", "delete", "merge":
				if prev.kind != tkDot && found == "" {
					found = w
				}
			}
		case tkLParen:
			if prev.kind == tkWord {
				if _, ok := lookupFunc(q[prev.start:prev.end]); ok && found == "" {
					found = q[prev.start:prev.end] + "("
				}
			}
		}
		prev = tok
	}
}

func isASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] >= 0x80 {
			return false
		}
	}
	return true
}
