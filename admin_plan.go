package canary

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"go.opentelemetry.io/otel/attribute"
	otellog "go.opentelemetry.io/otel/log"

	"github.com/reqcanary/canary/planstore"
)

// Events of the admin API's writes, emitted through the engine's OpenTelemetry
// logger provider ([WithLoggerProvider]) as audit records.
const (
	// EventPlanChange: a plan apply or rollback through the admin API, done
	// or refused (attribute canary.admin.outcome).
	EventPlanChange = "canary.plan.change"
	// EventKillSwitchChange: a kill-switch on/off or guard re-arm through the
	// admin API, done or refused.
	EventKillSwitchChange = "canary.kill_switch.change"
)

// MaxAdminAuthorLen is the longest author a write to the [AdminHandler]
// accepts, in bytes.
const MaxAdminAuthorLen = 100

// DefaultAdminAuthor is the author recorded for a write whose body names none.
const DefaultAdminAuthor = "admin-api"

// maxPlanBody bounds the body of a plan apply: the plan (at most
// planstore.MaxPlanBytes) JSON-escaped, and the other fields.
const maxPlanBody = 2*planstore.MaxPlanBytes + 4<<10

// Codes in the "code" of the admin API's JSON errors, for scripts
// (canaryctl maps them to its exit codes).
const (
	AdminCodeBadRequest      = "bad_request"       // a field of the request is wrong (see "field")
	AdminCodeUnauthorized    = "unauthorized"      // missing or wrong bearer token
	AdminCodeReadOnly        = "read_only"         // the handler has no token
	AdminCodeNoPlanStore     = "no_plan_store"     // the engine has no plan store (WithPlanStore)
	AdminCodeInvalidPlan     = "invalid_plan"      // the plan does not parse or compile; nothing written
	AdminCodeVersionConflict = "version_conflict"  // expect_version is not the current version
	AdminCodeVersionNotFound = "version_not_found" // the version is not (or no longer) in the history
	AdminCodeUnavailable     = "store_unavailable" // the plan store (or the fleet's Redis) did not answer
	AdminCodeUnknownRoute    = "unknown_route"     // a path under plan, ramp, explain, events or ui that is no route
)

// adminRoute is what the end of the URL path asks for.
type adminRoute int

const (
	routeStatus adminRoute = iota
	routePlan
	routeHistory
	routeDiff
	routeApply
	routeRollback
	routeExplain
)

// adminRoutes are matched against the end of the path, so that the handler
// works mounted at any prefix, with or without http.StripPrefix.
var adminRoutes = []struct {
	suffix string
	route  adminRoute
	method string
}{
	{"/plan/history", routeHistory, http.MethodGet},
	{"/plan/diff", routeDiff, http.MethodGet},
	{"/plan/apply", routeApply, http.MethodPost},
	{"/plan/rollback", routeRollback, http.MethodPost},
	{"/plan", routePlan, http.MethodGet},
	{"/explain", routeExplain, http.MethodGet},
}

// routeOf returns the route of path and the method it takes.
func routeOf(path string) (adminRoute, string) {
	path = strings.TrimSuffix(path, "/")
	for _, rt := range adminRoutes {
		if strings.HasSuffix(path, rt.suffix) {
			return rt.route, rt.method
		}
	}
	return routeStatus, ""
}

// adminErrorBody is the JSON of an error answer.
type adminErrorBody struct {
	Error           string `json:"error"`
	Field           string `json:"field,omitempty"`
	Code            string `json:"code,omitempty"`
	ExpectedVersion *int64 `json:"expected_version,omitempty"`
	CurrentVersion  *int64 `json:"current_version,omitempty"`
}

