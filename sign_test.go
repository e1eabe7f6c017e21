package canary

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"

	"github.com/reqcanary/canary/tenant"
)

var (
	signKey    = []byte("decision-key-0123456789abcdef")
	oldSignKey = []byte("decision-key-old-0123456789ab")
	otherKey   = []byte("someone-elses-key-0123456789")
)

// upstreamLabels are what an upstream hop decided, on a plan unlike the
// downstream test plans (version 41, canary although the downstream plan is
// at 0 %).
var upstreamLabels = tenant.Labels{
	Tenant: "globex", UserHash: "0f1e2d3c4b5a69788796a5b4c3d2e1f0", Bucket: 2999,
	Cohort: tenant.Canary, Reason: tenant.ReasonPercent, PlanVersion: 41,
}

func mustSign(t *testing.T, key []byte, l tenant.Labels, expires time.Time) string {
	t.Helper()
	s, err := tenant.NewDecisionSigner(key)
	if err != nil {
		t.Fatal(err)
	}
	v, err := s.SignLabels(l, expires)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

// decideWith decides a request from untrustedPeer carrying kv, on a 0 %
// plan (version 2) whose trusted peers are 10.0.0.0/8.
func decideWith(t *testing.T, e *Engine, kv ...string) tenant.Labels {
	t.Helper()
	l, err := e.Decide(context.Background(), tenant.Request{
		Source: headers(kv...), Wire: tenant.HTTP, Peer: untrustedPeer, TraceID: "4bf92f3577b34da6a3ce929d0e0e4736",
	})
	if err != nil {
		t.Fatalf("Decide: %v", err)
	}
	return l
}

const downstreamPlan = `version: 2
salt: downstream
canary_percent: 0
override:
  trusted_cidrs: [10.0.0.0/8]
`

// rejectedByReason reads canary.decision.rejected from reader.
func rejectedByReason(t *testing.T, reader *metric.ManualReader) map[string]int64 {
	t.Helper()
	var rm metricdata.ResourceMetrics
	if err := reader.Collect(context.Background(), &rm); err != nil {
		t.Fatal(err)
	}
	got := map[string]int64{}
	for _, sm := range rm.ScopeMetrics {
		for _, m := range sm.Metrics {
			if m.Name != "canary.decision.rejected" {
				continue
			}
			for _, dp := range m.Data.(metricdata.Sum[int64]).DataPoints {
				r, _ := dp.Attributes.Value(attribute.Key("reason"))
				got[r.AsString()] += dp.Value
			}
		}
	}
	return got
}

func TestDecideAdoptsSignedUpstreamDecision(t *testing.T) {
	t.Parallel()
	e := newTestEngine(t, downstreamPlan, WithSigningKey(signKey))
	v := mustSign(t, signKey, upstreamLabels, time.Now().Add(time.Minute))
	// The upstream also wrote its cohort as an override, and a tenant header;
	// the peer is not trusted, so the override alone would be ignored.
	got := decideWith(t, e, tenant.HeaderDecision, v, tenant.HeaderTenant, "globex", tenant.HeaderOverride, "canary")
	want := upstreamLabels
	want.Reason, want.TraceID = tenant.ReasonUpstream, "4bf92f3577b34da6a3ce929d0e0e4736"
	if got != want {
		t.Errorf("labels = %+v\nwant     %+v", got, want)
	}
	if n := e.RejectedDecisions(); n != 0 {
		t.Errorf("RejectedDecisions = %d, want 0", n)
	}
	if n := e.UntrustedOverrides(); n != 0 {
		t.Errorf("UntrustedOverrides = %d, want 0: the override beside an adopted decision is not looked at", n)
	}
}

func TestDecideRejectsBadDecisions(t *testing.T) {
	t.Parallel()
	valid := mustSign(t, signKey, upstreamLabels, time.Now().Add(time.Minute))
	tampered := strings.Replace(valid, "b=2999", "b=2998", 1)
	stableLabels := upstreamLabels
	stableLabels.Cohort = tenant.Stable
	tests := []struct {
		name, reason string
		values       []string
	}{
		{"forged with another key", "signature", []string{mustSign(t, otherKey, upstreamLabels, time.Now().Add(time.Minute))}},
		{"tampered bucket", "signature", []string{tampered}},
		{"tampered cohort", "signature", []string{strings.Replace(valid, "c=canary", "c=stable", 1)}},
		{"expired", "expired", []string{mustSign(t, signKey, upstreamLabels, time.Now().Add(-time.Second))}},
		{"malformed", "malformed", []string{"canary please"}},
		{"unknown version", "version", []string{"v2;c=canary"}},
		{"repeated", "repeated", []string{valid, mustSign(t, signKey, stableLabels, time.Now().Add(time.Minute))}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			reader := metric.NewManualReader()
			e := newTestEngine(t, downstreamPlan, WithSigningKey(signKey),
				WithMeterProvider(metric.NewMeterProvider(metric.WithReader(reader))))
			kv := []string{tenant.HeaderTenant, "globex"}
			for _, v := range tt.values {
				kv = append(kv, tenant.HeaderDecision, v)
			}
			got := decideWith(t, e, kv...)
			if got.Cohort != tenant.Stable || got.Reason != tenant.ReasonPercent || got.PlanVersion != 2 {
				t.Errorf("labels = %+v, want decided afresh by the 0 %% plan (stable, percent, version 2)", got)
			}
			if n := e.RejectedDecisions(); n != 1 {
				t.Errorf("RejectedDecisions = %d, want 1", n)
			}
			if m := rejectedByReason(t, reader); len(m) != 1 || m[tt.reason] != 1 {
				t.Errorf("canary.decision.rejected = %v, want {%s: 1}", m, tt.reason)
			}
		})
	}
}

