package conformance

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgconn"

	"github.com/reqcanary/canary/internal/testenv"

	// The suites' own dependencies, kept in this module's go.mod and go.sum.
	_ "github.com/jackc/pgx/v5/pgxpool"
	_ "github.com/jackc/pgx/v5/tracelog"
	_ "github.com/jmoiron/sqlx"
	_ "github.com/lib/pq"
	_ "github.com/stretchr/testify/require"
)

// Modes: the suites run on the bare driver and through dbwrap.
const (
	modeBare   = "bare"
	modeDBWrap = "dbwrap"
)

// routingTest is the test the shim adds to every suite.
const routingTest = "TestZZConformRouting"

// TestConformance copies the test suites of sqlx, pgx's stdlib and lib/pq
// from the module cache, runs each on the bare driver against the primary
// and through dbwrap (primary + streaming replica, with the replay barrier
// of package conform), and fails when a test that passes on the bare driver
// does not pass through dbwrap and expected.txt does not list it, or when a
// listed test passes through dbwrap (the list must shrink as dbwrap is
// fixed). See docs/db-routing.md, "Conformance: other drivers' test suites".
//
// CONFORM_SUITES=sqlx,pq limits the suites; CONFORM_RUN passes -run to them.
func TestConformance(t *testing.T) {
	primary := testenv.PGPrimary(t)
	replica := testenv.PGReplica(t)
	testenv.LockReplicaShared(t)
	start := time.Now()

	exp, err := readExpected("expected.txt")
	if err != nil {
		t.Fatal(err)
	}
	dirs, err := moduleDirs(t)
	if err != nil {
		t.Fatal(err)
	}
	run := selectedSuites(t)

	// Fresh copies under _work/.
	work, err := filepath.Abs("_work")
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range run {
		dst := filepath.Join(work, s.name)
		if err := os.RemoveAll(dst); err != nil {
			t.Fatal(err)
		}
		if err := s.copy(dirs[s.module], dst); err != nil {
			t.Fatalf("%s: copy from %s: %v", s.name, dirs[s.module], err)
		}
		if err := s.apply(dst); err != nil {
			t.Fatal(err)
		}
	}

	// A database per suite and mode, so the runs cannot see each other's
	// tables, and the replica has it before the suites connect.
	dbs, err := createDatabases(primary, replica, run)
	if err != nil {
		t.Fatal(err)
	}
	if err := buildSuites(work, run); err != nil {
		t.Fatal(err)
	}
	t.Logf("prepared and built in %v", time.Since(start).Round(time.Millisecond))

	type key struct{ suite, mode string }
	results := map[key]*runResult{}
	var mu sync.Mutex
	var wg sync.WaitGroup
	sem := make(chan struct{}, 6) // the runs mostly wait on the servers
	for _, s := range run {
		for _, mode := range []string{modeBare, modeDBWrap} {
			wg.Go(func() {
				sem <- struct{}{}
				defer func() { <-sem }()
				r := runSuite(s, mode, work, dbs[s.name+"_"+mode], primary, replica, os.Getenv("CONFORM_RUN"), "")
				mu.Lock()
				results[key{s.name, mode}] = r
				mu.Unlock()
			})
		}
	}
	wg.Wait()

	var report strings.Builder
	for _, s := range run {
		bare, wrapped := results[key{s.name, modeBare}], results[key{s.name, modeDBWrap}]
		for _, r := range []*runResult{bare, wrapped} {
			if r.err != nil {
				t.Errorf("%s (%s): %v\n%s", s.name, r.mode, r.err, tail(r.output, 4000))
			}
		}
		if bare.err != nil || wrapped.err != nil {
			continue
		}
		// A test that passes on the bare driver and fails through dbwrap
		// unlisted runs once more, alone, to tell a flake (the machine is
		// shared and busy) from a difference.
		var flaky []string
		// So does a listed test that passed through dbwrap: the list is
		// stale only if it passes again.
		if tops := append(unlistedTops(s.name, bare, wrapped, exp), passingListed(s.name, bare, wrapped, exp)...); len(tops) > 0 && len(tops) <= 20 {
			again := runSuite(s, modeDBWrap, work, dbs[s.name+"_"+modeDBWrap], primary, replica,
				"^("+strings.Join(tops, "|")+")$", ".rerun")
			for name, st := range again.status {
				if st == "pass" && wrapped.status[name] == "fail" {
					flaky = append(flaky, name)
				}
				wrapped.status[name] = st
			}
			sort.Strings(flaky)
		}
		problems := compare(s.name, bare, wrapped, exp)
		for _, p := range problems {
			t.Error(p)
		}
		fmt.Fprintf(&report, "%s: bare %s in %v; dbwrap %s in %v; %s\n", s.name, bare.counts(), bare.took.Round(time.Second),
			wrapped.counts(), wrapped.took.Round(time.Second), wrapped.routingLog)
		for _, name := range flaky {
			fmt.Fprintf(&report, "  failed through dbwrap, passed when run again alone (flaky): %s\n", name)
		}
		for _, name := range sortedKeys(wrapped.status) {
			if wrapped.status[name] == "fail" && bare.status[name] == "pass" {
				fmt.Fprintf(&report, "  fails through dbwrap: %s (%s)\n", name, exp.describe(s.name, name))
			}
		}
		for _, name := range sortedKeys(bare.status) {
			if bare.status[name] == "fail" {
				fmt.Fprintf(&report, "  fails on the bare driver too: %s\n", name)
			}
		}
		if min := exp.minPass[s.name]; bare.count("pass") < min {
			t.Errorf("%s: only %d tests pass on the bare driver, want at least %d (expected.txt min-pass): is the environment broken?",
				s.name, bare.count("pass"), min)
		}
		if wrapped.status[routingTest] != "pass" {
			t.Errorf("%s: %s did not pass through dbwrap: %s", s.name, routingTest, wrapped.routingLog)
		}
	}
	t.Logf("conformance (%v):\n%s", time.Since(start).Round(time.Second), report.String())
	if t.Failed() {
		t.Logf("rerun one suite with CONFORM_SUITES=<name> CONFORM_RUN=<regexp>; the copies and each run's output stay in %s", work)
	}
}

