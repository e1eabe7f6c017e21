package canary

import (
	"context"
	"errors"
	"net/http"
	"net/netip"
	"strconv"
	"strings"
	"testing"

	"go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"

	"github.com/reqcanary/canary/tenant"
)

var testHashKey = []byte("0123456789abcdef0123456789abcdef")

// newTestEngine returns an engine on the plan in yamlText, closed with the
// test.
func newTestEngine(t testing.TB, yamlText string, opts ...Option) *Engine {
	t.Helper()
	p, err := ParsePlan([]byte(yamlText))
	if err != nil {
		t.Fatalf("ParsePlan: %v", err)
	}
	e, err := New(append([]Option{WithPlan(p), WithUserHashKey(testHashKey)}, opts...)...)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	t.Cleanup(func() { _ = e.Close() })
	return e
}

func headers(kv ...string) http.Header {
	h := http.Header{}
	for i := 0; i+1 < len(kv); i += 2 {
		h.Add(kv[i], kv[i+1])
	}
	return h
}

var (
	trustedPeer   = netip.MustParseAddr("10.1.2.3")
	untrustedPeer = netip.MustParseAddr("203.0.113.9")
)

const precedencePlan = `version: 4
salt: checkout-v2
canary_percent: %s
tenants:
  canary: [acme]
  stable: [bigbank]
override:
  trusted_cidrs: [10.0.0.0/8, '2001:db8::/32']
`

func planAt(pct string) string { return strings.Replace(precedencePlan, "%s", pct, 1) }

