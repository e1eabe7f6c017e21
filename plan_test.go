package canary

import (
	"errors"
	"net/netip"
	"reflect"
	"strings"
	"testing"

	yaml "go.yaml.in/yaml/v3"
)

const fullPlan = `version: 7              # echoed in Labels.PlanVersion and telemetry
salt: checkout-v2       # bucketing salt
canary_percent: 12.5    # 0..100, at most two decimals
kill_switch: false      # true: everyone stable
tenants:
  canary: [acme]        # always canary (unless kill switch or a stable override)
  stable: [bigbank]     # never canary
override:
  header: X-Canary              # values: canary | stable
  trusted_cidrs: [10.0.0.0/8]   # peers whose override header is honoured
`

func TestParsePlanIssueExample(t *testing.T) {
	t.Parallel()
	got, err := ParsePlan([]byte(fullPlan))
	if err != nil {
		t.Fatalf("ParsePlan: %v", err)
	}
	want := Plan{
		Version: 7, Salt: "checkout-v2", CanaryPercent: 12.5,
		Tenants:  TenantLists{Canary: []string{"acme"}, Stable: []string{"bigbank"}},
		Override: Override{Header: "X-Canary", TrustedCIDRs: []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8")}},
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("ParsePlan =\n%+v\nwant\n%+v", got, want)
	}
}

func TestParsePlanDefaultsAndForms(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		yaml string
		want Plan
	}{
		{"only a version", "version: 1\n", Plan{Version: 1, Override: Override{Header: "X-Canary"}}},
		{"integer percent", "canary_percent: 10\n", Plan{CanaryPercent: 10, Override: Override{Header: "X-Canary"}}},
		{"two decimals", "canary_percent: 0.07\n", Plan{CanaryPercent: 0.07, Override: Override{Header: "X-Canary"}}},
		{"null lists are empty", "tenants:\n  canary:\n", Plan{Tenants: TenantLists{}, Override: Override{Header: "X-Canary"}}},
		{"header is canonicalized", "override:\n  header: x-rollout-cohort\n",
			Plan{Override: Override{Header: "X-Rollout-Cohort"}}},
		{"bare address is a host prefix", "override:\n  trusted_cidrs: [192.0.2.7, '2001:db8::1']\n",
			Plan{Override: Override{Header: "X-Canary", TrustedCIDRs: []netip.Prefix{
				netip.MustParsePrefix("192.0.2.7/32"), netip.MustParsePrefix("2001:db8::1/128")}}}},
		{"numeric tenant ids", "tenants:\n  canary: [42]\n",
			Plan{Tenants: TenantLists{Canary: []string{"42"}}, Override: Override{Header: "X-Canary"}}},
		{"block style and anchors", "tenants:\n  canary:\n    - &a acme\n    - globex\n",
			Plan{Tenants: TenantLists{Canary: []string{"acme", "globex"}}, Override: Override{Header: "X-Canary"}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParsePlan([]byte(tt.yaml))
			if err != nil {
				t.Fatalf("ParsePlan: %v", err)
			}
			if len(got.Tenants.Canary) == 0 && len(tt.want.Tenants.Canary) == 0 {
				got.Tenants.Canary, tt.want.Tenants.Canary = nil, nil
			}
			if len(got.Tenants.Stable) == 0 && len(tt.want.Tenants.Stable) == 0 {
				got.Tenants.Stable, tt.want.Tenants.Stable = nil, nil
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Fatalf("ParsePlan =\n%+v\nwant\n%+v", got, tt.want)
			}
		})
	}
}

