package main

import (
	"net/http"
	"strconv"

	"github.com/go-chi/chi/v5"

	"github.com/reqcanary/canary"
)

// mountAdmin mounts the admin surface on r:
//
//	GET  /admin/canary                  the plan in force and the kill switch
//	POST /admin/canary/kill-switch?on=true|false
//	GET  /admin/pricing                 the modes of both pricing versions
//	POST /admin/pricing/{version}?mode=ok|slow|fail   (version: stable or canary)
//
// The admin surface trusts whoever reaches it: the demo listens on loopback.
func mountAdmin(r chi.Router, eng *canary.Engine, pricing *pricingClient) {
	r.Mount("/admin/canary", canaryAdmin(eng))
	r.Get("/admin/pricing", func(w http.ResponseWriter, _ *http.Request) {
		writeJSON(w, http.StatusOK, map[string]string{
			"stable": pricing.stable.getMode(), "canary": pricing.canary.getMode()})
	})
	r.Post("/admin/pricing/{version}", func(w http.ResponseWriter, r *http.Request) {
		var v *pricingVersion
		switch chi.URLParam(r, "version") {
		case "stable":
			v = pricing.stable
		case "canary":
			v = pricing.canary
		default:
			writeJSON(w, http.StatusNotFound, map[string]string{"error": "version: must be stable or canary"})
			return
		}
		if err := v.setMode(r.URL.Query().Get("mode")); err != nil {
			writeJSON(w, http.StatusBadRequest, map[string]string{"error": err.Error()})
			return
		}
		writeJSON(w, http.StatusOK, map[string]string{"version": v.name, "mode": v.getMode()})
	})
}

// planView is the engine's state as GET /admin/canary shows it.
type planView struct {
	Version        int      `json:"version"`
	Salt           string   `json:"salt"`
	CanaryPercent  float64  `json:"canary_percent"`
	PlanKillSwitch bool     `json:"plan_kill_switch"`
	KillSwitch     bool     `json:"kill_switch"` // run-time or plan
	CanaryTenants  []string `json:"canary_tenants"`
	StableTenants  []string `json:"stable_tenants"`
	OverrideHeader string   `json:"override_header"`
	TrustedCIDRs   []string `json:"override_trusted_cidrs"`
	PlanError      string   `json:"plan_error,omitempty"`
}

// canaryAdmin is a minimal admin handler for the engine.
//
// TODO(after issue 6 lands): replace this function's body by
// canary.AdminHandler(eng) (and update the kill-switch curl lines in
// docs/demo.md to its routes). It is kept to one function so that the swap is
// one line in mountAdmin.
func canaryAdmin(eng *canary.Engine) http.Handler {
	r := chi.NewRouter()
	r.Get("/", func(w http.ResponseWriter, _ *http.Request) {
		p := eng.Plan()
		v := planView{
			Version: p.Version, Salt: p.Salt, CanaryPercent: p.CanaryPercent,
			PlanKillSwitch: p.KillSwitch, KillSwitch: eng.KillSwitch(),
			CanaryTenants: p.Tenants.Canary, StableTenants: p.Tenants.Stable,
			OverrideHeader: p.Override.Header, TrustedCIDRs: []string{},
		}
		for _, c := range p.Override.TrustedCIDRs {
			v.TrustedCIDRs = append(v.TrustedCIDRs, c.String())
		}
		if err := eng.PlanError(); err != nil {
			v.PlanError = err.Error()
		}
		writeJSON(w, http.StatusOK, v)
	})
	r.Post("/kill-switch", func(w http.ResponseWriter, r *http.Request) {
		on, err := strconv.ParseBool(r.URL.Query().Get("on"))
		if err != nil {
			writeJSON(w, http.StatusBadRequest, map[string]string{"error": "on: must be true or false"})
			return
		}
		eng.SetKillSwitch(on)
		writeJSON(w, http.StatusOK, map[string]bool{"kill_switch": eng.KillSwitch()})
	})
	return r
}