// TestDecidePrecedence pins the order kill switch → trusted override →
// tenant-stable → tenant-canary → percent → stable, and the reasons.
func TestDecidePrecedence(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name       string
		pct        string
		kill       bool
		planKill   bool
		hdr        http.Header
		peer       netip.Addr
		wantCohort tenant.Cohort
		wantReason string
		untrusted  uint64
	}{
		{"run-time kill switch beats a trusted override", "100", true, false,
			headers("X-Tenant-ID", "acme", "X-Canary", "canary"), trustedPeer, tenant.Stable, tenant.ReasonKillSwitch, 0},
		{"plan kill switch beats a canary tenant", "100", false, true,
			headers("X-Tenant-ID", "acme"), trustedPeer, tenant.Stable, tenant.ReasonKillSwitch, 0},
		{"trusted override canary beats tenant-stable", "0", false, false,
			headers("X-Tenant-ID", "bigbank", "X-Canary", "canary"), trustedPeer, tenant.Canary, tenant.ReasonOverride, 0},
		{"trusted override stable beats tenant-canary", "100", false, false,
			headers("X-Tenant-ID", "acme", "X-Canary", "stable"), trustedPeer, tenant.Stable, tenant.ReasonOverride, 0},
		{"trusted override stable beats 100 percent", "100", false, false,
			headers("X-Tenant-ID", "globex", "X-User-ID", "u1", "X-Canary", " Stable "), trustedPeer, tenant.Stable, tenant.ReasonOverride, 0},
		{"trusted IPv6 peer", "0", false, false,
			headers("X-Tenant-ID", "globex", "X-Canary", "canary"), netip.MustParseAddr("2001:db8::7"), tenant.Canary, tenant.ReasonOverride, 0},
		{"IPv4-mapped trusted peer", "0", false, false,
			headers("X-Tenant-ID", "globex", "X-Canary", "canary"), netip.MustParseAddr("::ffff:10.9.9.9"), tenant.Canary, tenant.ReasonOverride, 0},
		{"untrusted override canary is ignored", "0", false, false,
			headers("X-Tenant-ID", "bigbank", "X-Canary", "canary"), untrustedPeer, tenant.Stable, tenant.ReasonTenantStable, 1},
		{"untrusted malformed override is ignored", "0", false, false,
			headers("X-Tenant-ID", "globex", "X-Canary", "pretty please"), untrustedPeer, tenant.Stable, tenant.ReasonPercent, 1},
		{"unknown peer's override is ignored", "0", false, false,
			headers("X-Tenant-ID", "globex", "X-Canary", "canary"), netip.Addr{}, tenant.Stable, tenant.ReasonPercent, 1},
		{"untrusted override stable does not stop a canary tenant", "0", false, false,
			headers("X-Tenant-ID", "acme", "X-Canary", "stable"), untrustedPeer, tenant.Canary, tenant.ReasonTenantCanary, 1},
		{"tenant-stable beats 100 percent", "100", false, false,
			headers("X-Tenant-ID", "bigbank", "X-User-ID", "u1"), untrustedPeer, tenant.Stable, tenant.ReasonTenantStable, 0},
		{"tenant-canary at 0 percent", "0", false, false,
			headers("X-Tenant-ID", "acme", "X-User-ID", "u1"), untrustedPeer, tenant.Canary, tenant.ReasonTenantCanary, 0},
		{"percent 100 is canary", "100", false, false,
			headers("X-Tenant-ID", "globex", "X-User-ID", "u1"), untrustedPeer, tenant.Canary, tenant.ReasonPercent, 0},
		{"percent 0 is stable", "0", false, false,
			headers("X-Tenant-ID", "globex", "X-User-ID", "u1"), untrustedPeer, tenant.Stable, tenant.ReasonPercent, 0},
		{"user without tenant is bucketed", "100", false, false,
			headers("X-User-ID", "u1"), untrustedPeer, tenant.Canary, tenant.ReasonPercent, 0},
		{"neither tenant nor user is stable", "100", false, false,
			headers(), untrustedPeer, tenant.Stable, tenant.ReasonNoKey, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			plan := planAt(tt.pct)
			if tt.planKill {
				plan += "kill_switch: true\n"
			}
			e := newTestEngine(t, plan)
			e.SetKillSwitch(tt.kill)
			const traceID = "4bf92f3577b34da6a3ce929d0e0e4736"
			l, err := e.Decide(context.Background(), tenant.Request{Source: tt.hdr, Wire: tenant.HTTP, Peer: tt.peer, TraceID: traceID})
			if err != nil {
				t.Fatalf("Decide: %v", err)
			}
			if l.Cohort != tt.wantCohort || l.Reason != tt.wantReason {
				t.Fatalf("Decide = %s/%s, want %s/%s", l.Cohort, l.Reason, tt.wantCohort, tt.wantReason)
			}
			if got := e.UntrustedOverrides(); got != tt.untrusted {
				t.Errorf("UntrustedOverrides = %d, want %d", got, tt.untrusted)
			}
			// The rest of the labels do not depend on the rule.
			ten, user := tt.hdr.Get("X-Tenant-ID"), tt.hdr.Get("X-User-ID")
			h, _ := tenant.NewUserHasher(testHashKey)
			want := tenant.Labels{Tenant: ten, UserHash: h.Hash(ten, user), Bucket: tenant.BucketOf("checkout-v2", ten, user),
				Cohort: l.Cohort, Reason: l.Reason, TraceID: traceID, PlanVersion: 4}
			if l != want {
				t.Errorf("Labels = %+v, want %+v", l, want)
			}
			if user != "" && (len(l.UserHash) != 32 || strings.Contains(l.UserHash, user)) {
				t.Errorf("UserHash %q is not a 32-digit hash free of the user id", l.UserHash)
			}
		})
	}
}

func TestDecideRejectsBadInput(t *testing.T) {
	t.Parallel()
	e := newTestEngine(t, planAt("50"))
	tests := []struct {
		name  string
		hdr   http.Header
		peer  netip.Addr
		field string
	}{
		{"tenant too long", headers("X-Tenant-ID", strings.Repeat("a", 65)), untrustedPeer, "X-Tenant-ID"},
		{"tenant bad byte", headers("X-Tenant-ID", "ac me"), untrustedPeer, "X-Tenant-ID"},
		{"tenant repeated", headers("X-Tenant-ID", "a", "X-Tenant-ID", "b"), untrustedPeer, "X-Tenant-ID"},
		{"user control char", headers("X-User-ID", "bob\x00"), untrustedPeer, "X-User-ID"},
		{"user too long", headers("X-User-ID", strings.Repeat("u", 257)), untrustedPeer, "X-User-ID"},
		{"trusted malformed override", headers("X-Tenant-ID", "acme", "X-Canary", "beta"), trustedPeer, "X-Canary"},
		{"trusted repeated override", headers("X-Canary", "canary", "X-Canary", "stable"), trustedPeer, "X-Canary"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := e.Decide(context.Background(), tenant.Request{Source: tt.hdr, Wire: tenant.HTTP, Peer: tt.peer})
			var fe *tenant.FieldError
			if !errors.As(err, &fe) || fe.Field != tt.field {
				t.Fatalf("Decide error = %v, want a *tenant.FieldError for %s", err, tt.field)
			}
		})
	}
}

