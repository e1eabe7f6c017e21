package main

import (
	"crypto/subtle"
	"net/http"

	"github.com/go-chi/chi/v5"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/reqcanary/canary"
)

// newAdminHandler is the admin listener's handler (-admin, loopback by
// default; never the public -http listener):
//
//	GET  /metrics                       Prometheus metrics (OTel Prometheus exporter)
//	GET  /admin/canary                  canary.AdminHandler: plan, kill switch, guard figures
//	POST /admin/canary {"action":"on"|"off"|"rearm"}   (Authorization: Bearer <-admin-token>)
//	GET  /admin/canary/explain?tenant=T&user=U         (token)
//	     /admin/canary/plan[/history|/diff|/apply|/rollback]  with -etcd (token)
//	     /admin/canary/ramp[/start|/pause|/resume|/abort|/promote]  with -etcd (token)
//	GET  /admin/canary/events                          the status every second (Server-Sent Events)
//	GET  /admin/canary/ui/                             the operator's web console (actions need the token)
//	GET  /admin/pricing                 the modes of both pricing versions
//	POST /admin/pricing/{version}?mode=ok|slow|fail    (Authorization: Bearer <-admin-token>)
//
// Every POST needs the admin token; with an empty token they are refused
// (read-only admin).
func newAdminHandler(eng *canary.Engine, pricing *pricingClient, tel *telemetry, adminToken string, opts ...canary.AdminOption) http.Handler {
	r := chi.NewRouter()
	r.Handle("/metrics", promhttp.HandlerFor(tel.registry, promhttp.HandlerOpts{Registry: prometheus.Registerer(tel.registry)}))
	ca := canary.AdminHandler(eng, append([]canary.AdminOption{canary.WithAdminToken(adminToken)}, opts...)...)
	r.Handle("/admin/canary", ca)
	r.Handle("/admin/canary/*", ca) // plan routes and explain (canaryctl --server), events, the console (ui/)
	r.Get("/admin/pricing", func(w http.ResponseWriter, _ *http.Request) {
		writeJSON(w, http.StatusOK, map[string]string{
			"stable": pricing.stable.getMode(), "canary": pricing.canary.getMode()})
	})
	r.With(requireToken(adminToken)).Post("/admin/pricing/{version}", func(w http.ResponseWriter, r *http.Request) {
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
	return r
}

// requireToken lets a request through only with "Authorization: Bearer
// <token>" (compared in constant time); 401 otherwise, 403 when the admin is
// read-only (no token configured).
func requireToken(token string) func(http.Handler) http.Handler {
	want := []byte("Bearer " + token)
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if token == "" {
				writeJSON(w, http.StatusForbidden, map[string]string{"error": "read-only admin: the shop was started without -admin-token"})
				return
			}
			if subtle.ConstantTimeCompare([]byte(r.Header.Get("Authorization")), want) != 1 {
				w.Header().Set("WWW-Authenticate", `Bearer realm="demo-shop admin"`)
				writeJSON(w, http.StatusUnauthorized, map[string]string{"error": "Authorization: a Bearer admin token is required"})
				return
			}
			next.ServeHTTP(w, r)
		})
	}
}
