package tenant

import (
	"errors"
	"fmt"
	"net/http"
	"reflect"
	"strings"
	"testing"
	"time"

	"go.opentelemetry.io/otel/baggage"
)

var propLabels = Labels{
	Tenant: "acme", UserHash: "0f1e2d3c4b5a69788796a5b4c3d2e1f0", Bucket: 1234, Cohort: Canary,
	Reason: ReasonPercent, TraceID: "4bf92f3577b34da6a3ce929d0e0e4736", PlanVersion: 7,
}

const propOurs = "canary.cohort=canary,canary.tenant=acme,canary.bucket=1234"

func TestPropagateHTTP(t *testing.T) {
	h := header(
		"X-User-ID", "alice@acme.com",
		"X-Tenant-ID", "stale",
		"X-Canary", "stable",
		"X-Canary", "canary",
		"X-Canary-Decision", "v1;forged",
		"Baggage", "k1=v1,canary.cohort=stable",
		"Baggage", "k2=v2;prop",
		"Other", "kept",
	)
	s := newSigner(t, decisionKey)
	sign := s.LabelSigner(0, func() time.Time { return decisionNow })
	if err := Propagate(h, HTTP, propLabels, sign); err != nil {
		t.Fatal(err)
	}
	want := http.Header{
		"X-Tenant-Id":       {"acme"},
		"X-Canary":          {"canary"},
		"Baggage":           {"k1=v1,k2=v2;prop," + propOurs},
		"Other":             {"kept"},
		"X-Canary-Decision": h.Values("X-Canary-Decision"),
	}
	if !reflect.DeepEqual(h, want) {
		t.Fatalf("headers =\n%v\nwant\n%v", h, want)
	}
	d, err := s.Verify(h.Get(HeaderDecision), decisionNow)
	if err != nil {
		t.Fatalf("propagated decision does not verify: %v", err)
	}
	if got, wantL := d.Labels(), propLabels; got.Cohort != wantL.Cohort || got.Bucket != wantL.Bucket ||
		got.Tenant != wantL.Tenant || got.UserHash != wantL.UserHash || got.PlanVersion != wantL.PlanVersion {
		t.Fatalf("decision carries %+v, want %+v", got, wantL)
	}
	for k, vs := range h {
		for _, v := range vs {
			if strings.Contains(v, "alice") {
				t.Fatalf("raw user id left in %s: %q", k, v)
			}
		}
	}
}

func TestPropagateWithoutSigner(t *testing.T) {
	h := header("X-Canary-Decision", "v1;stale", "X-Tenant-ID", "set-by-app", "X-Canary", "canary")
	l := propLabels
	l.Tenant = ""
	l.Cohort = ""
	if err := Propagate(h, HTTP, l, nil); err != nil {
		t.Fatal(err)
	}
	want := http.Header{"X-Tenant-Id": {"set-by-app"}, "Baggage": {"canary.bucket=1234"}}
	if !reflect.DeepEqual(h, want) {
		t.Fatalf("headers = %v, want %v (no decision without a signer, app tenant kept, override removed without a cohort)", h, want)
	}
}

func TestPropagateSignError(t *testing.T) {
	boom := errors.New("boom")
	h := header("X-Canary-Decision", "v1;stale", "X-User-ID", "alice")
	err := Propagate(h, HTTP, propLabels, func(Labels) (string, error) { return "", boom })
	if !errors.Is(err, boom) || !strings.Contains(err.Error(), HeaderDecision) {
		t.Fatalf("err = %v, want it to wrap the signer's error and name %s", err, HeaderDecision)
	}
	if h.Get(HeaderDecision) != "" || h.Get(HeaderUser) != "" {
		t.Fatalf("stale decision or user id left after a sign error: %v", h)
	}
	if h.Get(HeaderTenant) != "acme" || h.Get(HeaderOverride) != "canary" || h.Get(HeaderBaggage) != propOurs {
		t.Fatalf("the rest was not written after a sign error: %v", h)
	}
}

// mdSink is a lowercase-keyed sink, as gRPC metadata is.
type mdSink map[string][]string

func (m mdSink) Values(k string) []string { return m[strings.ToLower(k)] }
func (m mdSink) Set(k, v string)          { m[strings.ToLower(k)] = []string{v} }
func (m mdSink) Del(k string)             { delete(m, strings.ToLower(k)) }

func TestPropagateGRPCNames(t *testing.T) {
	md := mdSink{"x-user-id": {"alice"}, "baggage": {"a=1"}}
	if err := Propagate(md, GRPC, propLabels, nil); err != nil {
		t.Fatal(err)
	}
	want := mdSink{"x-tenant-id": {"acme"}, "x-canary": {"canary"}, "baggage": {"a=1," + propOurs}}
	if !reflect.DeepEqual(md, want) {
		t.Fatalf("metadata = %v, want %v", md, want)
	}
}

func TestAppendOutboundMatchesPropagate(t *testing.T) {
	s := newSigner(t, decisionKey)
	sign := s.LabelSigner(0, func() time.Time { return decisionNow })
	for _, l := range []Labels{propLabels, {Cohort: Stable, Bucket: NoBucket, Reason: ReasonNoKey}, {}} {
		md := mdSink{}
		errP := Propagate(md, GRPC, l, sign)
		kv, errA := AppendOutbound(nil, GRPC, l, sign)
		if (errP == nil) != (errA == nil) {
			t.Fatalf("%+v: Propagate err %v, AppendOutbound err %v", l, errP, errA)
		}
		got := mdSink{}
		for i := 0; i < len(kv); i += 2 {
			if _, dup := got[kv[i]]; dup {
				t.Fatalf("%+v: AppendOutbound repeats %s", l, kv[i])
			}
			got[kv[i]] = []string{kv[i+1]}
		}
		if !reflect.DeepEqual(got, md) {
			t.Fatalf("%+v: AppendOutbound = %v, Propagate = %v", l, got, md)
		}
	}
}