// buildSuites compiles the suites' test binaries into work/bin, in one go
// command so that their common dependencies are compiled once, not by six
// concurrent runs.
func buildSuites(work string, run []suite) error {
	// -vet=off: upstream test code is not ours to vet.
	args := []string{"test", "-vet=off", "-c", "-o", filepath.Join(work, "bin") + string(filepath.Separator)}
	for _, s := range run {
		args = append(args, "./"+filepath.ToSlash(filepath.Join("_work", s.name, s.pkg)))
	}
	cmd := exec.Command("go", args...)
	cmd.Dir = filepath.Dir(work)
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("go %s: %w\n%s", strings.Join(args, " "), err, out)
	}
	return nil
}

// runResult is the outcome of one `go test -json` run of a suite.
type runResult struct {
	mode       string
	status     map[string]string // test name -> pass, fail or skip
	output     string
	routingLog string
	took       time.Duration
	err        error // the run itself failed (build error, crash outside a test)
}

// count counts the suite's own tests (and subtests) with action.
func (r *runResult) count(action string) int {
	n := 0
	for name, a := range r.status {
		if a == action && name != routingTest {
			n++
		}
	}
	return n
}

func (r *runResult) counts() string {
	return fmt.Sprintf("%d passed, %d failed, %d skipped", r.count("pass"), r.count("fail"), r.count("skip"))
}

var routingLogRE = regexp.MustCompile(`conform: \d+ queries went to the replica`)

