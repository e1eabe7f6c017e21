package tenant

import (
	"net/http"
	"strings"
	"testing"
	"unicode"
	"unicode/utf8"
)

// FuzzReadHeaders checks that header parsing never panics and never accepts a
// value that breaks the limits.
func FuzzReadHeaders(f *testing.F) {
	for _, s := range []string{"acme", "", "a/b", strings.Repeat("x", 65), "jon@company.com", "a\tb", "\xff", "canary", " stable ",
		"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"} {
		f.Add(s, s, s, s)
	}
	f.Fuzz(func(t *testing.T, tenantV, user, override, traceparent string) {
		h := http.Header{}
		h.Set(HeaderTenant, tenantV)
		h.Set(HeaderUser, user)
		h.Set(HeaderOverride, override)

		if got, err := ReadTenant(h, HTTP); err == nil {
			if got != tenantV || len(got) < 1 || len(got) > MaxTenantLen {
				t.Fatalf("accepted tenant %q (from %q)", got, tenantV)
			}
			for i := 0; i < len(got); i++ {
				if !strings.ContainsRune("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._:-", rune(got[i])) {
					t.Fatalf("accepted tenant %q with byte %q", got, got[i])
				}
			}
		} else if !strings.HasPrefix(err.Error(), HeaderTenant+": ") {
			t.Fatalf("tenant error %q does not name the header", err)
		}

		if got, err := ReadUser(h, HTTP); err == nil {
			if got != user || len(got) < 1 || len(got) > MaxUserLen || !utf8.ValidString(got) {
				t.Fatalf("accepted user %q", got)
			}
			for _, r := range got {
				if r < 0x20 || r == 0x7f || (r >= 0x80 && r <= 0x9f) || unicode.Is(unicode.Cf, r) {
					t.Fatalf("accepted user %q with control or format character %U", got, r)
				}
			}
		} else if !strings.HasPrefix(err.Error(), HeaderUser+": ") {
			t.Fatalf("user error %q does not name the header", err)
		}

		if c, err := ReadOverride(h, HeaderOverride); err == nil {
			if c != Canary && c != Stable {
				t.Fatalf("accepted override %q as %q", override, c)
			}
		}

		if id, ok := ParseTraceParent(traceparent); ok && !ValidTraceID(id) {
			t.Fatalf("accepted trace id %q from %q", id, traceparent)
		}
	})
}