// requireToken answers 403 or 401 and returns false unless the request
// carries the handler's token.
func (h *adminHandler) requireToken(w http.ResponseWriter, r *http.Request, event string) bool {
	if h.cfg.token != nil && h.authorized(r) {
		return true
	}
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		// A refused write is audited like any other.
		outcome := AdminCodeUnauthorized
		if h.cfg.token == nil {
			outcome = AdminCodeReadOnly
		}
		h.audit(r, event, r.Method+" "+truncate(r.URL.Path, 200), outcome, "refused before reading the body")
	}
	if h.cfg.token == nil {
		writeJSON(w, http.StatusForbidden, adminErrorBody{Code: AdminCodeReadOnly,
			Error: "read-only: this admin handler has no token (canary.WithAdminToken); " + r.URL.Path + " needs one"})
		return false
	}
	if !h.authorized(r) {
		w.Header().Set("WWW-Authenticate", `Bearer realm="canary"`)
		writeJSON(w, http.StatusUnauthorized, adminErrorBody{Code: AdminCodeUnauthorized,
			Error: "missing or wrong bearer token", Field: "Authorization"})
		return false
	}
	return true
}

// servePlanRoute serves every route but the status: the plan, its history
// and diffs, apply, rollback and explain. All need the token: the plan's
// text holds its salt, and explain answers which users are canary.
func (h *adminHandler) servePlanRoute(w http.ResponseWriter, r *http.Request, rt adminRoute, method string) {
	if r.Method != method && !(method == http.MethodGet && r.Method == http.MethodHead) {
		w.Header().Set("Allow", method)
		writeJSON(w, http.StatusMethodNotAllowed, adminErrorBody{Code: AdminCodeBadRequest,
			Error: "method " + r.Method + " not allowed on " + r.URL.Path + "; use " + method})
		return
	}
	event := EventPlanChange
	if rt == routeExplain {
		event = "canary.admin.explain"
	}
	if !h.requireToken(w, r, event) {
		return
	}
	if rt == routeExplain {
		h.explain(w, r)
		return
	}
	if h.e.ps == nil {
		writeJSON(w, http.StatusNotFound, adminErrorBody{Code: AdminCodeNoPlanStore,
			Error: "this engine has no plan store (canary.WithPlanStore): its plan comes from a file or the code"})
		return
	}
	switch rt {
	case routePlan:
		h.getPlan(w, r)
	case routeHistory:
		h.history(w, r)
	case routeDiff:
		h.diff(w, r)
	case routeApply:
		h.apply(w, r)
	case routeRollback:
		h.rollback(w, r)
	}
}

// PlanResponse is the JSON of GET …/plan: the store's current plan, and the
// store version this engine has in force.
type PlanResponse struct {
	planstore.Record
	// InForce is this engine's plan store state (the version it decides on).
	InForce *PlanStoreStatus `json:"in_force"`
}

func (h *adminHandler) getPlan(w http.ResponseWriter, r *http.Request) {
	p, err := h.e.ps.cfg.store.Get(r.Context())
	if err != nil {
		writeStoreError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, PlanResponse{Record: recordOf(p, ""), InForce: h.e.planStoreStatus()})
}

func (h *adminHandler) history(w http.ResponseWriter, r *http.Request) {
	limit := 0
	if s := r.URL.Query().Get("limit"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 0 {
			writeJSON(w, http.StatusBadRequest, adminErrorBody{Code: AdminCodeBadRequest, Field: "limit",
				Error: "limit: must be a whole number >= 0 (0: all the store keeps), got " + strconv.Quote(truncate(s, 40))})
			return
		}
		limit = n
	}
	entries, err := h.e.ps.cfg.store.History(r.Context(), limit)
	if err != nil {
		writeStoreError(w, err)
		return
	}
	out := make([]planstore.Record, 0, len(entries))
	for _, e := range entries {
		out = append(out, recordOf(e.Plan, e.Diff))
	}
	writeJSON(w, http.StatusOK, out)
}

// DiffResponse is the JSON of GET …/plan/diff?from=A&to=B.
type DiffResponse struct {
	From int64  `json:"from"`
	To   int64  `json:"to"`
	Diff string `json:"diff"` // line diff, see planstore.Diff
}

