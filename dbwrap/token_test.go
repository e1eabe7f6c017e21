package dbwrap

import (
	"context"
	"testing"
)

func TestLSNRoundTrip(t *testing.T) {
	for _, s := range []string{"0/1", "16/B374D848", "FFFFFFFF/FFFFFFFF"} {
		p, err := parseLSN(s)
		if err != nil || formatLSN(p) != s {
			t.Errorf("parseLSN(%q) = %x, %v; formats as %q", s, p, err, formatLSN(p))
		}
	}
	for _, s := range []string{"", "/", "1/", "/1", "x/1", "1/2/3", "100000000/0"} {
		if _, err := parseLSN(s); err == nil {
			t.Errorf("parseLSN(%q) accepted", s)
		}
	}
	if _, ok := ConsistencyToken(WithConsistencyToken(context.Background(), "garbage")); ok {
		t.Error("a malformed token was attached")
	}
	a := WithConsistencyToken(context.Background(), "1/0")
	if tok, _ := ConsistencyToken(WithConsistencyToken(a, "0/FF")); tok != "1/0" {
		t.Errorf("a lower token replaced a higher one: %s", tok)
	}
}
