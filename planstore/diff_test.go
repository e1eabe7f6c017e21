package planstore_test

import (
	"testing"

	"github.com/reqcanary/canary/planstore"
)

func TestDiff(t *testing.T) {
	for _, tc := range []struct{ name, a, b, want string }{
		{"equal", "a\nb\n", "a\nb\n", ""},
		{"change", "a\nb\nc\n", "a\nB\nc\n", "@@ -2,1 +2,1 @@\n-b\n+B\n"},
		{"insert", "a\nc\n", "a\nb\nc\n", "@@ -1,0 +2,1 @@\n+b\n"},
		{"delete", "a\nb\nc\n", "a\nc\n", "@@ -2,1 +1,0 @@\n-b\n"},
		{"from empty", "", "a\nb\n", "@@ -0,0 +1,2 @@\n+a\n+b\n"},
		{"two hunks", "a\nb\nc\nd\ne\n", "A\nb\nc\nd\nE\n", "@@ -1,1 +1,1 @@\n-a\n+A\n@@ -5,1 +5,1 @@\n-e\n+E\n"},
		{"moved line", "x\na\nb\n", "a\nb\nx\n", "@@ -1,1 +0,0 @@\n-x\n@@ -3,0 +3,1 @@\n+x\n"},
	} {
		if got := planstore.Diff([]byte(tc.a), []byte(tc.b)); got != tc.want {
			t.Errorf("%s: Diff = %q, want %q", tc.name, got, tc.want)
		}
	}
}