func TestDecideKeyRotation(t *testing.T) {
	t.Parallel()
	future := time.Now().Add(time.Minute)
	byOld := mustSign(t, oldSignKey, upstreamLabels, future)
	byNew := mustSign(t, signKey, upstreamLabels, future)
	tests := []struct {
		name    string
		opt     Option
		value   string
		adopted bool
	}{
		{"new key, old as previous: old decision", WithSigningKey(signKey, oldSignKey), byOld, true},
		{"new key, old as previous: new decision", WithSigningKey(signKey, oldSignKey), byNew, true},
		{"old key dropped: old decision", WithSigningKey(signKey), byOld, false},
		{"not yet rotated: new decision", WithSigningKey(oldSignKey), byNew, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			e := newTestEngine(t, downstreamPlan, tt.opt)
			got := decideWith(t, e, tenant.HeaderDecision, tt.value)
			if adopted := got.Reason == tenant.ReasonUpstream; adopted != tt.adopted {
				t.Errorf("labels %+v: adopted = %v, want %v", got, adopted, tt.adopted)
			}
			if n, want := e.RejectedDecisions(), map[bool]uint64{true: 0, false: 1}[tt.adopted]; n != want {
				t.Errorf("RejectedDecisions = %d, want %d", n, want)
			}
		})
	}
}

func TestDecideIgnoresDecisionsWithoutKeyOrAtTheEdge(t *testing.T) {
	t.Parallel()
	v := mustSign(t, signKey, upstreamLabels, time.Now().Add(time.Minute))
	for name, opts := range map[string][]Option{
		"no key":       nil,
		"edge":         {WithSigningKey(signKey), WithEdge()},
		"edge, no key": {WithEdge()},
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			e := newTestEngine(t, downstreamPlan, opts...)
			got := decideWith(t, e, tenant.HeaderDecision, v, tenant.HeaderTenant, "globex",
				tenant.HeaderBaggage, "canary.cohort=canary,canary.bucket=1")
			if got.Cohort != tenant.Stable || got.Reason != tenant.ReasonPercent {
				t.Errorf("labels = %+v, want decided afresh (stable, percent)", got)
			}
			if n := e.RejectedDecisions(); n != 0 {
				t.Errorf("RejectedDecisions = %d, want 0: an ignored decision is not verified", n)
			}
		})
	}
}

