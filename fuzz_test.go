package canary

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"testing"

	"github.com/reqcanary/canary/tenant"
)

// FuzzMiddleware sends arbitrary header values and peers through the
// engine's middleware: it never panics, answers 200 with labels or 400 with
// the JSON error shape, and never honours an override from an untrusted peer.
func FuzzMiddleware(f *testing.F) {
	f.Add("acme", "alice", "canary", "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01", "10.0.0.1", "203.0.113.1:1")
	f.Add("", "", "stable", "", "", "[::1]:80")
	f.Add("a b", "\x00", "yes", "ff-x", "1.2.3.4, ,", "garbage")
	e, err := New(WithPlan(Plan{CanaryPercent: 50, Override: Override{TrustedCIDRs: []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8")}}}),
		WithUserHashKey(testHashKey), WithTrustedProxies(netip.MustParsePrefix("192.168.0.0/16")))
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(func() { _ = e.Close() })
	f.Fuzz(func(t *testing.T, ten, user, override, traceparent, xff, remote string) {
		var got tenant.Labels
		h := e.Middleware(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			got, _ = tenant.FromContext(r.Context())
		}))
		req := httptest.NewRequest(http.MethodGet, "/", nil)
		req.RemoteAddr = remote
		for k, v := range map[string]string{"X-Tenant-ID": ten, "X-User-ID": user, "X-Canary": override, "Traceparent": traceparent, "X-Forwarded-For": xff} {
			if v != "" {
				req.Header[http.CanonicalHeaderKey(k)] = []string{v}
			}
		}
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		switch rec.Code {
		case http.StatusOK:
			if got.Cohort != tenant.Canary && got.Cohort != tenant.Stable {
				t.Fatalf("cohort %q", got.Cohort)
			}
			if got.Reason == tenant.ReasonOverride {
				peer := parsePeer(remote)
				if !netip.MustParsePrefix("10.0.0.0/8").Contains(peer) && !netip.MustParsePrefix("192.168.0.0/16").Contains(peer) {
					t.Fatalf("override honoured from %q", remote)
				}
			}
			if got.TraceID != "" && !tenant.ValidTraceID(got.TraceID) {
				t.Fatalf("trace id %q", got.TraceID)
			}
		case http.StatusBadRequest:
			var body struct{ Error, Field string }
			if err := json.Unmarshal(rec.Body.Bytes(), &body); err != nil || body.Error == "" || body.Field == "" {
				t.Fatalf("400 body %q", rec.Body)
			}
		default:
			t.Fatalf("status %d", rec.Code)
		}
	})
}

func parsePeer(s string) netip.Addr {
	if ap, err := netip.ParseAddrPort(s); err == nil {
		return ap.Addr().WithZone("").Unmap()
	}
	a, _ := netip.ParseAddr(s)
	return a.WithZone("").Unmap()
}
