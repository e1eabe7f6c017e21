package tenant

import (
	"context"
	"sync"
	"testing"
)

func TestContextRoundTrip(t *testing.T) {
	if _, ok := FromContext(context.Background()); ok {
		t.Fatal("a bare context carries labels")
	}
	if SessionFromContext(context.Background()) != nil {
		t.Fatal("a bare context carries a session")
	}
	l := Labels{Tenant: "acme", UserHash: "ab", Bucket: 12, Cohort: Canary, Reason: ReasonPercent, TraceID: "t", PlanVersion: 7}
	ctx := NewContext(context.Background(), l)
	got, ok := FromContext(ctx)
	if !ok || got != l {
		t.Fatalf("FromContext = %+v, %v, want %+v", got, ok, l)
	}
	type other struct{}
	derived, cancel := context.WithCancel(context.WithValue(ctx, other{}, 1))
	defer cancel()
	if got, _ := FromContext(derived); got != l {
		t.Fatal("a derived context lost the labels")
	}
	if derived.Value(other{}) != 1 {
		t.Fatal("values of parent contexts are lost")
	}
	if SessionFromContext(derived) != SessionFromContext(ctx) {
		t.Fatal("a derived context does not share the session")
	}
}

func TestNewContextKeepsSession(t *testing.T) {
	ctx := NewContext(context.Background(), Labels{Tenant: "a"})
	s := SessionFromContext(ctx)
	s.Store("k", 1)
	again := NewContext(ctx, Labels{Tenant: "b"})
	if SessionFromContext(again) != s {
		t.Fatal("relabelling a request replaced its session")
	}
	if l, _ := FromContext(again); l.Tenant != "b" {
		t.Fatalf("relabelled tenant = %q", l.Tenant)
	}
	fresh := NewContext(context.Background(), Labels{})
	if SessionFromContext(fresh) == s {
		t.Fatal("two requests share a session")
	}
	if _, ok := SessionFromContext(fresh).Load("k"); ok {
		t.Fatal("a new session sees another request's value")
	}
}

func TestSessionConcurrentUpdate(t *testing.T) {
	ctx := NewContext(context.Background(), Labels{})
	s := SessionFromContext(ctx)
	var wg sync.WaitGroup
	for i := 0; i < 8; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := 0; j < 1000; j++ {
				s.Update("n", func(old any, ok bool) any {
					if !ok {
						return 1
					}
					return old.(int) + 1
				})
			}
		}()
	}
	wg.Wait()
	if v, _ := s.Load("n"); v != 8000 {
		t.Fatalf("counter = %v, want 8000 (lost updates)", v)
	}
}

func TestNewContextAllocatesOnce(t *testing.T) {
	base := context.Background()
	l := Labels{Tenant: "acme", Cohort: Stable}
	if n := testing.AllocsPerRun(100, func() { _ = NewContext(base, l) }); n > 1 {
		t.Fatalf("NewContext allocates %v times, want 1", n)
	}
}

func TestNewContextWithCohortHeader(t *testing.T) {
	l := Labels{Tenant: "acme", Cohort: Canary, Reason: ReasonTenantCanary, Bucket: 7}
	ctx, v := NewContextWithCohortHeader(context.Background(), l)
	if len(v) != 1 || cap(v) != 1 || v[0] != "canary" {
		t.Fatalf("header value %q (cap %d), want [canary] with capacity 1", v, cap(v))
	}
	if got, ok := FromContext(ctx); !ok || got != l {
		t.Fatalf("FromContext = %+v, %v, want %+v", got, ok, l)
	}
	v[0] = "changed"
	if got, _ := FromContext(ctx); got.Cohort != Canary {
		t.Fatalf("changing the header value changed the labels: %+v", got)
	}
	_, w := NewContextWithCohortHeader(ctx, Labels{Cohort: Stable})
	if w[0] != "stable" || v[0] != "changed" {
		t.Fatalf("values of two contexts are shared: %q %q", v, w)
	}
	if _ = append(v, "x"); v[0] != "changed" {
		t.Fatal("append changed the value")
	}
	if SessionFromContext(ctx) == nil {
		t.Fatal("no session")
	}
}

func TestSessionRecordWriteReplacesUnknown(t *testing.T) {
	var s Session
	s.RecordWrite(PositionUnknown)
	if got := s.Position(); got != PositionUnknown {
		t.Fatalf("after an unknown write: %x", got)
	}
	s.RaisePosition(10) // an upstream position does not lower it
	if got := s.Position(); got != PositionUnknown {
		t.Fatalf("RaisePosition lowered the unknown position to %x", got)
	}
	s.RecordWrite(20)
	if got := s.Position(); got != 20 {
		t.Fatalf("a known write left %x, want 20", got)
	}
	s.RecordWrite(15) // an older write's position never lowers it
	if got := s.Position(); got != 20 {
		t.Fatalf("an older write lowered the position to %d", got)
	}
}