func TestKillSwitchBeatsUpstreamDecision(t *testing.T) {
	t.Parallel()
	e := newTestEngine(t, downstreamPlan, WithSigningKey(signKey))
	e.SetKillSwitch(true)
	got := decideWith(t, e, tenant.HeaderDecision, mustSign(t, signKey, upstreamLabels, time.Now().Add(time.Minute)))
	if got.Cohort != tenant.Stable || got.Reason != tenant.ReasonKillSwitch {
		t.Errorf("labels = %+v, want stable by kill-switch", got)
	}
}

func TestSigningOptionErrors(t *testing.T) {
	t.Parallel()
	tests := []struct {
		opt  Option
		want string
	}{
		{WithSigningKey([]byte("short")), "WithSigningKey: key of 5 bytes"},
		{WithSigningKey(nil), "WithSigningKey: key of 0 bytes"},
		{WithSigningKey(signKey, oldSignKey, []byte("tiny")), "WithSigningKey: previous key 1 of 4 bytes"},
		{WithDecisionTTL(0), "WithDecisionTTL: 0s is not a positive duration"},
		{WithDecisionTTL(-time.Second), "WithDecisionTTL: -1s"},
	}
	for _, tt := range tests {
		_, err := New(tt.opt)
		if !errors.Is(err, ErrInvalidOption) || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("New: %v, want ErrInvalidOption mentioning %q", err, tt.want)
		}
	}
}

func TestEngineTransportSigns(t *testing.T) {
	t.Parallel()
	l := upstreamLabels
	l.Reason = tenant.ReasonTenantCanary
	var got http.Header
	srv := httptest.NewServer(http.HandlerFunc(func(_ http.ResponseWriter, r *http.Request) { got = r.Header.Clone() }))
	defer srv.Close()
	for _, tt := range []struct {
		name string
		opts []Option
		ttl  time.Duration
	}{
		{"default ttl", []Option{WithSigningKey(signKey)}, tenant.DefaultDecisionTTL},
		{"ttl 5s", []Option{WithSigningKey(signKey), WithDecisionTTL(5 * time.Second)}, 5 * time.Second},
		{"no key", nil, 0},
	} {
		t.Run(tt.name, func(t *testing.T) {
			e := newTestEngine(t, downstreamPlan, tt.opts...)
			client := &http.Client{Transport: e.Transport(nil)}
			defer client.CloseIdleConnections()
			req, _ := http.NewRequestWithContext(tenant.NewContext(context.Background(), l), http.MethodGet, srv.URL, nil)
			req.Header.Set(tenant.HeaderUser, "alice")
			start := time.Now()
			resp, err := client.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if got.Get(tenant.HeaderUser) != "" || got.Get(tenant.HeaderTenant) != "globex" || got.Get(tenant.HeaderOverride) != "canary" {
				t.Errorf("downstream headers %v", got)
			}
			v := got.Get(tenant.HeaderDecision)
			if tt.ttl == 0 {
				if v != "" {
					t.Errorf("%s = %q without a key, want none", tenant.HeaderDecision, v)
				}
				return
			}
			s, _ := tenant.NewDecisionSigner(signKey)
			d, err := s.Verify(v, time.Now())
			if err != nil {
				t.Fatalf("Verify(%q): %v", v, err)
			}
			if d.Labels() != l {
				t.Errorf("decision carries %+v, want %+v", d.Labels(), l)
			}
			if lo, hi := start.Add(tt.ttl).Truncate(time.Second), time.Now().Add(tt.ttl); d.Expires.Before(lo) || d.Expires.After(hi) {
				t.Errorf("expires %v, want within [%v, %v]", d.Expires, lo, hi)
			}
		})
	}
}

