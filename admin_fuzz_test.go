package canary

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

// FuzzAdminPost sends arbitrary bodies to the admin handler with the right
// token: it never panics, answers 200 only for a valid action (and then the
// kill switch is what the action asked), and otherwise 400 with a JSON error
// naming the field.
func FuzzAdminPost(f *testing.F) {
	f.Add(`{"action":"on","note":"rollback"}`)
	f.Add(`{"action":"off"}`)
	f.Add(`{"action":"rearm"}`)
	f.Add(`{"action":1}`)
	f.Add(`{"action":"on","extra":true}`)
	f.Add(`{"action":"on"}{"action":"off"}`)
	f.Add(``)
	f.Add(`{"action":"on","action":"off"}`)
	f.Add(`{"action":"on","ACTION":"off"}`)
	f.Add(`{"Action":"off"}`)
	f.Add(`{"note":"a","Note":"b","action":"on"}`)
	f.Add(`{"action":"on","\u0061ction":"off"}`)
	f.Add(`{"":1,"":2}`)
	f.Add(`{"on":true,"ON":false}`)
	f.Add(`[`)
	e, err := New(WithUserHashKey(testHashKey))
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(func() { _ = e.Close() })
	const token = "fuzz-admin-token"
	h := AdminHandler(e, WithAdminToken(token))
	f.Fuzz(func(t *testing.T, body string) {
		req := httptest.NewRequest(http.MethodPost, "/admin", strings.NewReader(body))
		req.Header.Set("Authorization", "Bearer "+token)
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		switch rec.Code {
		case http.StatusOK:
			var sent adminRequest
			if err := json.Unmarshal([]byte(body), &sent); err != nil {
				t.Fatalf("200 for a body that is not an admin request: %q", body)
			}
			switch sent.Action {
			case "on":
				if !e.KillSwitch() {
					t.Fatalf("200 for %q but the kill switch is off", body)
				}
			case "off":
				if e.KillSwitch() {
					t.Fatalf("200 for %q but the kill switch is on", body)
				}
			case "rearm":
			default:
				t.Fatalf("200 for action %q", sent.Action)
			}
		case http.StatusBadRequest:
			var got struct {
				Error string `json:"error"`
				Field string `json:"field"`
			}
			if err := json.Unmarshal(rec.Body.Bytes(), &got); err != nil || got.Error == "" || got.Field == "" {
				t.Fatalf("400 without a JSON error naming the field: %q", rec.Body)
			}
			if !strings.HasPrefix(got.Error, got.Field+":") {
				t.Fatalf("error %q does not start with its field %q", got.Error, got.Field)
			}
		default:
			t.Fatalf("status %d for body %q: %s", rec.Code, body, rec.Body)
		}
	})
}
