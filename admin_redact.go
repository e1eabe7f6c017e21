package canary

import (
	"encoding/json"
	"net/http"
)

// redactedFields are the parts of the [Status] JSON that the admin GET
// leaves out without the admin token: the salt lets anyone compute which
// user ids are canary, and the trusted networks tell a client where to stand
// to have its override believed.
var redactedFields = []string{"plan.salt", "plan.override.trusted_cidrs"}

// writeStatus answers a GET with the engine's status: whole for a request
// with the admin token, without [redactedFields] otherwise (the JSON then
// lists them under "redacted").
func (h *adminHandler) writeStatus(w http.ResponseWriter, r *http.Request) {
	s := h.e.Status()
	if h.cfg.token != nil && h.authorized(r) {
		writeJSON(w, http.StatusOK, s)
		return
	}
	m, err := redactedStatus(s)
	if err != nil {
		adminError(w, http.StatusInternalServerError, "encoding the status: "+err.Error(), "")
		return
	}
	writeJSON(w, http.StatusOK, m)
}

// redactedStatus is s as a JSON object without [redactedFields], which it
// lists under "redacted".
func redactedStatus(s Status) (map[string]any, error) {
	b, err := json.Marshal(s)
	if err != nil {
		return nil, err
	}
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		return nil, err
	}
	if plan, ok := m["plan"].(map[string]any); ok {
		delete(plan, "salt")
		if o, ok := plan["override"].(map[string]any); ok {
			delete(o, "trusted_cidrs")
		}
	}
	m["redacted"] = redactedFields
	return m, nil
}
