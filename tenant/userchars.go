package tenant

import (
	"strconv"
	"unicode"
)

// userRuneProblem says what is wrong with the non-ASCII rune r at byte i of a
// user id, or "" when it is allowed. Refused: the C1 controls (U+0080 to
// U+009F), the line and paragraph separators (U+2028, U+2029), and every
// format character (Unicode category Cf: the bidirectional overrides and
// isolates such as U+202E, zero-width characters such as U+200B and U+2060,
// the byte order mark U+FEFF, soft hyphen U+00AD, tag characters…). Format
// characters are invisible or reorder the text around them, so two ids that
// print alike could hash to different buckets, and an id could disguise
// itself in logs and dashboards.
func userRuneProblem(r rune, i int) string {
	switch {
	case r >= 0x80 && r <= 0x9f || r == 0x2028 || r == 0x2029:
		return "contains a control character at byte " + strconv.Itoa(i)
	case unicode.Is(unicode.Cf, r):
		return "contains the format character U+" + hex4(r) + " at byte " + strconv.Itoa(i)
	}
	return ""
}

// hex4 formats r as at least four uppercase hex digits.
func hex4(r rune) string {
	s := strconv.FormatInt(int64(r), 16)
	for len(s) < 4 {
		s = "0" + s
	}
	b := []byte(s)
	for i, c := range b {
		if 'a' <= c && c <= 'f' {
			b[i] = c - 'a' + 'A'
		}
	}
	return string(b)
}