func TestDecideCustomOverrideHeaderAndGRPC(t *testing.T) {
	t.Parallel()
	e := newTestEngine(t, planAt("0")+"  header: x-rollout\n")
	if got := e.Plan().Override.Header; got != "X-Rollout" {
		t.Fatalf("Plan().Override.Header = %q, want X-Rollout", got)
	}
	// The default header is not an override under this plan: not honoured,
	// not counted.
	l, _ := e.Decide(context.Background(), tenant.Request{Source: headers("X-Tenant-ID", "globex", "X-Canary", "canary"), Wire: tenant.HTTP, Peer: trustedPeer})
	if l.Cohort != tenant.Stable || e.UntrustedOverrides() != 0 {
		t.Fatalf("X-Canary under a plan using X-Rollout: %s/%s, untrusted %d", l.Cohort, l.Reason, e.UntrustedOverrides())
	}
	l, _ = e.Decide(context.Background(), tenant.Request{Source: headers("X-Tenant-ID", "globex", "X-Rollout", "canary"), Wire: tenant.HTTP, Peer: trustedPeer})
	if l.Cohort != tenant.Canary || l.Reason != tenant.ReasonOverride {
		t.Fatalf("X-Rollout from a trusted peer: %s/%s, want canary/override", l.Cohort, l.Reason)
	}
	// gRPC metadata keys are lowercase.
	md := mdSource{"x-tenant-id": {"globex"}, "x-rollout": {"canary"}}
	l, err := e.Decide(context.Background(), tenant.Request{Source: md, Wire: tenant.GRPC, Peer: trustedPeer})
	if err != nil || l.Cohort != tenant.Canary || l.Tenant != "globex" {
		t.Fatalf("gRPC override: %+v, %v; want canary for globex", l, err)
	}
}

// mdSource is a gRPC-metadata-like Source: lowercase keys, exact lookups.
type mdSource map[string][]string

func (m mdSource) Values(k string) []string { return m[k] }

func TestUntrustedOverrideCounter(t *testing.T) {
	t.Parallel()
	reader := metric.NewManualReader()
	mp := metric.NewMeterProvider(metric.WithReader(reader))
	t.Cleanup(func() { _ = mp.Shutdown(context.Background()) })
	e := newTestEngine(t, planAt("0"), WithMeterProvider(mp))
	for range 3 {
		if _, err := e.Decide(context.Background(), tenant.Request{Source: headers("X-Canary", "canary"), Wire: tenant.HTTP, Peer: untrustedPeer}); err != nil {
			t.Fatal(err)
		}
	}
	var rm metricdata.ResourceMetrics
	if err := reader.Collect(context.Background(), &rm); err != nil {
		t.Fatal(err)
	}
	var got int64 = -1
	for _, sm := range rm.ScopeMetrics {
		for _, m := range sm.Metrics {
			if m.Name == "canary.override.untrusted" {
				if sum, ok := m.Data.(metricdata.Sum[int64]); ok && len(sum.DataPoints) == 1 {
					got = sum.DataPoints[0].Value
				}
			}
		}
	}
	if got != 3 || e.UntrustedOverrides() != 3 {
		t.Fatalf("canary.override.untrusted = %d, UntrustedOverrides = %d; want 3 and 3", got, e.UntrustedOverrides())
	}
}

