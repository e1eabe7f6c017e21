package canary

import (
	"bytes"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
)

// MaxAdminNoteLen is the longest note a POST to the [AdminHandler] accepts,
// in bytes.
const MaxAdminNoteLen = 200

// maxAdminBody bounds a POST body.
const maxAdminBody = 4 << 10

// AdminOption configures [AdminHandler].
type AdminOption interface {
	applyAdmin(*adminConfig)
}

type adminConfig struct {
	token []byte // sha256 of the token; nil: read-only
}

type adminOptionFunc func(*adminConfig)

func (f adminOptionFunc) applyAdmin(c *adminConfig) { f(c) }

// WithAdminToken makes the admin handler accept POSTs that carry the header
// "Authorization: Bearer <token>". Tokens are compared in constant time.
// Default: no token; the handler is read-only and answers POSTs with 403. An
// empty token keeps the default.
func WithAdminToken(token string) AdminOption {
	return adminOptionFunc(func(c *adminConfig) {
		if token != "" {
			h := sha256.Sum256([]byte(token))
			c.token = h[:]
		}
	})
}

// AdminHandler returns the operator's http.Handler for engine e. Mount it on
// an internal listener or path (it is not meant for the public internet):
//
//   - GET (or HEAD) answers 200 with the engine's [Status] as JSON: the plan
//     in force and its version, the last plan-file error, the kill switch
//     and what holds it (operator, plan, guard, fleet), the guard's
//     configuration, trip and per-cohort window figures (requests, failures,
//     failure rate, p50/p95/p99), the fleet switch, and the count of
//     untrusted overrides. Without the bearer token of [WithAdminToken] the
//     plan's salt and override.trusted_cidrs are left out (listed under
//     "redacted"): the salt tells which user ids are canary;
//   - POST with a JSON body {"action": "on" | "off" | "rearm", "note": "…"}
//     acts on the kill switch ([Engine.TurnKillSwitch] for on and off,
//     [Engine.RearmGuard] for rearm; on every instance with a fleet switch)
//     and answers 200 with the new Status. It needs the bearer token of
//     [WithAdminToken]: 401 without it or with a wrong one, 403 when the
//     handler has no token (read-only). A bad body is 400 with a JSON error
//     naming the field, {"error": "…", "field": "action"}. With a fleet
//     switch whose Redis cannot be written, "on" answers 202 with the Status
//     (the switch is on in this process, fleet.pending is true, and the
//     fleet is written when Redis answers: see [ErrFleetPending]), "off"
//     answers 503 and changes nothing, and "rearm" re-arms this process's
//     guard and answers 503;
//   - any other method is 405.
//
// A nil engine gives a handler that answers 500. The handler is safe for
// concurrent use.
func AdminHandler(e *Engine, opts ...AdminOption) http.Handler {
	c := &adminConfig{}
	for _, o := range opts {
		if o != nil {
			o.applyAdmin(c)
		}
	}
	return &adminHandler{e: e, cfg: c}
}

type adminHandler struct {
	e   *Engine
	cfg *adminConfig
}

var _ http.Handler = (*adminHandler)(nil)

// adminRequest is the body of a POST.
type adminRequest struct {
	Action string `json:"action"`
	Note   string `json:"note"`
}

func (h *adminHandler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Cache-Control", "no-store")
	if h.e == nil {
		adminError(w, http.StatusInternalServerError, "canary.AdminHandler: nil engine", "")
		return
	}
	switch r.Method {
	case http.MethodGet, http.MethodHead:
		h.writeStatus(w, r) // admin_redact.go
	case http.MethodPost:
		h.post(w, r)
	default:
		w.Header().Set("Allow", "GET, HEAD, POST")
		adminError(w, http.StatusMethodNotAllowed, "method "+r.Method+" not allowed; use GET or POST", "")
	}
}

