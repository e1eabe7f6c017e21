package canary

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

// TestAdminGetRedactsSecrets (issue 12): the admin GET without the token
// does not reveal the salt (with which a client computes which user ids are
// canary) nor the trusted networks; with the token it does.
func TestAdminGetRedactsSecrets(t *testing.T) {
	const salt = "s3cret-salt-7f2a"
	e := newTestEngine(t, "version: 2\nsalt: "+salt+"\ncanary_percent: 5\noverride:\n  trusted_cidrs: [10.77.0.0/16]\n")
	const token = "admin-token-1"
	for _, tc := range []struct {
		name    string
		h       http.Handler
		bearer  string
		secrets bool
	}{
		{"read-only handler", AdminHandler(e), "", false},
		{"no token", AdminHandler(e, WithAdminToken(token)), "", false},
		{"wrong token", AdminHandler(e, WithAdminToken(token)), "nope", false},
		{"read-only handler, a token anyway", AdminHandler(e), token, false},
		{"admin token", AdminHandler(e, WithAdminToken(token)), token, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			req := httptest.NewRequest(http.MethodGet, "/admin/canary", nil)
			if tc.bearer != "" {
				req.Header.Set("Authorization", "Bearer "+tc.bearer)
			}
			rec := httptest.NewRecorder()
			tc.h.ServeHTTP(rec, req)
			body := rec.Body.String()
			if rec.Code != 200 {
				t.Fatalf("status %d: %s", rec.Code, body)
			}
			for _, secret := range []string{salt, "10.77.0.0/16"} {
				if got := strings.Contains(body, secret); got != tc.secrets {
					t.Errorf("body contains %q: %v, want %v:\n%s", secret, got, tc.secrets, body)
				}
			}
			if !strings.Contains(body, `"canary_percent": 5`) || !strings.Contains(body, `"kill_switch"`) {
				t.Errorf("the figures an operator needs are missing:\n%s", body)
			}
			if got := strings.Contains(body, `"redacted"`); got == tc.secrets {
				t.Errorf("redacted listed: %v:\n%s", got, body)
			}
		})
	}
}