// TestDistribution checks that 12.5 % of 20 000 users land in canary, within
// one percentage point.
func TestDistribution(t *testing.T) {
	t.Parallel()
	e := newTestEngine(t, planAt("12.5"))
	const n = 20000
	canary := 0
	for i := range n {
		h := headers("X-Tenant-ID", "globex", "X-User-ID", "user-"+strconv.Itoa(i))
		l, err := e.Decide(context.Background(), tenant.Request{Source: h, Wire: tenant.HTTP})
		if err != nil {
			t.Fatal(err)
		}
		if l.Cohort == tenant.Canary {
			canary++
		}
	}
	pct := 100 * float64(canary) / n
	t.Logf("canary share: %.2f %% of %d users", pct, n)
	if pct < 11.5 || pct > 13.5 {
		t.Fatalf("canary share %.2f %%, want 12.5 ± 1", pct)
	}
}

// TestRampIsMonotone checks that raising the percentage never moves a canary
// user back to stable, through every step of a ramp.
func TestRampIsMonotone(t *testing.T) {
	t.Parallel()
	steps := []string{"0.5", "1", "5", "10", "12.5", "25", "50", "99.99", "100"}
	engines := make([]*Engine, len(steps))
	for i, s := range steps {
		engines[i] = newTestEngine(t, planAt(s))
	}
	prev := make([]int, len(steps))
	for u := range 20000 {
		h := headers("X-Tenant-ID", "globex", "X-User-ID", "u-"+strconv.Itoa(u))
		wasCanary := false
		for i, e := range engines {
			l, _ := e.Decide(context.Background(), tenant.Request{Source: h, Wire: tenant.HTTP})
			if wasCanary && l.Cohort != tenant.Canary {
				t.Fatalf("user u-%d is canary at %s %% but %s at %s %%", u, steps[i-1], l.Cohort, steps[i])
			}
			wasCanary = l.Cohort == tenant.Canary
			if wasCanary {
				prev[i]++
			}
		}
	}
	if prev[0] == 0 || prev[len(prev)-1] != 20000 {
		t.Fatalf("canary counts per step %v: want some at 0.5 %% and all at 100 %%", prev)
	}
}

func TestKillSwitchAccessors(t *testing.T) {
	t.Parallel()
	e := newTestEngine(t, planAt("100"))
	if e.KillSwitch() {
		t.Fatal("KillSwitch() = true on a fresh engine")
	}
	e.SetKillSwitch(true)
	if !e.KillSwitch() {
		t.Fatal("KillSwitch() = false after SetKillSwitch(true)")
	}
	e.SetKillSwitch(false)
	if e.KillSwitch() {
		t.Fatal("KillSwitch() = true after SetKillSwitch(false)")
	}
	k := newTestEngine(t, planAt("100")+"kill_switch: true\n")
	k.SetKillSwitch(false)
	if !k.KillSwitch() {
		t.Fatal("a plan's kill_switch: true is not in force")
	}
}

// TestTenantListsAreCaseSensitive: the lists match the tenant id exactly,
// as the identity source sends it; ACME is not acme.
func TestTenantListsAreCaseSensitive(t *testing.T) {
	e := newTestEngine(t, "salt: case\ncanary_percent: 0\ntenants:\n  canary: [acme]\n")
	for _, tc := range []struct {
		tenantID string
		want     tenant.Cohort
		reason   string
	}{{"acme", tenant.Canary, tenant.ReasonTenantCanary}, {"ACME", tenant.Stable, tenant.ReasonPercent}, {"Acme", tenant.Stable, tenant.ReasonPercent}} {
		l, err := e.Decide(context.Background(), tenant.Request{Source: headers("X-Tenant-ID", tc.tenantID, "X-User-ID", "u1"), Wire: tenant.HTTP})
		if err != nil || l.Cohort != tc.want || l.Reason != tc.reason || l.Tenant != tc.tenantID {
			t.Errorf("tenant %q: %+v %v, want %s (%s) with the tenant as sent", tc.tenantID, l, err, tc.want, tc.reason)
		}
	}
}
