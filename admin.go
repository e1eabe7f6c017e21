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
	"reflect"
	"strconv"
	"strings"

	"github.com/reqcanary/canary/console"
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
	ramp       RampActor // WithAdminRamp; nil: the ramp routes answer 404
	token      []byte    // sha256 of the token; nil: read-only
	maxStreams int       // concurrent event streams
}

type adminOptionFunc func(*adminConfig)

func (f adminOptionFunc) applyAdmin(c *adminConfig) { f(c) }

// WithAdminToken makes the admin handler accept POSTs that carry the header
// "Authorization: Bearer <token>". Tokens are compared in constant time.
// Default: no token; the handler is read-only and answers POSTs with 403. An
// empty token keeps the default. Spaces and line ends around the token are
// dropped (as they are from the request's header), so a token read from a
// file with its final newline still matches.
func WithAdminToken(token string) AdminOption {
	token = strings.TrimSpace(token)
	return adminOptionFunc(func(c *adminConfig) {
		if token != "" {
			h := sha256.Sum256([]byte(token))
			c.token = h[:]
		}
	})
}

// AdminHandler returns the operator's http.Handler for engine e. Mount it on
// an internal listener or path (it is not meant for the public internet). It
// routes on the end of the URL path, so it works mounted at any prefix, with
// or without http.StripPrefix (mount the prefix and its subtree, e.g.
// "/admin/canary" and "/admin/canary/"):
//
//   - GET (or HEAD) on the handler's own path answers 200 with the engine's
//     [Status] as JSON: the plan in force and its version, the last
//     plan-file error, the plan store's state, the kill switch and what
//     holds it (operator, plan, guard, fleet), the guard's configuration,
//     trip and per-cohort window figures (requests, failures, failure rate,
//     p50/p95/p99), the fleet switch, and the count of untrusted overrides.
//     Without the bearer token of [WithAdminToken] the plan's salt and
//     override.trusted_cidrs are left out (listed under "redacted"): the
//     salt tells which user ids are canary;
//   - POST on the handler's own path with a JSON body {"action": "on" |
//     "off" | "rearm", "note": "…", "author": "…"} acts on the kill switch
//     ([Engine.TurnKillSwitch] for on and off, [Engine.RearmGuard] for
//     rearm; on every instance with a fleet switch) and answers 200 with the
//     new Status. With a fleet switch whose Redis cannot be written, "on"
//     answers 202 with the Status (the switch is on in this process,
//     fleet.pending is true, and the fleet is written when Redis answers:
//     see [ErrFleetPending]), "off" answers 503 and changes nothing, and
//     "rearm" re-arms this process's guard and answers 503;
//   - with a plan store ([WithPlanStore]): GET …/plan (the store's current
//     plan, its version, author, note, and the version this engine has in
//     force: [PlanResponse]), GET …/plan/history?limit=N (newest first,
//     with diffs), GET …/plan/diff?from=A&to=B ([DiffResponse]), POST
//     …/plan/apply ([PlanApplyRequest]: the YAML text, the expected version,
//     note, author; validated with [ValidatePlan] before anything is
//     written) and POST …/plan/rollback ([PlanRollbackRequest]). A stale
//     expected version is 409 naming both versions, an invalid plan 422
//     with the parser's line-numbered message, an unknown version 404, the
//     store unreachable 503; without a store these routes answer 404;
//   - GET …/explain?tenant=T&user=U answers [Engine.Explain];
//   - with a ramp controller ([WithAdminRamp]): GET …/ramp (its status) and
//     POST …/ramp/{start,pause,resume,abort,promote} with {"note", "author"};
//     a refused action is 409 ramp_refused, etcd unreachable 503;
//   - GET …/events is a Server-Sent Events stream: an event "status" at
//     once and every second after, its data the status as the GET answers
//     it without a token (an EventSource cannot send one). It ends when the
//     client goes or the engine is closed; at most [WithAdminMaxStreams]
//     streams at once (one more is 503, code AdminCodeTooManyStreams);
//   - GET …/ui/ is the operator's web console (package console): the
//     overview, a live chart of canary against stable (from …/events), the
//     plan with its history, diffs, apply and rollback, explain, and the
//     kill switch. It is read-only by itself: its script calls the routes
//     above with the token the operator types in, so its actions are the
//     API's, checked and audited alike.
//
// Every route but the status GET, the events and the console needs the bearer token of [WithAdminToken]
// (the plan's text holds its salt, and explain tells who is canary): 401
// without it or with a wrong one, 403 when the handler has no token
// (read-only). Errors are JSON: {"error": "…", "field": "…", "code": "…"}
// (AdminCode*), the field naming what is wrong. A path whose last two
// segments name a route's parts (plan, apply, ramp, start, events, ui…) but
// match no route is 404 unknown_route, never the status or the kill switch;
// so mount the handler under a prefix that does not end in such a word. Each write, done or refused,
// is logged and emitted as an OpenTelemetry log record ([EventPlanChange],
// [EventKillSwitchChange]) with the author, note, remote address, outcome and
// the versions from and to; plan writes are also in the store's history.
// Other methods are 405.
//
// A nil engine gives a handler that answers 500. The handler is safe for
// concurrent use.
func AdminHandler(e *Engine, opts ...AdminOption) http.Handler {
	c := &adminConfig{maxStreams: DefaultAdminMaxStreams}
	for _, o := range opts {
		if o != nil {
			o.applyAdmin(c)
		}
	}
	h := &adminHandler{e: e, cfg: c, streams: make(chan struct{}, c.maxStreams)}
	h.ui = console.Handler(console.Config{Status: h.redactedStatusJSON})
	return h
}

