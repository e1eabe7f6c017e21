package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strconv"

	"github.com/go-chi/chi/v5"
	"go.opentelemetry.io/contrib/instrumentation/net/http/otelhttp"
	"go.opentelemetry.io/otel/propagation"
	semconv "go.opentelemetry.io/otel/semconv/v1.40.0"

	"github.com/reqcanary/canary"
	"github.com/reqcanary/canary/fallback"
)

// newHTTPHandler is the shop's HTTP API:
//
//	GET  /products         the products with their prices
//	GET  /products/{id}    one product
//	POST /orders           {"product_id":1,"quantity":2} → the new order (201)
//	GET  /orders/{id}      an order of the request's tenant
//
// The admin API and /metrics are on their own listener (admin.go).
//
// otelhttp is outermost, so every request has a span whose trace id the
// canary middleware puts in the labels (a caller's traceparent is continued).
// Its metrics carry the route pattern (chi's RoutePattern, "/products/{id}")
// and the listener's own address (addr), never what the client sent in the
// path or the Host header, so that clients cannot grow /metrics.
func newHTTPHandler(sh *shop, eng *canary.Engine, tel *telemetry, log *slog.Logger, addr string) http.Handler {
	r := chi.NewRouter()
	r.Use(routeLabel)
	r.Group(func(r chi.Router) {
		r.Use(eng.Middleware)
		r.Get("/products", func(w http.ResponseWriter, r *http.Request) {
			rp, err := sh.listProducts(r.Context())
			writeReply(w, log, http.StatusOK, rp, err)
		})
		r.Get("/products/{id}", func(w http.ResponseWriter, r *http.Request) {
			id, ok := pathID(w, r)
			if !ok {
				return
			}
			rp, err := sh.getProduct(r.Context(), id)
			writeReply(w, log, http.StatusOK, rp, err)
		})
		r.Post("/orders", func(w http.ResponseWriter, r *http.Request) {
			var in newOrder
			dec := json.NewDecoder(io.LimitReader(r.Body, 1<<16))
			dec.DisallowUnknownFields()
			if err := dec.Decode(&in); err != nil {
				writeReply(w, log, 0, newReply(r.Context()), fmt.Errorf("%w: body: %v", errBadInput, err))
				return
			}
			rp, err := sh.createOrder(r.Context(), in)
			writeReply(w, log, http.StatusCreated, rp, err)
		})
		r.Get("/orders/{id}", func(w http.ResponseWriter, r *http.Request) {
			id, ok := pathID(w, r)
			if !ok {
				return
			}
			rp, err := sh.getOrder(r.Context(), id)
			writeReply(w, log, http.StatusOK, rp, err)
		})
	})
	return otelhttp.NewHandler(r, "demo-shop",
		otelhttp.WithTracerProvider(tel.tracer),
		otelhttp.WithMeterProvider(tel.meter),
		otelhttp.WithPropagators(propagation.TraceContext{}),
		otelhttp.WithServerName(addr),
		otelhttp.WithSpanNameFormatter(func(_ string, r *http.Request) string { return r.Method + " " + r.URL.Path }),
	)
}

// routeLabel adds the matched route pattern as http.route to otelhttp's
// metric labels once chi has routed the request; unmatched requests get none.
func routeLabel(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		next.ServeHTTP(w, r)
		if rc := chi.RouteContext(r.Context()); rc != nil {
			if p := rc.RoutePattern(); p != "" {
				if l, ok := otelhttp.LabelerFromContext(r.Context()); ok {
					l.Add(semconv.HTTPRoute(p))
				}
			}
		}
	})
}

// pathID reads the {id} of the path, answering 400 when it is not a number.
func pathID(w http.ResponseWriter, r *http.Request) (int64, bool) {
	id, err := strconv.ParseInt(chi.URLParam(r, "id"), 10, 64)
	if err != nil || id <= 0 {
		writeReply(w, nil, 0, newReply(r.Context()), fmt.Errorf("%w: id: must be a positive number", errBadInput))
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
	case errors.Is(err, errPricing), errors.Is(err, errDatabase):
		return http.StatusServiceUnavailable
	}
	return http.StatusInternalServerError
}

// publicError is the text of err a client may see: the error itself for the
// client's own mistakes (4xx), a generic sentence for server-side failures,
// whose details (a DSN, a user, an address) go to the log only.
func publicError(err error) string {
	switch {
	case errors.Is(err, errBadInput), errors.Is(err, errNoUser), errors.Is(err, errNotFound):
		return err.Error()
	case errors.Is(err, errDatabase):
		return errDatabase.Error()
	case errors.Is(err, errPricing):
		return errPricing.Error()
	}
	return "internal error"
}

// logFailure logs the details of a server-side failure with the request's
// trace id, so that an operator can match it with the client's answer.
func logFailure(log *slog.Logger, rp *reply, err error) {
	if log != nil {
		log.Warn("request failed", "error", err, "trace_id", rp.Labels.TraceID, "tenant", rp.Labels.Tenant)
	}
}

// writeReply writes rp with status ok, or with the status of err (its public
// text in rp.Error; the details of a 5xx are logged). Who served the price is
// also set as X-Canary-Served-By.
func writeReply(w http.ResponseWriter, log *slog.Logger, ok int, rp *reply, err error) {
	status := ok
	if err != nil {
		status = httpStatus(err)
		rp.Error = publicError(err)
		if status >= 500 {
			logFailure(log, rp, err)
		}
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