func (h *adminHandler) post(w http.ResponseWriter, r *http.Request) {
	if h.cfg.token == nil {
		adminError(w, http.StatusForbidden,
			"read-only: this admin handler has no token (canary.WithAdminToken), so it does not accept POST", "")
		return
	}
	if !h.authorized(r) {
		w.Header().Set("WWW-Authenticate", `Bearer realm="canary"`)
		adminError(w, http.StatusUnauthorized, "missing or wrong bearer token", "Authorization")
		return
	}
	req, field, err := readAdminRequest(w, r)
	if err != nil {
		adminError(w, http.StatusBadRequest, err.Error(), field)
		return
	}
	ctx := r.Context()
	switch req.Action {
	case "on":
		err = h.e.TurnKillSwitch(ctx, true, req.Note)
	case "off":
		err = h.e.TurnKillSwitch(ctx, false, req.Note)
	case "rearm":
		err = h.e.RearmGuard(ctx)
	}
	if errors.Is(err, ErrFleetPending) {
		// On here at once; the fleet is written when Redis answers.
		writeJSON(w, http.StatusAccepted, h.e.Status())
		return
	}
	if err != nil {
		adminError(w, http.StatusServiceUnavailable, err.Error(), "")
		return
	}
	writeJSON(w, http.StatusOK, h.e.Status())
}

// authorized compares the bearer token with the configured one, in constant
// time (both are hashed first, so their lengths do not leak either).
func (h *adminHandler) authorized(r *http.Request) bool {
	auth := r.Header.Get("Authorization")
	scheme, tok, ok := strings.Cut(auth, " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		tok = ""
	}
	got := sha256.Sum256([]byte(strings.TrimSpace(tok)))
	return subtle.ConstantTimeCompare(got[:], h.cfg.token) == 1 && tok != ""
}

// readAdminRequest reads and checks a POST body; on error it names the field.
func readAdminRequest(w http.ResponseWriter, r *http.Request) (adminRequest, string, error) {
	var req adminRequest
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxAdminBody))
	if err != nil {
		if maxErr := (*http.MaxBytesError)(nil); errors.As(err, &maxErr) {
			return req, "body", errors.New("body: larger than 4096 bytes")
		}
		return req, "body", fmt.Errorf("body: cannot be read: %w", err)
	}
	if field, err := checkAdminKeys(body); err != nil { // admin_keys.go
		return req, field, err
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&req); err != nil {
		var maxErr *http.MaxBytesError
		var typeErr *json.UnmarshalTypeError
		switch {
		case errors.Is(err, io.EOF):
			return req, "body", errors.New(`body: empty; want {"action": "on" | "off" | "rearm"}`)
		case errors.As(err, &maxErr):
			return req, "body", errors.New("body: larger than 4096 bytes")
		case errors.As(err, &typeErr) && typeErr.Field != "":
			return req, typeErr.Field, errors.New(typeErr.Field + ": must be a string")
		case errors.As(err, &typeErr): // the body itself is a number, string, array…
			return req, "body", errors.New("body: must be a JSON object, got a JSON " + typeErr.Value)
		case strings.HasPrefix(err.Error(), "json: unknown field "):
			f := strings.Trim(strings.TrimPrefix(err.Error(), "json: unknown field "), `"`)
			if f == "" {
				return req, "body", errors.New(`body: a field with an empty name; known fields: action, note`)
			}
			return req, f, errors.New(f + `: unknown field; known fields: action, note`)
		}
		return req, "body", errors.New("body: not a JSON object: " + err.Error())
	}
	if dec.More() {
		return req, "body", errors.New("body: more than one JSON value")
	}
	switch req.Action {
	case "on", "off", "rearm":
	case "":
		return req, "action", errors.New("action: required: on, off or rearm")
	default:
		return req, "action", errors.New(`action: must be on, off or rearm, got "` + truncate(req.Action, 40) + `"`)
	}
	if len(req.Note) > MaxAdminNoteLen {
		return req, "note", errors.New("note: longer than 200 bytes")
	}
	return req, "", nil
}

func truncate(s string, n int) string {
	if len(s) > n {
		return s[:n] + "…"
	}
	return s
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		adminError(w, http.StatusInternalServerError, "encoding the status: "+err.Error(), "")
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	_, _ = w.Write(append(b, '\n'))
}

func adminError(w http.ResponseWriter, code int, msg, field string) {
	body := struct {
		Error string `json:"error"`
		Field string `json:"field,omitempty"`
	}{msg, field}
	b, _ := json.Marshal(body)
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	_, _ = w.Write(append(b, '\n'))
}
