package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"

	"github.com/go-chi/chi/v5"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"go.opentelemetry.io/contrib/instrumentation/net/http/otelhttp"
	"go.opentelemetry.io/otel/propagation"

	"github.com/reqcanary/canary"
	"github.com/reqcanary/canary/fallback"
)

// newHTTPHandler is the shop's HTTP API:
//
//	GET  /products         the products with their prices
//	GET  /products/{id}    one product
//	POST /orders           {"product_id":1,"quantity":2} → the new order (201)
//	GET  /orders/{id}      an order of the request's tenant
//	GET  /metrics          Prometheus metrics (OTel Prometheus exporter)
//	/admin/...             the admin surface (admin.go)
//
// otelhttp is outermost, so every request has a span whose trace id the
// canary middleware puts in the labels (a caller's traceparent is continued).
func newHTTPHandler(sh *shop, eng *canary.Engine, pricing *pricingClient, tel *telemetry, adminToken string) http.Handler {
	r := chi.NewRouter()
	r.Handle("/metrics", promhttp.HandlerFor(tel.registry, promhttp.HandlerOpts{Registry: prometheus.Registerer(tel.registry)}))
	mountAdmin(r, eng, pricing, adminToken)
	r.Group(func(r chi.Router) {
		r.Use(eng.Middleware)
		r.Get("/products", func(w http.ResponseWriter, r *http.Request) {
			rp, err := sh.listProducts(r.Context())
			writeReply(w, http.StatusOK, rp, err)
		})
		r.Get("/products/{id}", func(w http.ResponseWriter, r *http.Request) {
			id, ok := pathID(w, r)
			if !ok {
				return
			}
			rp, err := sh.getProduct(r.Context(), id)
			writeReply(w, http.StatusOK, rp, err)
		})
		r.Post("/orders", func(w http.ResponseWriter, r *http.Request) {
			var in newOrder
			dec := json.NewDecoder(io.LimitReader(r.Body, 1<<16))
			dec.DisallowUnknownFields()
			if err := dec.Decode(&in); err != nil {
				writeReply(w, 0, newReply(r.Context()), fmt.Errorf("%w: body: %v", errBadInput, err))
				return
			}
			rp, err := sh.createOrder(r.Context(), in)
			writeReply(w, http.StatusCreated, rp, err)
		})
		r.Get("/orders/{id}", func(w http.ResponseWriter, r *http.Request) {
			id, ok := pathID(w, r)
			if !ok {
				return
			}
			rp, err := sh.getOrder(r.Context(), id)
			writeReply(w, http.StatusOK, rp, err)
		})
	})
	return otelhttp.NewHandler(r, "demo-shop",
		otelhttp.WithTracerProvider(tel.tracer),
		otelhttp.WithMeterProvider(tel.meter),
		otelhttp.WithPropagators(propagation.TraceContext{}),
		otelhttp.WithSpanNameFormatter(func(_ string, r *http.Request) string { return r.Method + " " + r.URL.Path }),
	)
}

// pathID reads the {id} of the path, answering 400 when it is not a number.
func pathID(w http.ResponseWriter, r *http.Request) (int64, bool) {
	id, err := strconv.ParseInt(chi.URLParam(r, "id"), 10, 64)
	if err != nil || id <= 0 {
		writeReply(w, 0, newReply(r.Context()), fmt.Errorf("%w: id: must be a positive number", errBadInput))
		return 0, false
	}
	return id, true
}

// httpStatus maps the shop's errors to HTTP status codes, in one place.
func httpStatus(err error) int {
	switch {
	case errors.Is(err, errBadInput), errors.Is(err, errNoUser):
		return http.StatusBadRequest
	case errors.Is(err, errNotFound):
		return http.StatusNotFound
	case errors.Is(err, errPricing):
		return http.StatusServiceUnavailable
	}
	return http.StatusInternalServerError
}

// writeReply writes rp with status ok, or with the status of err (its text in
// rp.Error). Who served the price is also set as X-Canary-Served-By.
func writeReply(w http.ResponseWriter, ok int, rp *reply, err error) {
	status := ok
	if err != nil {
		status = httpStatus(err)
		rp.Error = err.Error()
	}
	if rp.Served.Pricing != "" {
		w.Header().Set(fallback.HeaderServedBy, rp.Served.Pricing)
	}
	if rp.Served.PricingFallback != "" {
		w.Header().Set(fallback.HeaderFallbackReason, rp.Served.PricingFallback)
	}
	writeJSON(w, status, rp)
}

// writeJSON writes v as indented JSON.
func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	_ = enc.Encode(v)
}