type adminHandler struct {
	e       *Engine
	cfg     *adminConfig
	streams chan struct{} // a slot per event stream being served
	ui      http.Handler  // the console (package console), under …/ui/
}

var _ http.Handler = (*adminHandler)(nil)

// adminRequest is the body of a POST.
type adminRequest struct {
	Action string `json:"action"`
	Note   string `json:"note"`
	Author string `json:"author"`
}

func (h *adminHandler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Cache-Control", "no-store")
	if h.e == nil {
		adminError(w, http.StatusInternalServerError, "canary.AdminHandler: nil engine", "")
		return
	}
	if console.Owns(r.URL.Path) {
		h.ui.ServeHTTP(w, r) // read-only; its script calls the routes below
		return
	}
	if strings.HasSuffix(strings.TrimSuffix(r.URL.Path, "/"), "/events") {
		h.serveEvents(w, r) // admin_events.go
		return
	}
	if rt, method := routeOf(r.URL.Path); rt != routeStatus {
		h.servePlanRoute(w, r, rt, method) // admin_plan.go
		return
	}
	if action := rampRoute(r.URL.Path); action != "" {
		h.serveRamp(w, r, action) // admin_ramp.go
		return
	}
	if seg := reservedSegment(r.URL.Path); seg != "" {
		// A mistyped route (…/plan/aply, …/ramp/start/x) is not the status
		// or the kill switch.
		writeJSON(w, http.StatusNotFound, adminErrorBody{Code: AdminCodeUnknownRoute,
			Error: "no admin route " + strconv.Quote(truncate(r.URL.Path, 200)) + " (under \"" + seg + "\"); see canary.AdminHandler"})
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
	if !h.requireToken(w, r, EventKillSwitchChange) { // admin_plan.go
		return
	}
	req, field, err := readAdminRequest(w, r)
	if err != nil {
		h.audit(r, EventKillSwitchChange, "kill_switch", AdminCodeBadRequest, err.Error())
		writeJSON(w, http.StatusBadRequest, adminErrorBody{Code: AdminCodeBadRequest, Error: err.Error(), Field: field})
		return
	}
	ctx := r.Context()
	defer func() { h.auditKill(r, req, err) }()
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
		writeJSON(w, http.StatusServiceUnavailable, adminErrorBody{Code: AdminCodeUnavailable, Error: err.Error()})
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

// readAdminRequest reads and checks a kill-switch POST body; on error it
// names the field.
func readAdminRequest(w http.ResponseWriter, r *http.Request) (adminRequest, string, error) {
	var req adminRequest
	if field, err := decodeAdminBody(w, r, maxAdminBody, killFields, `{"action": "on" | "off" | "rearm"}`, &req); err != nil {
		return req, field, err
	}
	switch req.Action {
	case "on", "off", "rearm":
	case "":
		return req, "action", errors.New("action: required: on, off or rearm")
	default:
		return req, "action", errors.New(`action: must be on, off or rearm, got "` + truncate(req.Action, 40) + `"`)
	}
	if field, err := checkText("note", req.Note, MaxAdminNoteLen); err != nil {
		return req, field, err
	}
	if field, err := checkText("author", req.Author, MaxAdminAuthorLen); err != nil {
		return req, field, err
	}
	if req.Author == "" {
		req.Author = DefaultAdminAuthor
	}
	return req, "", nil
}

// killFields are the keys of a kill-switch POST body.
var killFields = []string{"action", "note", "author"}

// decodeAdminBody reads a POST body of at most limit bytes into dst, a
// pointer to a struct whose JSON keys are fields, refusing unknown,
// repeated or miscased keys, wrong types and trailing data. On error it
// returns the field to name (or "body") and an error starting with it; want
// describes the expected body for an empty one.
func decodeAdminBody(w http.ResponseWriter, r *http.Request, limit int64, fields []string, want string, dst any) (string, error) {
	tooLarge := fmt.Errorf("body: larger than %d bytes", limit)
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, limit))
	if err != nil {
		if maxErr := (*http.MaxBytesError)(nil); errors.As(err, &maxErr) {
			return "body", tooLarge
		}
		return "body", fmt.Errorf("body: cannot be read: %w", err)
	}
	if field, err := checkAdminKeys(body, fields); err != nil { // admin_keys.go
		return field, err
	}
	known := strings.Join(fields, ", ")
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(dst); err != nil {
		var typeErr *json.UnmarshalTypeError
		switch {
		case errors.Is(err, io.EOF):
			return "body", errors.New("body: empty; want " + want)
		case errors.As(err, &typeErr) && typeErr.Field != "":
			return typeErr.Field, fmt.Errorf("%s: must be a %s", typeErr.Field, jsonKind(typeErr.Type.Kind()))
		case errors.As(err, &typeErr): // the body itself is a number, string, array…
			return "body", errors.New("body: must be a JSON object, got a JSON " + typeErr.Value)
		case strings.HasPrefix(err.Error(), "json: unknown field "):
			f := strings.Trim(strings.TrimPrefix(err.Error(), "json: unknown field "), `"`)
			if f == "" {
				return "body", errors.New("body: a field with an empty name; known fields: " + known)
			}
			return f, errors.New(f + ": unknown field; known fields: " + known)
		}
		return "body", errors.New("body: not a JSON object: " + err.Error())
	}
	if len(bytes.TrimSpace(body[dec.InputOffset():])) > 0 {
		return "body", errors.New("body: data after the JSON object")
	}
	return "", nil
}

// jsonKind names the JSON type a Go field of kind k takes.
func jsonKind(k reflect.Kind) string {
	switch k {
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return "whole number"
	case reflect.Float32, reflect.Float64:
		return "number"
	case reflect.Bool:
		return "boolean"
	}
	return "string"
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