// runSuite runs the copied suite s in mode with `go test -json`.
// runRE is its -run; suffix tells the output file of a rerun apart.
func runSuite(s suite, mode, work string, db dbURL, primary, replica, runRE, suffix string) *runResult {
	r := &runResult{mode: mode, status: map[string]string{}}
	start := time.Now()
	// The binary built by buildSuites, run as go test -json runs it, in
	// its package's directory.
	args := []string{"tool", "test2json", "-t", "-p", s.name, filepath.Join(work, "bin", s.name+".test"),
		"-test.v=test2json", "-test.count=1", "-test.timeout=4m"}
	if runRE == "" {
		// Tests only: the suites' examples are documentation (lib/pq's
		// need a database "pqgo" and end the binary with log.Fatal).
		runRE = "^Test"
	}
	args = append(args, "-test.run", runRE)
	cmd := exec.Command("go", args...)
	cmd.Dir = filepath.Join(work, s.name, s.pkg)
	cmd.Env = append(cleanEnv(),
		"CONFORM_MODE="+mode,
		"CONFORM_PRIMARY="+primary,
		"CONFORM_REPLICA="+replica,
	)
	cmd.Env = append(cmd.Env, s.env(db)...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, runErr := cmd.Output()
	r.took = time.Since(start)
	var text strings.Builder
	var pkgAction string
	sc := bufio.NewScanner(bytes.NewReader(out))
	sc.Buffer(make([]byte, 1<<20), 16<<20)
	for sc.Scan() {
		var ev struct {
			Action, Test, Output string
		}
		if json.Unmarshal(sc.Bytes(), &ev) != nil {
			text.Write(sc.Bytes())
			text.WriteByte('\n')
			continue
		}
		text.WriteString(ev.Output)
		switch {
		case ev.Test == "" && (ev.Action == "pass" || ev.Action == "fail"):
			pkgAction = ev.Action
		case ev.Test != "" && (ev.Action == "pass" || ev.Action == "fail" || ev.Action == "skip"):
			r.status[ev.Test] = ev.Action
		}
		if m := routingLogRE.FindString(ev.Output); m != "" {
			r.routingLog = m
		}
	}
	text.Write(stderr.Bytes())
	r.output = text.String()
	_ = os.WriteFile(filepath.Join(work, s.name+"."+mode+suffix+".out"), []byte(r.output), 0o644)
	switch {
	case len(r.status) == 0:
		r.err = fmt.Errorf("no test ran (go test: %v)", runErr)
	case pkgAction == "":
		r.err = fmt.Errorf("the test binary did not finish (crash or timeout; go test: %v); output in _work/%s.%s.out", runErr, s.name, mode)
	}
	if r.routingLog == "" {
		r.routingLog = "no routing log"
	}
	return r
}

// cleanEnv is the environment without the libpq and suite settings of the
// caller.
func cleanEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		if strings.HasPrefix(kv, "PG") || strings.HasPrefix(kv, "SQLX_") || strings.HasPrefix(kv, "CONFORM_") {
			continue
		}
		env = append(env, kv)
	}
	return env
}

// unlistedTops returns the top-level tests (quoted for -run) that pass on
// the bare driver and not through dbwrap, and that exp does not list.
func unlistedTops(suite string, bare, wrapped *runResult, exp *expected) []string {
	seen := map[string]bool{}
	var tops []string
	for _, name := range sortedKeys(bare.status) {
		if bare.status[name] != "pass" || name == routingTest || wrapped.status[name] == "pass" || exp.covers(suite, name) {
			continue
		}
		top, _, _ := strings.Cut(name, "/")
		if !seen[top] {
			seen[top] = true
			tops = append(tops, regexp.QuoteMeta(top))
		}
	}
	return tops
}

// passingListed returns the tests of exp (quoted for -run, top level) that
// pass on the bare driver and through dbwrap: the candidates for removal.
func passingListed(suite string, bare, wrapped *runResult, exp *expected) []string {
	var tops []string
	for _, e := range exp.entries {
		if e.suite == suite && e.kind != kindIntermittent && bare.status[e.test] == "pass" && wrapped.status[e.test] == "pass" {
			top, _, _ := strings.Cut(e.test, "/")
			tops = append(tops, regexp.QuoteMeta(top))
		}
	}
	return tops
}

// compare returns a problem for each test that passes on the bare driver
// and not through dbwrap without an entry in exp, and for each entry of exp
// (other than racy ones) that passes both on the bare driver and
// through dbwrap.
func compare(suite string, bare, wrapped *runResult, exp *expected) []string {
	var problems []string
	for _, name := range sortedKeys(bare.status) {
		if bare.status[name] != "pass" || name == routingTest {
			continue
		}
		got, ran := wrapped.status[name]
		if got == "pass" || exp.covers(suite, name) {
			continue
		}
		if !ran {
			got = "did not run"
		}
		problems = append(problems, fmt.Sprintf("%s: %s passes on the bare driver but through dbwrap: %s, and expected.txt does not list it",
			suite, name, got))
	}
	for _, e := range exp.entries {
		if e.suite != suite {
			continue
		}
		if e.kind == kindIntermittent {
			continue
		}
		// A listed test that did not pass on the bare driver this time (a
		// flake of the suite, or a -run that left it out) is not judged.
		if bare.status[e.test] == "pass" && wrapped.status[e.test] == "pass" {
			problems = append(problems, fmt.Sprintf("%s: expected.txt lists %s (%s) but it passes through dbwrap: remove it from the list",
				suite, e.test, e.kind))
		}
	}
	return problems
}

