package planstore

import (
	"fmt"
	"strings"
)

// maxDiffCells bounds the work of Diff (lines of a × lines of b); beyond it
// the diff says every line changed.
const maxDiffCells = 4 << 20

// Diff returns a line diff from a to b in the unified format without
// context lines: for each changed run a header "@@ -l,n +l,n @@" (1-based
// line numbers, as in diff -U0), the removed lines prefixed "-" and the added
// lines prefixed "+". Equal texts give "".
func Diff(a, b []byte) string {
	x, y := splitLines(a), splitLines(b)
	// Trim the common head and tail; plans change in few places.
	pre := 0
	for pre < len(x) && pre < len(y) && x[pre] == y[pre] {
		pre++
	}
	suf := 0
	for suf < len(x)-pre && suf < len(y)-pre && x[len(x)-1-suf] == y[len(y)-1-suf] {
		suf++
	}
	xm, ym := x[pre:len(x)-suf], y[pre:len(y)-suf]
	if len(xm) == 0 && len(ym) == 0 {
		return ""
	}
	// ops: ' ' keep, '-' delete from x, '+' insert from y.
	var ops []byte
	if len(xm)*len(ym) > maxDiffCells {
		ops = append(ops, strings.Repeat("-", len(xm))...)
		ops = append(ops, strings.Repeat("+", len(ym))...)
	} else {
		ops = lcsOps(xm, ym)
	}
	var sb strings.Builder
	i, j := pre, pre // positions in x and y
	for k := 0; k < len(ops); {
		if ops[k] == ' ' {
			i, j, k = i+1, j+1, k+1
			continue
		}
		var del, ins []string
		si, sj := i, j
		for k < len(ops) && ops[k] != ' ' {
			if ops[k] == '-' {
				del = append(del, x[i])
				i++
			} else {
				ins = append(ins, y[j])
				j++
			}
			k++
		}
		fmt.Fprintf(&sb, "@@ -%s +%s @@\n", hunkRange(si, len(del)), hunkRange(sj, len(ins)))
		for _, l := range del {
			sb.WriteString("-" + l + "\n")
		}
		for _, l := range ins {
			sb.WriteString("+" + l + "\n")
		}
	}
	return sb.String()
}

// hunkRange formats a range as diff -U0 does: an empty range names the line
// before it.
func hunkRange(start, n int) string {
	if n == 0 {
		return fmt.Sprintf("%d,0", start)
	}
	return fmt.Sprintf("%d,%d", start+1, n)
}

func splitLines(b []byte) []string {
	s := strings.TrimSuffix(string(b), "\n")
	if s == "" {
		return nil
	}
	return strings.Split(s, "\n")
}

// lcsOps returns an edit script from x to y along a longest common
// subsequence (dynamic programming, len(x)*len(y) cells).
func lcsOps(x, y []string) []byte {
	n, m := len(x), len(y)
	// l[i][j] = LCS length of x[i:] and y[j:], stored row-major.
	w := m + 1
	l := make([]int32, (n+1)*w)
	for i := n - 1; i >= 0; i-- {
		for j := m - 1; j >= 0; j-- {
			if x[i] == y[j] {
				l[i*w+j] = l[(i+1)*w+j+1] + 1
			} else {
				l[i*w+j] = max(l[(i+1)*w+j], l[i*w+j+1])
			}
		}
	}
	ops := make([]byte, 0, n+m)
	i, j := 0, 0
	for i < n && j < m {
		switch {
		case x[i] == y[j]:
			ops = append(ops, ' ')
			i, j = i+1, j+1
		case l[(i+1)*w+j] >= l[i*w+j+1]:
			ops = append(ops, '-')
			i++
		default:
			ops = append(ops, '+')
			j++
		}
	}
	for ; i < n; i++ {
		ops = append(ops, '-')
	}
	for ; j < m; j++ {
		ops = append(ops, '+')
	}
	return ops
}
