package canary

import (
	"net/http"

	"github.com/reqcanary/canary/middleware"
)

// Transport returns an http.RoundTripper that writes the calling request's
// labels (the tenant.Labels in each outgoing request's context) onto a copy
// of the request and sends it through base (see middleware.Transport):
// X-Tenant-ID, the cohort under X-Canary, the canary baggage members, the
// traceparent of the context's span when the request has none, and, when the
// engine has a signing key ([WithSigningKey]), the signed decision under
// X-Canary-Decision valid for the decision TTL ([WithDecisionTTL]) and,
// once the calling request has written through dbwrap, the signed write
// position of its writes under X-Canary-Consistency, so that the called
// service's reads see them (see docs/db-routing.md). It removes X-User-ID: the raw user id never leaves the edge. A request without
// labels is sent unchanged. A nil base means http.DefaultTransport.
//
//	client := &http.Client{Transport: eng.Transport(nil)}
//	req, _ := http.NewRequestWithContext(r.Context(), "GET", url, nil) // r: the labelled inbound request
//	resp, err := client.Do(req)
//
// The RoundTripper is safe for concurrent use if base is.
func (e *Engine) Transport(base http.RoundTripper) http.RoundTripper {
	var opts []middleware.Option
	if e.sig.sign != nil {
		opts = append(opts, middleware.WithSigner(e.sig.sign), middleware.WithPositionSigner(e.cons.sign))
	}
	return middleware.Transport(base, opts...)
}

// Transport is [Engine.Transport] of the [Default] engine.
func Transport(base http.RoundTripper) http.RoundTripper { return Default().Transport(base) }