func TestEdgeMiddlewareStripsDecision(t *testing.T) {
	t.Parallel()
	v := mustSign(t, signKey, upstreamLabels, time.Now().Add(time.Minute))
	for _, edge := range []bool{false, true} {
		opts := []Option{WithSigningKey(signKey)}
		if edge {
			opts = append(opts, WithEdge())
		}
		e := newTestEngine(t, downstreamPlan, opts...)
		var seen string
		var l tenant.Labels
		h := e.Middleware(http.HandlerFunc(func(_ http.ResponseWriter, r *http.Request) {
			seen = r.Header.Get(tenant.HeaderDecision)
			l, _ = tenant.FromContext(r.Context())
		}))
		req := httptest.NewRequest(http.MethodGet, "/", nil)
		req.Header.Set(tenant.HeaderDecision, v)
		h.ServeHTTP(httptest.NewRecorder(), req)
		if edge && (seen != "" || l.Reason == tenant.ReasonUpstream) {
			t.Errorf("edge: handler saw decision %q and labels %+v; want it stripped and ignored", seen, l)
		}
		if !edge && (seen != v || l.Reason != tenant.ReasonUpstream) {
			t.Errorf("internal: handler saw decision %q and labels %+v; want it kept and adopted", seen, l)
		}
	}
}

// TestPropagationDocVector pins the test vector of docs/propagation.md, which
// non-Go implementations check themselves against.
func TestPropagationDocVector(t *testing.T) {
	t.Parallel()
	const v = "v1;c=canary;b=1234;t=acme;u=0f1e2d3c4b5a69788796a5b4c3d2e1f0;r=percent;p=7;e=1767225600;s=2jHoNP-5q5zaqJPZKxhjjSZVWTZZLGxoxg-EPzZXNgQ"
	s, err := tenant.NewDecisionSigner([]byte("example-decision-key-0123456789"))
	if err != nil {
		t.Fatal(err)
	}
	d, err := s.Verify(v, time.Unix(1767225599, 0))
	if err != nil {
		t.Fatalf("Verify: %v", err)
	}
	want := tenant.Decision{Cohort: tenant.Canary, Bucket: 1234, Tenant: "acme", UserHash: "0f1e2d3c4b5a69788796a5b4c3d2e1f0",
		Reason: "percent", PlanVersion: 7, Expires: time.Unix(1767225600, 0)}
	if d != want {
		t.Errorf("decision %+v, want %+v", d, want)
	}
	if again, _ := s.Sign(want); again != v {
		t.Errorf("Sign = %q, want the documented %q", again, v)
	}
	if _, err := s.Verify(v, time.Unix(1767225600, 0)); !errors.Is(err, tenant.ErrDecisionExpired) {
		t.Errorf("Verify at the expiry second: %v, want ErrDecisionExpired", err)
	}
}

func TestDefaultEngineSigningFromEnv(t *testing.T) {
	t.Parallel()
	v := mustSign(t, signKey, upstreamLabels, time.Now().Add(time.Minute))
	byOld := mustSign(t, oldSignKey, upstreamLabels, time.Now().Add(time.Minute))
	tests := []struct {
		name        string
		env         map[string]string
		adopt       string // decision sent
		wantAdopted bool
	}{
		{"key", map[string]string{EnvDecisionKey: string(signKey)}, v, true},
		{"previous key", map[string]string{EnvDecisionKey: string(signKey), EnvDecisionKeyPrevious: string(oldSignKey)}, byOld, true},
		{"edge", map[string]string{EnvDecisionKey: string(signKey), EnvEdge: "true"}, v, false},
		{"short key ignored", map[string]string{EnvDecisionKey: "short"}, mustSign(t, []byte("short-but-padded-to-16"), upstreamLabels, time.Now().Add(time.Minute)), false},
		{"no key", nil, v, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			e := newDefault(envOf(tt.env))
			defer e.Close()
			l := decideWith(t, e, tenant.HeaderDecision, tt.adopt)
			if adopted := l.Reason == tenant.ReasonUpstream; adopted != tt.wantAdopted {
				t.Errorf("labels %+v: adopted = %v, want %v", l, adopted, tt.wantAdopted)
			}
		})
	}
}
