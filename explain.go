package canary

import (
	"net/http"

	"github.com/reqcanary/canary/tenant"
)

// Explanation says how the plan in force decides a tenant and user: what
// [Engine.Explain] returns and the admin handler's GET …/explain answers.
type Explanation struct {
	Tenant string `json:"tenant,omitempty"`
	// UserHash is the pseudonym the user gets in Labels.UserHash (the raw id
	// never leaves the edge).
	UserHash string `json:"user_hash,omitempty"`
	// Cohort and Reason are the decision a request of this tenant and user
	// without an override gets now (Reason is a Labels.Reason, the rule that
	// decided).
	Cohort tenant.Cohort `json:"cohort"`
	Reason string        `json:"reason"`
	// PlanCohort and PlanReason are what the plan's rules alone decide: the
	// same as Cohort and Reason unless the kill switch is on.
	PlanCohort tenant.Cohort `json:"plan_cohort"`
	PlanReason string        `json:"plan_reason"`
	// Bucket is the user's bucket, 0..9999 (tenant.NoBucket, -1, with
	// neither tenant nor user); the request is canary by percentage when
	// Bucket < CanaryBelow.
	Bucket      int     `json:"bucket"`
	CanaryBelow int     `json:"canary_below"`
	Percent     float64 `json:"canary_percent"`
	KillSwitch  bool    `json:"kill_switch"`
	PlanVersion int     `json:"plan_version"`
	// StoreVersion is the plan store version in force (0 without a store).
	StoreVersion int64 `json:"store_version,omitempty"`
}

// Explain says which cohort a request of tenantID and userID (either may be
// empty) gets under the plan in force, by which rule and with which bucket,
// as [Engine.Decide] would decide it without an override or an upstream
// decision. An id that breaks the limits gives a [*tenant.FieldError] naming
// "tenant" or "user". It counts nothing and is safe for concurrent use.
//
// The answer tells whether a user is canary, which the plan's salt is there
// to hide from clients: keep it behind the admin token (the admin handler
// does).
func (e *Engine) Explain(tenantID, userID string) (Explanation, error) {
	if tenantID != "" {
		if why := tenant.CheckTenant(tenantID); why != "" {
			return Explanation{}, &tenant.FieldError{Field: "tenant", Reason: why}
		}
	}
	if userID != "" {
		if why := tenant.CheckUser(userID); why != "" {
			return Explanation{}, &tenant.FieldError{Field: "user", Reason: why}
		}
	}
	p := e.cur.Load()
	x := Explanation{Tenant: tenantID, Bucket: tenant.BucketOf(p.plan.Salt, tenantID, userID),
		CanaryBelow: p.threshold, Percent: p.plan.CanaryPercent, PlanVersion: p.plan.Version}
	if userID != "" {
		x.UserHash = e.hasher.Hash(tenantID, userID)
	}
	if st := e.planStoreStatus(); st != nil {
		x.StoreVersion = st.Version
	}
	x.PlanCohort, x.PlanReason = p.rule(tenantID, x.Bucket)
	x.Cohort, x.Reason = x.PlanCohort, x.PlanReason
	if x.KillSwitch = e.kill.Load() || p.plan.KillSwitch || e.g.kill.Load() != 0; x.KillSwitch {
		x.Cohort, x.Reason = tenant.Stable, e.killReason(p)
	}
	return x, nil
}

// explain answers GET …/explain?tenant=T&user=U.
func (h *adminHandler) explain(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	for k := range q {
		if k != "tenant" && k != "user" {
			writeJSON(w, http.StatusBadRequest, adminErrorBody{Code: AdminCodeBadRequest, Field: truncate(k, 40),
				Error: truncate(k, 40) + ": unknown parameter; known: tenant, user"})
			return
		}
	}
	if q.Get("tenant") == "" && q.Get("user") == "" {
		writeJSON(w, http.StatusBadRequest, adminErrorBody{Code: AdminCodeBadRequest, Field: "tenant",
			Error: "tenant: give a tenant, a user or both (explain?tenant=T&user=U)"})
		return
	}
	x, err := h.e.Explain(q.Get("tenant"), q.Get("user"))
	if err != nil {
		fe := err.(*tenant.FieldError)
		writeJSON(w, http.StatusBadRequest, adminErrorBody{Code: AdminCodeBadRequest, Field: fe.Field,
			Error: fe.Field + ": " + fe.Reason})
		return
	}
	writeJSON(w, http.StatusOK, x)
}
