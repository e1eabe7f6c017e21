package main

import (
	"context"
	"errors"
	"fmt"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	otelprom "go.opentelemetry.io/otel/exporters/prometheus"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
)

// telemetry is the demo's OpenTelemetry setup: metrics exported to a private
// Prometheus registry (served on /metrics), and a tracer provider without an
// exporter, so that every request has a trace id to show in its labels.
type telemetry struct {
	registry *prometheus.Registry
	meter    *sdkmetric.MeterProvider
	tracer   *sdktrace.TracerProvider
}

func newTelemetry() (*telemetry, error) {
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector())
	exp, err := otelprom.New(otelprom.WithRegisterer(reg))
	if err != nil {
		return nil, fmt.Errorf("prometheus exporter: %w", err)
	}
	return &telemetry{
		registry: reg,
		meter:    sdkmetric.NewMeterProvider(sdkmetric.WithReader(exp)),
		tracer:   sdktrace.NewTracerProvider(),
	}, nil
}

func (t *telemetry) shutdown(ctx context.Context) error {
	return errors.Join(t.meter.Shutdown(ctx), t.tracer.Shutdown(ctx))
}
