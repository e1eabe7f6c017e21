package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// TestDatabaseErrorIsGeneric pins issue 12: a database error answered with
// the driver's text (DSN, user, address). Clients get 503 (HTTP) or
// Unavailable (gRPC) with a generic text; the details go to the log.
func TestDatabaseErrorIsGeneric(t *testing.T) {
	secret := `failed to connect to user=shop_admin database=shop: 10.1.2.3:5432 (db.internal): password authentication failed; dsn postgres://shop_admin:hunter2@db.internal:5432/shop`
	for name, err := range map[string]error{
		"read":  dbErr(errors.New(secret)),
		"write": fmt.Errorf("create order: %w", dbErr(errors.New(secret))),
	} {
		t.Run(name, func(t *testing.T) {
			var logBuf bytes.Buffer
			log := slog.New(slog.NewTextHandler(&logBuf, nil))
			w := httptest.NewRecorder()
			rp := &reply{}
			rp.Labels.TraceID = "0123456789abcdef0123456789abcdef"
			writeReply(w, log, http.StatusOK, rp, err)
			if w.Code != http.StatusServiceUnavailable {
				t.Errorf("status %d, want 503", w.Code)
			}
			body := w.Body.String()
			for _, leak := range []string{"shop_admin", "hunter2", "10.1.2.3", "db.internal", "5432", "password"} {
				if strings.Contains(body, leak) {
					t.Errorf("the answer leaks %q: %s", leak, body)
				}
			}
			var got reply
			if json.Unmarshal([]byte(body), &got) != nil || got.Error != "database unavailable" {
				t.Errorf("body %s, want error \"database unavailable\"", body)
			}
			if !strings.Contains(logBuf.String(), "hunter2") && !strings.Contains(logBuf.String(), "db.internal") || !strings.Contains(logBuf.String(), rp.Labels.TraceID) {
				t.Errorf("the log does not keep the details with the trace id: %s", logBuf.String())
			}

			gerr := grpcError(log, rp, err)
			st, _ := status.FromError(gerr)
			if st.Code() != codes.Unavailable || st.Message() != "database unavailable" {
				t.Errorf("gRPC status %v %q, want Unavailable \"database unavailable\"", st.Code(), st.Message())
			}
		})
	}
	// Client mistakes keep their text.
	w := httptest.NewRecorder()
	writeReply(w, nil, http.StatusOK, &reply{}, errNotFound)
	if w.Code != http.StatusNotFound || !strings.Contains(w.Body.String(), errNotFound.Error()) {
		t.Errorf("not found: %d %s", w.Code, w.Body.String())
	}
}
