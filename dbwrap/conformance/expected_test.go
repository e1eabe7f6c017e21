package conformance

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

func result(status map[string]string) *runResult { return &runResult{status: status} }

// TestCompareFlagsUnlistedAndStale checks the harness's verdicts: an
// unlisted difference fails, a listed test that passes through dbwrap fails,
// a listed parent covers its subtests, and a racy entry may pass.
func TestCompareFlagsUnlistedAndStale(t *testing.T) {
	exp, err := parseExpected(strings.NewReader(`
pq TestListed by-design reason one
pq TestStale dbwrap-bug reason two
pq TestRacy racy reason three
`), "test")
	if err != nil {
		t.Fatal(err)
	}
	bare := result(map[string]string{
		"TestListed": "pass", "TestListed/sub": "pass", "TestStale": "pass", "TestRacy": "pass",
		"TestNew": "pass", "TestGone": "pass", "TestBareFails": "fail", routingTest: "skip",
	})
	wrapped := result(map[string]string{
		"TestListed": "fail", "TestListed/sub": "fail", "TestStale": "pass", "TestRacy": "pass",
		"TestNew": "fail", "TestBareFails": "fail", routingTest: "pass",
	})
	got := strings.Join(compare("pq", bare, wrapped, exp), "\n")
	for _, want := range []string{
		"pq: TestNew passes on the bare driver but through dbwrap: fail",
		"pq: TestGone passes on the bare driver but through dbwrap: did not run",
		"expected.txt lists TestStale (dbwrap-bug) but it passes through dbwrap",
	} {
		if !strings.Contains(got, want) {
			t.Errorf("problems lack %q:\n%s", want, got)
		}
	}
	for _, notWant := range []string{"TestListed", "TestRacy", "TestBareFails"} {
		if strings.Contains(got, notWant) {
			t.Errorf("problems mention %s:\n%s", notWant, got)
		}
	}
	if n := len(compare("pq", bare, wrapped, exp)); n != 3 {
		t.Errorf("got %d problems, want 3:\n%s", n, got)
	}
	if tops := unlistedTops("pq", bare, wrapped, exp); strings.Join(tops, ",") != "TestGone,TestNew" {
		t.Errorf("unlistedTops = %v, want [TestGone TestNew]", tops)
	}
}

func TestParseExpectedRejectsBadLines(t *testing.T) {
	for line, field := range map[string]string{
		"nosuch TestX by-design why": "suite",
		"pq TestX sometimes why":     "kind",
		"pq TestX by-design":         "reason",
		"pq min-pass many":           "min-pass",
		"pq TestX":                   "want",
		"sqlx TestX racy ":           "reason",
	} {
		_, err := parseExpected(strings.NewReader(line), "expected.txt")
		if err == nil || !strings.Contains(err.Error(), field) {
			t.Errorf("%q: err = %v, want one naming %q", line, err, field)
		}
	}
}

// TestExpectedListIsDocumented checks that expected.txt parses and that
// docs/db-routing.md names every test it lists, by design or as a bug.
func TestExpectedListIsDocumented(t *testing.T) {
	exp, err := readExpected("expected.txt")
	if err != nil {
		t.Fatal(err)
	}
	doc, err := os.ReadFile(filepath.Join("..", "..", "docs", "db-routing.md"))
	if err != nil {
		t.Fatal(err)
	}
	i := strings.Index(string(doc), "## Conformance: other drivers' test suites")
	if i < 0 {
		t.Fatal(`docs/db-routing.md has no section "Conformance: other drivers' test suites"`)
	}
	section := string(doc[i:])
	for _, e := range exp.entries {
		if !strings.Contains(section, "`"+e.test+"`") {
			t.Errorf("docs/db-routing.md's conformance section does not name %s %s (%s: %s)", e.suite, e.test, e.kind, e.reason)
		}
	}
	for _, s := range suites {
		if exp.minPass[s.name] == 0 {
			t.Errorf("expected.txt has no min-pass for %s", s.name)
		}
	}
}

// TestSuiteVersionsMatchTheMainModule checks that the suites are those of the
// versions the main module uses (pgx, sqlx); lib/pq is only here.
func TestSuiteVersionsMatchTheMainModule(t *testing.T) {
	mainMod, err := os.ReadFile(filepath.Join("..", "..", "go.mod"))
	if err != nil {
		t.Fatal(err)
	}
	ours, err := os.ReadFile("go.mod")
	if err != nil {
		t.Fatal(err)
	}
	for _, mod := range []string{"github.com/jackc/pgx/v5", "github.com/jmoiron/sqlx"} {
		re := regexp.MustCompile(`(?m)^\s*` + regexp.QuoteMeta(mod) + `\s+(\S+)`)
		m1, m2 := re.FindSubmatch(mainMod), re.FindSubmatch(ours)
		if m1 == nil || m2 == nil {
			t.Errorf("%s: not required by both go.mod files", mod)
			continue
		}
		if string(m1[1]) != string(m2[1]) {
			t.Errorf("%s: the main module uses %s, the conformance suites %s", mod, m1[1], m2[1])
		}
	}
}