// expected is expected.txt: the tests that are known to fail through dbwrap
// and pass on the bare driver, each by design or because of a dbwrap bug
// being fixed, and each suite's minimum number of passing tests on the bare
// driver.
type expected struct {
	entries []expEntry
	minPass map[string]int
}

// Kinds of expected.txt entries.
const (
	kindByDesign     = "by-design"  // a consequence of routing
	kindBug          = "dbwrap-bug" // fails through dbwrap every time
	kindIntermittent = "racy"       // a racy test that fails through dbwrap only sometimes: not required to fail
)

type expEntry struct {
	suite, test, kind, reason string
}

// covers tells whether test is an entry, a subtest of one, or a parent of
// one (a parent fails when its subtest does).
func (e *expected) covers(suite, test string) bool {
	for _, x := range e.entries {
		if x.suite == suite && (x.test == test || strings.HasPrefix(test, x.test+"/") || strings.HasPrefix(x.test, test+"/")) {
			return true
		}
	}
	return false
}

func (e *expected) describe(suite, test string) string {
	for _, x := range e.entries {
		if x.suite == suite && (x.test == test || strings.HasPrefix(test, x.test+"/") || strings.HasPrefix(x.test, test+"/")) {
			return x.kind + ": " + x.reason
		}
	}
	return "NOT LISTED"
}

// readExpected parses lines "<suite> <test> <by-design|dbwrap-bug> <reason>"
// and "<suite> min-pass <n>"; '#' starts a comment line.
func readExpected(path string) (*expected, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return parseExpected(f, path)
}

func parseExpected(r io.Reader, path string) (*expected, error) {
	exp := &expected{minPass: map[string]int{}}
	known := map[string]bool{}
	for _, s := range suites {
		known[s.name] = true
	}
	sc := bufio.NewScanner(r)
	for line := 1; sc.Scan(); line++ {
		text := strings.TrimSpace(sc.Text())
		if text == "" || strings.HasPrefix(text, "#") {
			continue
		}
		f := strings.Fields(text)
		if len(f) < 3 {
			return nil, fmt.Errorf("%s:%d: want \"<suite> <test> <kind> <reason>\" or \"<suite> min-pass <n>\", got %q", path, line, text)
		}
		if !known[f[0]] {
			return nil, fmt.Errorf("%s:%d: suite: unknown suite %q", path, line, f[0])
		}
		if f[1] == "min-pass" {
			n, err := strconv.Atoi(f[2])
			if err != nil || n < 0 {
				return nil, fmt.Errorf("%s:%d: min-pass: want a number, got %q", path, line, f[2])
			}
			exp.minPass[f[0]] = n
			continue
		}
		if f[2] != kindByDesign && f[2] != kindBug && f[2] != kindIntermittent {
			return nil, fmt.Errorf("%s:%d: kind: want %s, %s or %s, got %q", path, line, kindByDesign, kindBug, kindIntermittent, f[2])
		}
		if len(f) < 4 {
			return nil, fmt.Errorf("%s:%d: reason: missing for %s", path, line, f[1])
		}
		exp.entries = append(exp.entries, expEntry{suite: f[0], test: f[1], kind: f[2], reason: strings.Join(f[3:], " ")})
	}
	return exp, sc.Err()
}

