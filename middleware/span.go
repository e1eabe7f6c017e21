package middleware

import (
	"net/http"
	"strconv"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/trace"

	"github.com/reqcanary/canary/tenant"
)

// Span attribute keys. The feature_flag.* keys are OpenTelemetry's
// feature-flag semantic conventions; the others are canary's own.
const (
	AttrFlagKey      = attribute.Key("feature_flag.key")
	AttrVariant      = attribute.Key("feature_flag.result.variant")
	AttrReason       = attribute.Key("feature_flag.result.reason")
	AttrFlagVersion  = attribute.Key("feature_flag.version")
	AttrProvider     = attribute.Key("feature_flag.provider.name")
	AttrTenant       = attribute.Key("tenant.id")
	AttrCanaryReason = attribute.Key("canary.reason")
	AttrCanaryBucket = attribute.Key("canary.bucket")
	providerName     = "canary"
)

// annotate records l on span when it is recording. Nothing is allocated for
// a span that does not record.
func annotate(span trace.Span, flagKey string, l tenant.Labels) {
	if !span.IsRecording() {
		return
	}
	attrs := []attribute.KeyValue{
		AttrFlagKey.String(flagKey),
		AttrVariant.String(string(l.Cohort)),
		AttrReason.String(tenant.FlagReason(l.Reason)),
		AttrCanaryReason.String(l.Reason),
		AttrFlagVersion.String(strconv.Itoa(l.PlanVersion)),
		AttrProvider.String(providerName),
		AttrCanaryBucket.Int(l.Bucket),
	}
	if l.Tenant != "" {
		attrs = append(attrs, AttrTenant.String(l.Tenant))
	}
	span.SetAttributes(attrs...)
}

// Annotate records the labels of the request (set by the middleware [New]
// returns, further out) on the span active in the request's context, when it
// is recording. Mount it inside a tracing middleware that starts its own span,
// such as otelhttp mounted within the router, so that span carries the
// feature-flag attributes too:
//
//	r.Use(canary.Middleware)
//	r.Use(otelhttp.NewMiddleware("shop"), middleware.Annotate)
//
// The feature_flag.key it records is [DefaultFlagKey]. Requests without
// labels pass through untouched.
func Annotate(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ctx := r.Context()
		if l, ok := tenant.FromContext(ctx); ok {
			annotate(trace.SpanFromContext(ctx), DefaultFlagKey, l)
		}
		next.ServeHTTP(w, r)
	})
}