func members(n int, size int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = fmt.Sprintf("k%03d=%s", i, strings.Repeat("v", max(0, size-5)))
	}
	return out
}

func TestMergeBaggage(t *testing.T) {
	long := strings.Join(members(63, 100), ",")
	for _, tc := range []struct {
		name, existing string
		l              Labels
		want           string
	}{
		{"empty", "", propLabels, propOurs},
		{"only whitespace and commas", " ,\t, ", propLabels, propOurs},
		{"kept verbatim, ours last", "a=1, b = 2 ;p;q=x", propLabels, "a=1,b = 2 ;p;q=x," + propOurs},
		{"stale ours replaced", "canary.cohort=canary,x=1,canary.tenant=evil,canary.bucket=0", Labels{Cohort: Stable, Bucket: 5},
			"x=1,canary.cohort=stable,canary.bucket=5"},
		{"no labels: stale ours removed", "canary.cohort=canary,x=1", Labels{Bucket: NoBucket}, "x=1"},
		{"nothing left", "canary.cohort=canary", Labels{Bucket: NoBucket}, ""},
		{"invalid members dropped", "good=1,bad key=1,noequals,q=\"quoted\",p=%zz,ok=%41%62,=v,k=v;bad prop", propLabels,
			"good=1,ok=%41%62," + propOurs},
		{"value with equals sign", "k=a=b", propLabels, "k=a=b," + propOurs},
		{"invalid tenant left out of baggage", "", Labels{Tenant: "a b", Cohort: Canary, Bucket: 3}, "canary.cohort=canary,canary.bucket=3"},
		{"61 members: ours fit to 64", strings.Join(members(61, 10), ","), propLabels, strings.Join(members(61, 10), ",") + "," + propOurs},
		{"62 members: ours dropped whole", strings.Join(members(62, 10), ",") + ",canary.cohort=stable", propLabels, strings.Join(members(62, 10), ",")},
		{"70 members: cut to 64 whole members", strings.Join(members(70, 10), ","), propLabels, strings.Join(members(64, 10), ",")},
		{"bytes: ours do not fit", long + "," + strings.Repeat("z", 8192-len(long)-1-len(propOurs)-1) + "=1", propLabels,
			long + "," + strings.Repeat("z", 8192-len(long)-1-len(propOurs)-1) + "=1"},
		{"bytes: ours fit exactly", strings.Repeat("z", 8192-len(propOurs)-1-2) + "=1", propLabels,
			strings.Repeat("z", 8192-len(propOurs)-1-2) + "=1," + propOurs},
		{"bytes: existing too long, cut before the member that overflows", "a=1," + strings.Repeat("z", 8192) + "=1,b=2", propLabels, "a=1"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := MergeBaggage(tc.existing, tc.l)
			if got != tc.want {
				t.Fatalf("MergeBaggage =\n%.300q\nwant\n%.300q", got, tc.want)
			}
			checkBaggage(t, got)
		})
	}
}

// checkBaggage fails unless v is a valid W3C baggage value within the limits,
// by OpenTelemetry's independent parser.
func checkBaggage(t *testing.T, v string) {
	t.Helper()
	if v == "" {
		return
	}
	if len(v) > MaxBaggageBytes {
		t.Fatalf("baggage is %d bytes", len(v))
	}
	ms := strings.Split(v, ",")
	if len(ms) > MaxBaggageMembers {
		t.Fatalf("baggage has %d members", len(ms))
	}
	for _, m := range ms {
		if _, err := baggage.Parse(m); err != nil {
			t.Fatalf("member %.100q is not valid baggage: %v", m, err)
		}
	}
}

func FuzzMergeBaggage(f *testing.F) {
	f.Add("a=1,b=2;p", "acme", 12, true)
	f.Add("canary.cohort=canary", "", -1, false)
	f.Add(strings.Join(members(63, 120), ","), "t", 9999, true)
	f.Add("k=%zz, ,=,\x00=1,k2=v\"", "a:b", 0, false)
	f.Fuzz(func(t *testing.T, existing, tenantID string, bucket int, canary bool) {
		l := Labels{Tenant: tenantID, Bucket: bucket, Cohort: Stable}
		if canary {
			l.Cohort = Canary
		}
		got := MergeBaggage(existing, l)
		checkBaggage(t, got)
		ours, n := appendOurMembers(nil, l)
		// Ours are all there or none is; no stale member of ours survives.
		has := strings.Contains(","+got+",", ","+string(ours)+",")
		for _, k := range []string{BaggageCohort, BaggageTenant, BaggageBucket} {
			c := strings.Count(","+got, ","+k+"=")
			if c > 1 || (c == 1 && !has) {
				t.Fatalf("MergeBaggage(%q) = %q: member %s is stale or repeated", existing, got, k)
			}
		}
		// Every existing member kept is verbatim from the input.
		for _, m := range strings.Split(got, ",") {
			if m != "" && !strings.Contains(existing, m) && !strings.Contains(string(ours), m) {
				t.Fatalf("MergeBaggage(%q) = %q: member %q was altered", existing, got, m)
			}
		}
		// With no existing members, ours are always written.
		if strings.Trim(existing, " \t,") == "" && n > 0 && got != string(ours) {
			t.Fatalf("MergeBaggage(%q) = %q, want %q", existing, got, ours)
		}
	})
}