// moduleDirs returns the module cache directory of each suite's module, at
// the version this module requires (go mod download -json).
func moduleDirs(t *testing.T) (map[string]string, error) {
	var mods []string
	for _, s := range suites {
		mods = append(mods, s.module)
	}
	cmd := exec.Command("go", append([]string{"mod", "download", "-json"}, mods...)...)
	out, err := cmd.Output()
	if err != nil {
		return nil, fmt.Errorf("go mod download %v: %w", mods, err)
	}
	dirs := map[string]string{}
	dec := json.NewDecoder(bytes.NewReader(out))
	for {
		var m struct{ Path, Version, Dir, Error string }
		if err := dec.Decode(&m); err == io.EOF {
			break
		} else if err != nil {
			return nil, fmt.Errorf("go mod download: %w", err)
		}
		if m.Error != "" || m.Dir == "" {
			return nil, fmt.Errorf("go mod download %s: %s", m.Path, m.Error)
		}
		t.Logf("%s@%s from %s", m.Path, m.Version, m.Dir)
		dirs[m.Path] = m.Dir
	}
	return dirs, nil
}

func selectedSuites(t *testing.T) []suite {
	sel := os.Getenv("CONFORM_SUITES")
	if sel == "" {
		return suites
	}
	var run []suite
	for _, s := range suites {
		for _, n := range strings.Split(sel, ",") {
			if strings.TrimSpace(n) == s.name {
				run = append(run, s)
			}
		}
	}
	if len(run) == 0 {
		t.Fatalf("CONFORM_SUITES=%q names no suite", sel)
	}
	return run
}

// createDatabases creates canary_conform_<suite>_<mode> on the primary, or
// empties it, and waits until the replica has replayed that.
func createDatabases(primary, replica string, run []suite) (map[string]dbURL, error) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	p, err := pgconn.Connect(ctx, primary)
	if err != nil {
		return nil, fmt.Errorf("connect primary: %w", err)
	}
	defer p.Close(context.Background())
	pu, err := url.Parse(primary)
	if err != nil {
		return nil, fmt.Errorf("CANARY_PG_PRIMARY: %w", err)
	}
	dbs := map[string]dbURL{}
	for _, s := range run {
		for _, mode := range []string{modeBare, modeDBWrap} {
			name := "canary_conform_" + s.name + "_" + mode
			u := *pu
			u.Path = "/" + name
			if err := resetDatabase(ctx, p, u.String(), name); err != nil {
				return nil, err
			}
			dbs[s.name+"_"+mode] = dbURL{URL: u.String(), Host: u.Hostname(), Port: u.Port(), DB: name, User: u.User.Username()}
		}
	}
	res := p.ExecParams(ctx, "select pg_current_wal_flush_lsn()::text", nil, nil, nil, nil).Read()
	if res.Err != nil {
		return nil, res.Err
	}
	r, err := pgconn.Connect(ctx, replica)
	if err != nil {
		return nil, fmt.Errorf("connect replica: %w", err)
	}
	defer r.Close(context.Background())
	for {
		rr := r.ExecParams(ctx, "select pg_last_wal_replay_lsn() >= $1::pg_lsn", res.Rows[0], nil, nil, nil).Read()
		if rr.Err != nil {
			return nil, rr.Err
		}
		if string(rr.Rows[0][0]) == "t" {
			return dbs, nil
		}
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("the replica did not replay the databases' creation: %w", ctx.Err())
		case <-time.After(10 * time.Millisecond):
		}
	}
}

// resetDatabase creates database name, or, when it exists, drops everything
// an earlier run left in it (faster than dropping the database: CREATE
// DATABASE copies the template through the WAL).
func resetDatabase(ctx context.Context, p *pgconn.PgConn, dsn, name string) error {
	res := p.ExecParams(ctx, "select count(*) from pg_database where datname = $1", [][]byte{[]byte(name)}, nil, nil, nil).Read()
	if res.Err != nil {
		return fmt.Errorf("look up database %s: %w", name, res.Err)
	}
	if string(res.Rows[0][0]) == "0" {
		if err := p.Exec(ctx, "create database "+name).Close(); err != nil {
			return fmt.Errorf("create database %s: %w", name, err)
		}
		return nil
	}
	c, err := pgconn.Connect(ctx, dsn)
	if err != nil {
		return fmt.Errorf("connect %s: %w", name, err)
	}
	defer c.Close(context.Background())
	if err := c.Exec(ctx, "drop schema if exists public cascade; create schema public").Close(); err != nil {
		return fmt.Errorf("empty database %s: %w", name, err)
	}
	return nil
}

func sortedKeys(m map[string]string) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

func tail(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return "..." + s[len(s)-n:]
}
