package canary

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"reflect"
	"strings"

	"go.opentelemetry.io/otel/attribute"

	"github.com/reqcanary/canary/planstore"
)

// EventRampChange is the audit record of a ramp action through the admin
// handler (start, pause, resume, abort, promote), done or refused.
const EventRampChange = "canary.ramp.change"

// AdminCodeRampRefused is the code of a ramp action the controller refused:
// not allowed in the ramp's phase, no ramp section in the plan, or the
// state changed meanwhile (409).
const AdminCodeRampRefused = "ramp_refused"

// AdminCodeNoRamp: the admin handler has no ramp controller (WithAdminRamp).
const AdminCodeNoRamp = "no_ramp"

// RampActor is what the admin handler needs of a ramp controller: run an
// operator action by name ("status", "start", "pause", "resume", "abort",
// "promote") with who and why, and return the ramp's status as a value that
// encodes to JSON. *ramp.Controller has it (its Act method); the interface
// keeps the engine free of the controller's dependencies.
type RampActor interface {
	Act(ctx context.Context, action string, c planstore.Change) (any, error)
}

// WithAdminRamp gives the admin handler the ramp controller of the plan's
// ramp section (package ramp): GET …/ramp answers its status, POST
// …/ramp/{start,pause,resume,abort,promote} with {"note", "author"} acts on
// it, token-protected and audited ([EventRampChange]) like the plan routes;
// the controller records each action in the plan's history too. Without it
// the ramp routes answer 404 no_ramp.
func WithAdminRamp(r RampActor) AdminOption {
	if v := reflect.ValueOf(r); r != nil && v.Kind() == reflect.Pointer && v.IsNil() {
		r = nil // a typed nil (a *ramp.Controller left unset) is no controller
	}
	return adminOptionFunc(func(c *adminConfig) { c.ramp = r })
}

var rampActions = []string{"start", "pause", "resume", "abort", "promote"}

// rampRoute returns the ramp action the path asks for: "status" for …/ramp,
// the action for …/ramp/<action>, "" for another path. A path ending in
// /ramp/<unknown> returns that word, which serveRamp refuses.
func rampRoute(path string) string {
	path = strings.TrimSuffix(path, "/")
	if strings.HasSuffix(path, "/ramp") {
		return "status"
	}
	i := strings.LastIndex(path, "/ramp/")
	if i < 0 || !contains(rampActions, path[i+len("/ramp/"):]) {
		return "" // an unknown action is refused as an unknown route
	}
	return path[i+len("/ramp/"):]
}

var rampFields = []string{"note", "author"}

// serveRamp serves the ramp routes.
func (h *adminHandler) serveRamp(w http.ResponseWriter, r *http.Request, action string) {
	method := http.MethodPost
	if action == "status" {
		method = http.MethodGet
	}
	if r.Method != method && !(method == http.MethodGet && r.Method == http.MethodHead) {
		w.Header().Set("Allow", method)
		writeJSON(w, http.StatusMethodNotAllowed, adminErrorBody{Code: AdminCodeBadRequest,
			Error: "method " + r.Method + " not allowed on " + r.URL.Path + "; use " + method})
		return
	}
	if !h.requireToken(w, r, EventRampChange) {
		return
	}
	if h.cfg.ramp == nil {
		writeJSON(w, http.StatusNotFound, adminErrorBody{Code: AdminCodeNoRamp,
			Error: "this admin handler has no ramp controller (canary.WithAdminRamp)"})
		return
	}
	var req struct {
		Note   string `json:"note"`
		Author string `json:"author"`
	}
	if action != "status" {
		field, err := decodeAdminBody(w, r, maxAdminBody, rampFields, `{"note": "…", "author": "…"}`, &req)
		if err == nil {
			if field, err = checkText("note", req.Note, MaxAdminNoteLen); err == nil {
				field, err = checkText("author", req.Author, MaxAdminAuthorLen)
			}
		}
		if err != nil {
			h.badWrite(w, r, EventRampChange, "ramp."+action, field, err)
			return
		}
		if req.Author == "" {
			req.Author = DefaultAdminAuthor
		}
	}
	st, err := h.cfg.ramp.Act(r.Context(), action, planstore.Change{Author: req.Author, Note: req.Note})
	if action != "status" {
		outcome := "done"
		if err != nil {
			outcome = rampErrorCode(err)
		}
		body := fmt.Sprintf("ramp.%s by %s: %s", action, req.Author, outcome)
		attrs := []attribute.KeyValue{attribute.String("canary.admin.author", req.Author), attribute.String("canary.admin.note", req.Note)}
		if err != nil {
			attrs = append(attrs, attribute.String("canary.admin.error", err.Error()))
			h.e.log.Warn("canary: "+body, "note", req.Note, "remote", r.RemoteAddr, "error", err)
		} else {
			h.e.log.Info("canary: "+body, "note", req.Note, "remote", r.RemoteAddr)
		}
		h.emitAudit(r, EventRampChange, "ramp."+action, outcome, body, attrs...)
	}
	if err != nil {
		code := http.StatusConflict
		if rampErrorCode(err) == AdminCodeUnavailable {
			code = http.StatusServiceUnavailable
		}
		writeJSON(w, code, adminErrorBody{Code: rampErrorCode(err), Error: err.Error()})
		return
	}
	writeJSON(w, http.StatusOK, st)
}

func rampErrorCode(err error) string {
	if errors.Is(err, planstore.ErrUnavailable) || errors.Is(err, context.DeadlineExceeded) {
		return AdminCodeUnavailable
	}
	return AdminCodeRampRefused
}