func (h *adminHandler) diff(w http.ResponseWriter, r *http.Request) {
	var v [2]int64
	for i, name := range []string{"from", "to"} {
		s := r.URL.Query().Get(name)
		n, err := strconv.ParseInt(s, 10, 64)
		if err != nil || n < 1 {
			writeJSON(w, http.StatusBadRequest, adminErrorBody{Code: AdminCodeBadRequest, Field: name,
				Error: name + ": required, a version >= 1, got " + strconv.Quote(truncate(s, 40))})
			return
		}
		v[i] = n
	}
	entries, err := h.e.ps.cfg.store.History(r.Context(), 0)
	if err != nil {
		writeStoreError(w, err)
		return
	}
	var texts [2][]byte
	var found [2]bool
	for _, e := range entries {
		for i := range v {
			if e.Version == v[i] {
				texts[i], found[i] = e.Data, true
			}
		}
	}
	for i := range v {
		if !found[i] {
			writeStoreError(w, fmt.Errorf("%w: version %d", planstore.ErrVersionNotFound, v[i]))
			return
		}
	}
	writeJSON(w, http.StatusOK, DiffResponse{From: v[0], To: v[1], Diff: planstore.Diff(texts[0], texts[1])})
}

// PlanApplyRequest is the body of POST …/plan/apply.
type PlanApplyRequest struct {
	// Plan is the plan's YAML text.
	Plan string `json:"plan"`
	// ExpectVersion is the version the write is based on; nil writes on top
	// of whatever is current.
	ExpectVersion *int64 `json:"expect_version,omitempty"`
	// Note says why (at most MaxAdminNoteLen bytes); Author who (at most
	// MaxAdminAuthorLen bytes, default DefaultAdminAuthor).
	Note   string `json:"note,omitempty"`
	Author string `json:"author,omitempty"`
}

// PlanRollbackRequest is the body of POST …/plan/rollback.
type PlanRollbackRequest struct {
	// To is the version whose text to restore; 0 (or absent): the one
	// before the current version.
	To            int64  `json:"to,omitempty"`
	ExpectVersion *int64 `json:"expect_version,omitempty"`
	Note          string `json:"note,omitempty"`
	Author        string `json:"author,omitempty"`
}

var (
	applyFields    = []string{"plan", "expect_version", "note", "author"}
	rollbackFields = []string{"to", "expect_version", "note", "author"}
)

// checkChange checks the fields every write has and returns the change and
// the expected version.
func checkChange(expect *int64, note, author string) (planstore.Change, int64, string, error) {
	exp := planstore.AnyVersion
	if expect != nil {
		if *expect < 0 {
			return planstore.Change{}, 0, "expect_version", fmt.Errorf("expect_version: must be >= 0 (0: the store is empty), got %d; leave it out to write on top of any version", *expect)
		}
		exp = *expect
	}
	if field, err := checkText("note", note, MaxAdminNoteLen); err != nil {
		return planstore.Change{}, 0, field, err
	}
	if field, err := checkText("author", author, MaxAdminAuthorLen); err != nil {
		return planstore.Change{}, 0, field, err
	}
	if author == "" {
		author = DefaultAdminAuthor
	}
	return planstore.Change{Author: author, Note: note}, exp, "", nil
}

// checkText refuses a note or author that is too long, not UTF-8 or holds
// control characters (they go to logs and terminals).
func checkText(field, s string, max int) (string, error) {
	if len(s) > max {
		return field, fmt.Errorf("%s: longer than %d bytes", field, max)
	}
	if !utf8.ValidString(s) {
		return field, errors.New(field + ": not valid UTF-8")
	}
	for _, c := range s {
		if unicode.IsControl(c) || unicode.Is(unicode.Cf, c) {
			return field, fmt.Errorf("%s: contains a control or format character (%U)", field, c)
		}
	}
	return "", nil
}

func (h *adminHandler) apply(w http.ResponseWriter, r *http.Request) {
	var req PlanApplyRequest
	if field, err := decodeAdminBody(w, r, maxPlanBody, applyFields, `{"plan": "<YAML>", "expect_version": N, "note": "…"}`, &req); err != nil {
		h.badWrite(w, r, EventPlanChange, "plan.apply", field, err)
		return
	}
	c, exp, field, err := checkChange(req.ExpectVersion, req.Note, req.Author)
	if err == nil && strings.TrimSpace(req.Plan) == "" {
		field, err = "plan", errors.New("plan: required: the plan's YAML text")
	}
	if err != nil {
		h.badWrite(w, r, EventPlanChange, "plan.apply", field, err)
		return
	}
	p, err := h.e.ps.cfg.store.Apply(r.Context(), []byte(req.Plan), exp, c)
	h.auditPlan(r, "plan.apply", c, exp, p, err)
	if err != nil {
		writeStoreError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, recordOf(p, ""))
}

