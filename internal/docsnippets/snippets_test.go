package docsnippets

import (
	"bufio"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/reqcanary/canary/internal/testenv"
)

// snippet is one ```go block of a Markdown file.
type snippet struct {
	file string // relative to the repository root
	line int    // of the opening fence
	code string
}

// snippets returns the ```go blocks of the README and docs/*.md.
func snippets(t *testing.T, root string) []snippet {
	t.Helper()
	files := []string{"README.md"}
	docs, err := filepath.Glob(filepath.Join(root, "docs", "*.md"))
	if err != nil {
		t.Fatal(err)
	}
	for _, d := range docs {
		files = append(files, filepath.Join("docs", filepath.Base(d)))
	}
	var out []snippet
	for _, f := range files {
		data, err := os.ReadFile(filepath.Join(root, f))
		if err != nil {
			t.Fatal(err)
		}
		sc := bufio.NewScanner(strings.NewReader(string(data)))
		var cur *snippet
		var b strings.Builder
		for n := 1; sc.Scan(); n++ {
			line := sc.Text()
			switch {
			case cur == nil && strings.TrimSpace(line) == "```go":
				cur = &snippet{file: f, line: n}
				b.Reset()
			case cur != nil && strings.TrimSpace(line) == "```":
				cur.code = b.String()
				out = append(out, *cur)
				cur = nil
			case cur != nil:
				b.WriteString(line)
				b.WriteByte('\n')
			}
		}
		if cur != nil {
			t.Errorf("%s:%d: a ```go block is not closed", f, cur.line)
		}
	}
	return out
}

// TestSnippetsCompile writes every snippet as a package of its own under a
// temporary directory inside the module (so that the module's requirements
// resolve its imports) and type-checks them all with one go vet.
func TestSnippetsCompile(t *testing.T) {
	root := testenv.RepoRoot()
	all := snippets(t, root)
	if len(all) < 10 {
		t.Fatalf("found %d Go snippets in README.md and docs/*.md; the extraction is broken", len(all))
	}
	// Under testdata, so that ./... patterns never see the packages.
	td := filepath.Join(root, "internal", "docsnippets", "testdata")
	if err := os.MkdirAll(td, 0o755); err != nil {
		t.Fatal(err)
	}
	dir, err := os.MkdirTemp(td, "gen-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = os.RemoveAll(dir)
		_ = os.Remove(td) // when no other run uses it
	})
	where := map[string]snippet{}
	var pkgs []string
	for i, s := range all {
		if !strings.HasPrefix(strings.TrimSpace(s.code), "package ") {
			t.Errorf("%s:%d: a Go snippet must be a whole file (package clause and imports), so that it compiles as shown", s.file, s.line)
			continue
		}
		name := fmt.Sprintf("s%02d", i)
		pd := filepath.Join(dir, name)
		if err := os.MkdirAll(pd, 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(pd, "snippet.go"), []byte(s.code), 0o644); err != nil {
			t.Fatal(err)
		}
		rel, _ := filepath.Rel(root, pd)
		pkgs = append(pkgs, "./"+filepath.ToSlash(rel))
		where[name] = s
	}
	if len(pkgs) == 0 {
		return
	}
	cmd := exec.Command("go", append([]string{"vet"}, pkgs...)...)
	cmd.Dir = root
	out, err := cmd.CombinedOutput()
	if err == nil {
		return
	}
	// Name the Markdown file and line of each error.
	msg := string(out)
	for name, s := range where {
		msg = strings.ReplaceAll(msg, filepath.Join("internal", "docsnippets", "testdata", filepath.Base(dir), name, "snippet.go")+":",
			fmt.Sprintf("%s (the snippet at line %d), line ", s.file, s.line))
	}
	t.Fatalf("Go snippets of the docs do not compile:\n%s", msg)
}
