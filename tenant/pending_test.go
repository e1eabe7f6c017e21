package tenant

import (
	"context"
	"sync"
	"testing"
)

func TestPendingContextLabelsOnce(t *testing.T) {
	type key struct{}
	parent := context.WithValue(context.Background(), key{}, "v")
	p := NewPendingContext(parent)
	if p.Parent() != parent {
		t.Fatal("Parent is not the context the PendingContext was made from")
	}
	if _, ok := FromContext(p.Parent()); ok {
		t.Fatal("the parent carries labels before Label")
	}
	first := Labels{Tenant: "acme", Cohort: Canary, Reason: ReasonPercent, Bucket: 12, PlanVersion: 3}
	ctx := p.Label(first)
	if got, ok := FromContext(ctx); !ok || got != first {
		t.Fatalf("FromContext = %+v, %v, want %+v", got, ok, first)
	}
	if ctx.Value(key{}) != "v" {
		t.Fatal("the labelled context lost its parent's values")
	}
	if _, ok := FromContext(p.Parent()); ok {
		t.Fatal("Label put the labels into the parent")
	}

	second := Labels{Tenant: "globex", Cohort: Stable, Reason: ReasonNoKey}
	again := p.Label(second)
	if got, _ := FromContext(ctx); got != first {
		t.Fatalf("a second Label changed the first context's labels to %+v", got)
	}
	if got, _ := FromContext(again); got != second {
		t.Fatalf("the second Label's context carries %+v, want %+v", got, second)
	}
	if again == ctx {
		t.Fatal("the second Label returned the first context")
	}
	if again.Value(key{}) != "v" || p.Parent() != parent {
		t.Fatal("the second Label's context is not a child of the parent")
	}
	if SessionFromContext(again) != SessionFromContext(ctx) {
		t.Fatal("the contexts of one PendingContext do not share its session")
	}
}

// A parent that already carries labels keeps showing them through the
// PendingContext's Parent until Label, and the labelled context replaces them.
func TestPendingContextUnderLabelledParent(t *testing.T) {
	up := Labels{Tenant: "upstream", Cohort: Stable}
	parent := NewContext(context.Background(), up)
	p := NewPendingContext(parent)
	if got, _ := FromContext(p.Parent()); got != up {
		t.Fatalf("Parent carries %+v, want the upstream labels", got)
	}
	l := Labels{Tenant: "acme", Cohort: Canary}
	if got, _ := FromContext(p.Label(l)); got != l {
		t.Fatalf("labelled context carries %+v, want %+v", got, l)
	}
}

func TestPendingContextSession(t *testing.T) {
	parent := NewContext(context.Background(), Labels{Tenant: "a"})
	s := SessionFromContext(parent)
	s.Store("k", 1)
	ctx := NewPendingContext(parent).Label(Labels{Tenant: "b"})
	if SessionFromContext(ctx) != s {
		t.Fatal("a labelled context does not share its parent's session")
	}

	a := NewPendingContext(context.Background()).Label(Labels{})
	b := NewPendingContext(context.Background()).Label(Labels{})
	sa, sb := SessionFromContext(a), SessionFromContext(b)
	if sa == nil || sb == nil {
		t.Fatal("a labelled context of a bare parent has no session")
	}
	if sa == sb || sa == s {
		t.Fatal("two requests share a session")
	}
	if _, ok := sa.Load("k"); ok {
		t.Fatal("a new session sees another request's value")
	}
	if SessionFromContext(NewPendingContext(context.Background()).Parent()) != nil {
		t.Fatal("a bare parent carries a session")
	}
}

