package tenant

import (
	"errors"
	"net/http"
	"strings"
	"testing"
)

// TestUserFormatCharactersRefused: user ids with bidirectional overrides,
// zero-width or other format characters (category Cf) are refused with an
// error naming the field and the character (issue 12).
func TestUserFormatCharactersRefused(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		user, want string
	}{
		{"admin\u202egnp.exe", "X-User-ID: contains the format character U+202E at byte 5"},
		{"ali\u200bce", "X-User-ID: contains the format character U+200B at byte 3"},
		{"\u2066bob\u2069", "X-User-ID: contains the format character U+2066 at byte 0"},
		{"bob\u00ad", "X-User-ID: contains the format character U+00AD at byte 3"},
		{"\ufeffbob", "X-User-ID: contains the format character U+FEFF at byte 0"},
		{"tag\U000E0041", "X-User-ID: contains the format character U+E0041 at byte 3"},
	} {
		h := http.Header{}
		h.Set(HeaderUser, tc.user)
		_, err := ReadUser(h, HTTP)
		var fe *FieldError
		if !errors.As(err, &fe) || fe.Field != HeaderUser || err.Error() != tc.want {
			t.Errorf("%q: err %v, want %q", tc.user, err, tc.want)
		}
		if err := CheckIdentity("", tc.user); err == nil || !strings.HasPrefix(err.Error(), FieldIdentityUser+": ") {
			t.Errorf("CheckIdentity(%q) = %v", tc.user, err)
		}
	}
	for _, ok := range []string{"José", "Łukasz", "用户", "مستخدم", "user@example.com", "emoji🙂"} {
		if why := CheckUser(ok); why != "" {
			t.Errorf("%q refused: %s", ok, why)
		}
	}
}

func TestIdentitySource(t *testing.T) {
	t.Parallel()
	h := http.Header{}
	h.Set(HeaderTenant, "acme")
	h.Set(HeaderOverride, "canary")
	s := NewIdentitySource(h, HTTP, "", "u1")
	if got := s.Values(HeaderTenant); got != nil {
		t.Fatalf("tenant %q, want none", got)
	}
	if got := s.Values(HeaderUser); len(got) != 1 || got[0] != "u1" {
		t.Fatalf("user %q", got)
	}
	if got := s.Values(HeaderOverride); len(got) != 1 || got[0] != "canary" {
		t.Fatalf("override %q: other keys must come from the source", got)
	}
	if err := CheckIdentity("bad tenant", ""); err == nil || !strings.HasPrefix(err.Error(), FieldIdentityTenant+": ") {
		t.Fatalf("CheckIdentity: %v", err)
	}
}