// TestParsePlanErrorsNameKeyAndLine checks that every kind of bad plan is
// reported as a *PlanError naming the key and the line at fault.
func TestParsePlanErrorsNameKeyAndLine(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		yaml   string
		key    string
		line   int
		reason string // a fragment of the reason
	}{
		{"unknown top-level key", "version: 1\ncanary_pct: 5\n", "canary_pct", 2, "unknown key"},
		{"unknown nested key", "tenants:\n  canary: [a]\n  beta: [b]\n", "tenants.beta", 3, "unknown key"},
		{"unknown override key", "override:\n  headers: X-A\n", "override.headers", 2, "unknown key"},
		{"repeated key", "version: 1\nversion: 2\n", "version", 2, "repeated"},
		{"percent too high", "salt: s\ncanary_percent: 120\n", "canary_percent", 2, "between 0 and 100"},
		{"percent negative", "canary_percent: -1\n", "canary_percent", 1, "between 0 and 100"},
		{"percent three decimals", "\ncanary_percent: 12.345\n", "canary_percent", 2, "two decimals"},
		{"percent quoted", "canary_percent: '12'\n", "canary_percent", 1, "must be a number"},
		{"percent nan", "canary_percent: .nan\n", "canary_percent", 1, "must be a number"},
		{"percent null", "canary_percent:\n", "canary_percent", 1, "no value"},
		{"version negative", "version: -3\n", "version", 1, "0 or more"},
		{"version fractional", "version: 1.5\n", "version", 1, "whole number"},
		{"version huge", "version: 99999999999999999999999\n", "version", 1, "whole number"},
		{"kill switch not bool", "kill_switch: yes\n", "kill_switch", 1, "true or false"},
		{"salt too long", "salt: " + strings.Repeat("s", 129) + "\n", "salt", 1, "longer than 128"},
		{"salt control char", "salt: \"a\\tb\"\n", "salt", 1, "control character"},
		{"salt is a list", "salt: [a]\n", "salt", 1, "must be a string"},
		{"tenants not a mapping", "tenants: [acme]\n", "tenants", 1, "must be a mapping"},
		{"tenant list not a list", "tenants:\n  canary: acme\n", "tenants.canary", 2, "must be a list"},
		{"bad tenant id", "tenants:\n  canary:\n    - acme\n    - 'bad tenant'\n", "tenants.canary[1]", 4, "invalid"},
		{"tenant id too long", "tenants:\n  stable: [" + strings.Repeat("t", 65) + "]\n", "tenants.stable[0]", 2, "longer than 64"},
		{"tenant in both lists", "tenants:\n  canary: [acme]\n  stable: [bigbank, acme]\n", "tenants.stable[1]", 3, "both"},
		{"tenant twice", "tenants:\n  canary: [acme, acme]\n", "tenants.canary[1]", 2, "twice"},
		{"tenant in two cases", "tenants:\n  canary: [acme]\n  stable:\n    - ACME\n", "tenants.stable[0]", 4, "only in case; tenant ids are case-sensitive"},
		{"bad header", "override:\n  header: 'X Canary'\n", "override.header", 2, "not a valid header name"},
		{"reserved header", "override:\n  header: x-tenant-id\n", "override.header", 2, "canary's own"},
		{"bad cidr", "override:\n  trusted_cidrs:\n    - 10.0.0.0/8\n    - 10.0.0.0/33\n", "override.trusted_cidrs[1]", 4, "not a CIDR"},
		{"cidr host bits", "override:\n  trusted_cidrs: [10.1.2.3/8]\n", "override.trusted_cidrs[0]", 2, "did you mean 10.0.0.0/8"},
		{"cidr garbage", "override:\n  trusted_cidrs: [localhost]\n", "override.trusted_cidrs[0]", 2, "not a CIDR"},
		{"ipv4-mapped cidr", "override:\n  trusted_cidrs: ['::ffff:10.0.0.0/104']\n", "override.trusted_cidrs[0]", 2, "IPv4-mapped"},
		{"top level is a list", "- a\n- b\n", "", 1, "must be a mapping"},
		{"unclosed list", "version: 1\ntenants: [a\n", "", 2, "did not find expected ',' or ']'"},
		{"unclosed list later", "version: 1\n\nsalt: x\ntenants:\n  canary: [a, b\n", "", 5, "did not find expected"},
		{"bad mapping on line 1", "version: 1: 2\n", "", 1, "mapping values are not allowed"},
		{"bad mapping on line 3", "version: 1\nsalt: x\nkill_switch: a: b\n", "", 3, "mapping values are not allowed"},
		{"bad indentation", "tenants:\n  canary: [a]\n stable: [b]\n", "", 3, ""},
		{"tabs", "version: 1\n\tsalt: x\n", "", 2, ""},
		{"two documents", "version: 1\n---\nversion: 2\n", "", 2, "more than one"},
		{"empty", "", "", 0, "empty"},
		{"only comments", "# nothing here\n", "", 0, "empty"},
		{"null document", "~\n", "", 1, "empty"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := ParsePlan([]byte(tt.yaml))
			if err == nil {
				t.Fatalf("ParsePlan(%q) = nil error, want one naming %q", tt.yaml, tt.key)
			}
			if !errors.Is(err, ErrInvalidPlan) {
				t.Errorf("errors.Is(%v, ErrInvalidPlan) = false", err)
			}
			var pe *PlanError
			if !errors.As(err, &pe) {
				t.Fatalf("error %v (%T) is not a *PlanError", err, err)
			}
			if pe.Key != tt.key || pe.Line != tt.line || !strings.Contains(pe.Reason, tt.reason) {
				t.Fatalf("PlanError{Key: %q, Line: %d, Reason: %q}, want key %q line %d reason containing %q",
					pe.Key, pe.Line, pe.Reason, tt.key, tt.line, tt.reason)
			}
			msg := err.Error()
			if tt.key != "" && !strings.Contains(msg, tt.key+":") {
				t.Errorf("message %q does not name the key %q", msg, tt.key)
			}
			if tt.line > 0 && !strings.Contains(msg, "line ") {
				t.Errorf("message %q does not give the line", msg)
			}
		})
	}
}

