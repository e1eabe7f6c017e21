package middleware

import (
	"context"
	"net/http"
	"testing"

	"github.com/reqcanary/canary/tenant"
)

// TestTransportDropsUserIDUnderAnySpelling (issue 12): a handler that sets
// the user id under a non-canonical key (req.Header["X-User-ID"] = …) does
// not leak it; other non-canonical spellings of canary's headers are not
// sent twice.
func TestTransportDropsUserIDUnderAnySpelling(t *testing.T) {
	t.Parallel()
	var sent http.Header
	rt := Transport(roundTripFunc(func(r *http.Request) (*http.Response, error) {
		sent = r.Header
		return &http.Response{StatusCode: 200, Body: http.NoBody, Request: r}, nil
	}))
	ctx := tenant.NewContext(context.Background(), tenant.Labels{Tenant: "acme", Cohort: tenant.Stable, Bucket: 7})
	for _, key := range []string{"X-User-ID", "x-user-id", "X-USER-ID", "x-User-Id"} {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, "http://downstream/", nil)
		req.Header[key] = []string{"alice"}
		req.Header["x-canary"] = []string{"canary"}
		req.Header["traceparent"] = []string{"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"}
		if _, err := rt.RoundTrip(req); err != nil {
			t.Fatal(err)
		}
		for k, v := range sent {
			if http.CanonicalHeaderKey(k) == canonUser {
				t.Errorf("key %q: the raw user id was sent under %q: %q", key, k, v)
			}
		}
		if got := sent.Values("X-Canary"); len(sent["x-canary"]) != 0 || len(got) != 1 || got[0] != "stable" {
			t.Errorf("key %q: X-Canary sent as %v", key, sent)
		}
		if got := sent["Traceparent"]; len(got) != 1 || len(sent["traceparent"]) != 0 {
			t.Errorf("key %q: traceparent sent as %v", key, sent)
		}
		if req.Header[key][0] != "alice" {
			t.Fatal("the caller's request was modified")
		}
	}
}
