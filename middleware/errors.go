package middleware

import (
	"encoding/json"
	"errors"
	"net/http"

	"github.com/reqcanary/canary/tenant"
)

// errorBody is the JSON body of an error response.
type errorBody struct {
	Error string `json:"error"`
	Field string `json:"field,omitempty"`
}

// response maps an error from the Decider to its HTTP status and body. It is
// the one place where errors become statuses:
//
//   - a [*tenant.FieldError] (or an error wrapping one) is 400, and the body
//     names the field: {"error":"X-Tenant-ID: longer than 64 bytes","field":"X-Tenant-ID"};
//   - any other error matching [tenant.ErrInvalidField] is 400 with its text;
//   - anything else is 500 with a fixed text, since it may carry internals.
func response(err error) (int, errorBody) {
	var fe *tenant.FieldError
	switch {
	case errors.As(err, &fe):
		return http.StatusBadRequest, errorBody{Error: fe.Error(), Field: fe.Field}
	case errors.Is(err, tenant.ErrInvalidField):
		return http.StatusBadRequest, errorBody{Error: err.Error()}
	}
	return http.StatusInternalServerError, errorBody{Error: "canary: the request could not be labelled"}
}

// writeError answers the request with the status and JSON body of err.
func writeError(w http.ResponseWriter, err error) {
	status, body := response(err)
	b, mErr := json.Marshal(body)
	if mErr != nil { // cannot happen for two strings; keep the status anyway
		b = []byte(`{"error":"canary: error"}`)
	}
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_, _ = w.Write(append(b, '\n'))
}