func (h *adminHandler) rollback(w http.ResponseWriter, r *http.Request) {
	var req PlanRollbackRequest
	if field, err := decodeAdminBody(w, r, maxAdminBody, rollbackFields, `{"to": N, "expect_version": N, "note": "…"}`, &req); err != nil {
		h.badWrite(w, r, EventPlanChange, "plan.rollback", field, err)
		return
	}
	c, exp, field, err := checkChange(req.ExpectVersion, req.Note, req.Author)
	if err == nil && req.To < 0 {
		field, err = "to", fmt.Errorf("to: must be >= 1, or 0 for the version before the current one; got %d", req.To)
	}
	if err != nil {
		h.badWrite(w, r, EventPlanChange, "plan.rollback", field, err)
		return
	}
	p, err := h.e.ps.cfg.store.Rollback(r.Context(), req.To, exp, c)
	h.auditPlan(r, "plan.rollback", c, exp, p, err)
	if err != nil {
		writeStoreError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, recordOf(p, ""))
}

// badWrite answers 400 for a write whose body is wrong, and audits it.
func (h *adminHandler) badWrite(w http.ResponseWriter, r *http.Request, event, action, field string, err error) {
	h.audit(r, event, action, AdminCodeBadRequest, err.Error())
	writeJSON(w, http.StatusBadRequest, adminErrorBody{Code: AdminCodeBadRequest, Field: field, Error: err.Error()})
}

// writeStoreError answers a plan store error with its status and code.
func writeStoreError(w http.ResponseWriter, err error) {
	b := adminErrorBody{Error: err.Error(), Code: storeErrorCode(err)}
	code := http.StatusInternalServerError
	var ce *planstore.ConflictError
	switch b.Code {
	case AdminCodeInvalidPlan:
		code, b.Field = http.StatusUnprocessableEntity, "plan"
	case AdminCodeVersionConflict:
		code = http.StatusConflict
		if errors.As(err, &ce) {
			b.ExpectedVersion, b.CurrentVersion = &ce.Expected, &ce.Current
		}
	case AdminCodeVersionNotFound:
		code = http.StatusNotFound
	case AdminCodeUnavailable:
		code = http.StatusServiceUnavailable
	}
	writeJSON(w, code, b)
}

// storeErrorCode is the admin code of a plan store error ("" for others).
func storeErrorCode(err error) string {
	switch {
	case err == nil:
		return ""
	case errors.Is(err, planstore.ErrInvalid):
		return AdminCodeInvalidPlan
	case errors.Is(err, planstore.ErrVersionConflict):
		return AdminCodeVersionConflict
	case errors.Is(err, planstore.ErrVersionNotFound):
		return AdminCodeVersionNotFound
	case errors.Is(err, planstore.ErrUnavailable), errors.Is(err, context.DeadlineExceeded), errors.Is(err, context.Canceled):
		return AdminCodeUnavailable
	}
	return "error"
}

func recordOf(p planstore.Plan, diff string) planstore.Record {
	return planstore.Record{Version: p.Version, Plan: string(p.Data), Author: p.Author, Note: p.Note, Time: p.Time,
		Action: p.Action, From: p.From, RolledBackTo: p.RolledBackTo, Diff: diff}
}