// Concurrent Label calls each get a context with their own labels, none of
// which changes afterwards, and all share one session. Run with -race.
func TestPendingContextConcurrentLabel(t *testing.T) {
	p := NewPendingContext(context.Background())
	const n = 8
	ctxs := make([]context.Context, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_ = p.Parent()
			l := Labels{Bucket: i, Cohort: Canary}
			ctx := p.Label(l)
			if got, ok := FromContext(ctx); !ok || got != l {
				t.Errorf("goroutine %d: FromContext = %+v, %v, want %+v", i, got, ok, l)
			}
			SessionFromContext(ctx).Update("n", func(old any, ok bool) any {
				if !ok {
					return 1
				}
				return old.(int) + 1
			})
			ctxs[i] = ctx
		}()
	}
	wg.Wait()
	s := SessionFromContext(ctxs[0])
	for i, ctx := range ctxs {
		if got, _ := FromContext(ctx); got.Bucket != i {
			t.Fatalf("context %d carries bucket %d after all calls returned", i, got.Bucket)
		}
		if SessionFromContext(ctx) != s {
			t.Fatalf("context %d has another session", i)
		}
	}
	if v, _ := s.Load("n"); v != n {
		t.Fatalf("session counter = %v, want %d", v, n)
	}
}

func TestPendingContextNilParentPanics(t *testing.T) {
	defer func() {
		if recover() == nil {
			t.Fatal("NewPendingContext(nil) did not panic")
		}
	}()
	_ = NewPendingContext(nil) //nolint:staticcheck // the nil parent is the point
}

func TestPendingContextAllocatesOnce(t *testing.T) {
	if raceEnabled {
		t.Skip("allocation counts are meaningless under the race detector")
	}
	base := context.Background()
	l := Labels{Tenant: "acme", Cohort: Stable}
	if n := testing.AllocsPerRun(100, func() { _ = NewPendingContext(base).Label(l) }); n != 1 {
		t.Fatalf("NewPendingContext and Label allocate %v times, want 1", n)
	}
}

// TestPendingContextInitInCallersMemory: Init in a caller's struct gives
// what NewPendingContext gives, without allocating; the user hash buffer is
// handed out once; the cohort header lives in the context.
func TestPendingContextInitInCallersMemory(t *testing.T) {
	type state struct {
		p   PendingContext
		tag string
	}
	parent := NewContext(context.Background(), Labels{Tenant: "outer"})
	s := &state{tag: "x"}
	s.p.Init(parent)
	if s.p.Parent() != parent {
		t.Fatal("Parent is not the context Init was given")
	}
	b := s.p.UserHashBuffer()
	if b == nil || s.p.UserHashBuffer() != nil {
		t.Fatal("the user hash buffer must be given once, then nil")
	}
	h := NewRandomUserHasher()
	l := Labels{Tenant: "acme", UserHash: h.HashInto(b, "acme", "alice"), Cohort: Canary}
	ctx, hdr := s.p.LabelWithCohortHeader(l)
	got, ok := FromContext(ctx)
	if !ok || got != l || got.UserHash != h.Hash("acme", "alice") {
		t.Fatalf("FromContext = %+v, %v; want %+v", got, ok, l)
	}
	if len(hdr) != 1 || hdr[0] != "canary" || cap(hdr) != 1 {
		t.Fatalf("cohort header %q (cap %d)", hdr, cap(hdr))
	}
	if SessionFromContext(ctx) != SessionFromContext(parent) {
		t.Fatal("the labelled context does not share its parent's session")
	}
	// A second label is a new context; the first keeps its labels.
	ctx2, hdr2 := s.p.LabelWithCohortHeader(Labels{Tenant: "acme", Cohort: Stable})
	if l1, _ := FromContext(ctx); l1 != l || ctx2 == ctx || hdr2[0] != "stable" || hdr[0] != "canary" {
		t.Fatal("a second LabelWithCohortHeader changed the first context")
	}
	defer func() {
		if recover() == nil {
			t.Fatal("a second Init did not panic")
		}
	}()
	s.p.Init(parent)
}

func TestPendingContextInitAllocatesNothing(t *testing.T) {
	if raceEnabled {
		t.Skip("allocation counts are meaningless under the race detector")
	}
	p := new(PendingContext)
	parent := context.Background()
	if n := testing.AllocsPerRun(100, func() {
		*p = PendingContext{}
		p.Init(parent)
		p.LabelWithCohortHeader(Labels{Tenant: "acme", Cohort: Canary})
	}); n != 0 {
		t.Fatalf("Init and LabelWithCohortHeader allocate %v times, want 0", n)
	}
}