func TestParsePlanReportsEveryProblem(t *testing.T) {
	t.Parallel()
	_, err := ParsePlan([]byte("canary_percent: 200\nsalt: " + strings.Repeat("x", 200) + "\nversion: -1\n"))
	if err == nil {
		t.Fatal("want an error")
	}
	var keys []string
	var walk func(error)
	walk = func(err error) {
		if j, ok := err.(interface{ Unwrap() []error }); ok {
			for _, e := range j.Unwrap() {
				walk(e)
			}
			return
		}
		var pe *PlanError
		if errors.As(err, &pe) {
			keys = append(keys, pe.Key)
		}
	}
	walk(err)
	want := []string{"version", "salt", "canary_percent"}
	if !reflect.DeepEqual(keys, want) {
		t.Fatalf("problems reported for %v, want %v (error: %v)", keys, want, err)
	}
}

func TestWithPlanValidatesGoPlans(t *testing.T) {
	t.Parallel()
	_, err := New(WithPlan(Plan{CanaryPercent: 101, Tenants: TenantLists{Canary: []string{"a b"}}}))
	var pe *PlanError
	if !errors.As(err, &pe) || pe.Line != 0 {
		t.Fatalf("New(WithPlan(bad)) error = %v, want a *PlanError without a line", err)
	}
	for _, key := range []string{"canary_percent", "tenants.canary[0]"} {
		if !strings.Contains(err.Error(), key+":") {
			t.Errorf("error %q does not name %q", err, key)
		}
	}
}

// TestPlanYAMLRoundTrip checks that a Plan marshalled with yaml.v3 (its tags)
// parses back to itself.
func TestPlanYAMLRoundTrip(t *testing.T) {
	t.Parallel()
	p, err := ParsePlan([]byte(fullPlan))
	if err != nil {
		t.Fatal(err)
	}
	out, err := yaml.Marshal(p)
	if err != nil {
		t.Fatal(err)
	}
	back, err := ParsePlan(out)
	if err != nil {
		t.Fatalf("ParsePlan(Marshal(p)): %v\n%s", err, out)
	}
	if !reflect.DeepEqual(back, p) {
		t.Fatalf("round trip =\n%+v\nwant\n%+v", back, p)
	}
}

// FuzzParsePlan checks that no input makes ParsePlan panic, and that what it
// accepts is valid.
func FuzzParsePlan(f *testing.F) {
	f.Add([]byte(fullPlan))
	f.Add([]byte("tenants: {canary: [a], stable: [b]}\n"))
	f.Add([]byte("a: &x [*x]\n"))
	f.Add([]byte("guard:\n  enabled: true\n  buckets: 10\n  bucket_width: 1s\n  min_canary_samples: 20\n  confidence: 0.99\n  cooldown: 2m\n"))
	f.Add([]byte("guard: {enabled: false, latency_factor: 1.5, latency_margin: 20ms}\n"))
	f.Add([]byte("guard: {enabled: true, failure_evidence: 1e5, failure_margin: 1e-9}\n"))
	f.Add([]byte("ramp:\n  steps: [1% 2m, {percent: 5, hold: 5m, gates: {fleet: {}}}, 100%]\n  gates:\n    prometheus: [{name: e, query: up, max: 1}]\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		p, err := ParsePlan(data)
		if err != nil {
			if !errors.Is(err, ErrInvalidPlan) {
				t.Fatalf("error %v does not match ErrInvalidPlan", err)
			}
			return
		}
		if _, err := compile(p); err != nil {
			t.Fatalf("ParsePlan accepted a plan compile rejects: %v", err)
		}
		if p.Guard != nil {
			if err := p.Guard.internal().Validate(); err != nil {
				t.Fatalf("ParsePlan accepted a guard section the guard rejects: %v", err)
			}
			if p.Guard.Cooldown < 0 {
				t.Fatalf("ParsePlan accepted a negative cooldown %v", p.Guard.Cooldown)
			}
		}
		if p.Ramp != nil {
			if err := p.Ramp.Validate(); err != nil {
				t.Fatalf("ParsePlan accepted a ramp section its check rejects: %v", err)
			}
		}
	})
}