// auditPlan emits the audit record of a plan write (done or refused).
func (h *adminHandler) auditPlan(r *http.Request, action string, c planstore.Change, expect int64, p planstore.Plan, err error) {
	outcome := "done"
	if err != nil {
		outcome = storeErrorCode(err)
	}
	attrs := []attribute.KeyValue{
		attribute.String("canary.admin.author", c.Author),
		attribute.String("canary.admin.note", c.Note),
		attribute.Int64("canary.plan.expected_version", expect),
	}
	body := fmt.Sprintf("%s by %s: %s", action, c.Author, outcome)
	if err == nil {
		attrs = append(attrs, attribute.Int64("canary.plan.from_version", p.From), attribute.Int64("canary.plan.to_version", p.Version))
		body = fmt.Sprintf("%s by %s: version %d -> %d", action, c.Author, p.From, p.Version)
		if p.RolledBackTo != 0 {
			attrs = append(attrs, attribute.Int64("canary.plan.rolled_back_to", p.RolledBackTo))
		}
		h.e.log.Info("canary: "+body, "note", c.Note, "remote", r.RemoteAddr)
	} else {
		attrs = append(attrs, attribute.String("canary.admin.error", err.Error()))
		h.e.log.Warn("canary: "+body, "note", c.Note, "remote", r.RemoteAddr, "error", err)
	}
	h.emitAudit(r, EventPlanChange, action, outcome, body, attrs...)
}

// audit emits the audit record of a write refused before it reached the
// store or the switch.
func (h *adminHandler) audit(r *http.Request, event, action, outcome, msg string) {
	h.emitAudit(r, event, action, outcome, action+": "+outcome+": "+msg, attribute.String("canary.admin.error", msg))
}

func (h *adminHandler) emitAudit(r *http.Request, event, action, outcome, body string, attrs ...attribute.KeyValue) {
	if h.e.g.tel == nil {
		return
	}
	var rec otellog.Record
	rec.SetEventName(event)
	rec.SetTimestamp(time.Now())
	if outcome == "done" {
		rec.SetSeverity(otellog.SeverityInfo)
		rec.SetSeverityText("INFO")
	} else {
		rec.SetSeverity(otellog.SeverityWarn)
		rec.SetSeverityText("WARN")
	}
	rec.SetBody(attribute.StringValue(body))
	rec.AddAttributes(
		attribute.String("canary.admin.action", action),
		attribute.String("canary.admin.outcome", outcome),
		attribute.String("canary.admin.remote", r.RemoteAddr),
	)
	rec.AddAttributes(attrs...)
	h.e.g.tel.logger.Emit(context.WithoutCancel(r.Context()), rec)
}

// auditKill emits the audit record of a kill-switch POST.
func (h *adminHandler) auditKill(r *http.Request, req adminRequest, err error) {
	action := "kill_switch." + req.Action
	if req.Action == "rearm" {
		action = "guard.rearm"
	}
	outcome := "done"
	switch {
	case errors.Is(err, ErrFleetPending):
		outcome = "pending"
	case err != nil:
		outcome = AdminCodeUnavailable
	}
	body := fmt.Sprintf("%s by %s: %s", action, req.Author, outcome)
	attrs := []attribute.KeyValue{attribute.String("canary.admin.author", req.Author), attribute.String("canary.admin.note", req.Note)}
	if err != nil {
		attrs = append(attrs, attribute.String("canary.admin.error", err.Error()))
	}
	h.e.log.Info("canary: "+body, "note", req.Note, "remote", r.RemoteAddr)
	h.emitAudit(r, EventKillSwitchChange, action, outcome, body, attrs...)
}

// reservedWords are the path segments of the handler's routes.
var reservedWords = []string{"plan", "history", "diff", "apply", "rollback", "explain", "events", "ui",
	"ramp", "start", "pause", "resume", "abort", "promote"}

// reservedSegment returns a segment among the last two of path (empty
// segments aside) that names a route's part ("plan", "apply", "ramp", …), in
// a path that matched no route, or "". Such a path (…/plan/aply,
// …/ramp/start/x) is refused rather than taken for the status or the kill
// switch. Only the end of the path is looked at, so that a mount prefix
// may hold these words.
func reservedSegment(path string) string {
	segs := strings.FieldsFunc(path, func(r rune) bool { return r == '/' })
	for i := max(len(segs)-2, 0); i < len(segs); i++ {
		if contains(reservedWords, segs[i]) {
			return segs[i]
		}
	}
	return ""
}
