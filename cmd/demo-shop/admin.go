package main

import (
	"net/http"

	"github.com/go-chi/chi/v5"

	"github.com/reqcanary/canary"
)

// mountAdmin mounts the admin surface on r:
//
//	GET  /admin/canary                  canary.AdminHandler: plan, kill switch, guard figures
//	POST /admin/canary {"action":"on"|"off"|"rearm"}   (Authorization: Bearer <-admin-token>)
//	GET  /admin/pricing                 the modes of both pricing versions
//	POST /admin/pricing/{version}?mode=ok|slow|fail   (version: stable or canary)
//
// The pricing switches trust whoever reaches them: the demo listens on
// loopback. The kill switch needs the admin token (read-only without one).
func mountAdmin(r chi.Router, eng *canary.Engine, pricing *pricingClient, adminToken string) {
	r.Handle("/admin/canary", canary.AdminHandler(eng, canary.WithAdminToken(adminToken)))
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
