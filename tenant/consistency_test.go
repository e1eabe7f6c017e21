package tenant

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"testing"
	"time"
)

// goldenPosition is a c1 consistency token signed with decisionKey. Its MAC
// was computed independently (Python's hmac module), so a change to the
// format or the MAC breaks this test.
const (
	goldenUser     = "0f1e2d3c4b5a69788796a5b4c3d2e1f0"
	goldenPosition = "c1;t=acme;u=" + goldenUser + ";p=16b374d848;e=1767225600;" +
		"s=yOYtO6y4Mt3o4F5lOVKguNsUUEI4GnjbKcyFkUpPBrQ"
)

func TestSignPositionGolden(t *testing.T) {
	s := newSigner(t, decisionKey)
	v, err := s.SignPosition("acme", goldenUser, 0x16b374d848, decisionExp)
	if err != nil || v != goldenPosition {
		t.Fatalf("SignPosition = %q, %v\nwant %q", v, err, goldenPosition)
	}
	p, err := s.VerifyPosition(goldenPosition, "acme", goldenUser, decisionNow)
	if err != nil || p != 0x16b374d848 {
		t.Fatalf("VerifyPosition(golden) = %x, %v", p, err)
	}
	if len(v) > MaxConsistencyLen {
		t.Fatalf("golden token of %d bytes exceeds MaxConsistencyLen", len(v))
	}
	longest, err := s.SignPosition(strings.Repeat("t", MaxTenantLen), goldenUser, ^uint64(0), time.Unix(99999999999, 0))
	if err != nil || len(longest) > MaxConsistencyLen {
		t.Fatalf("longest token: %d bytes, %v; MaxConsistencyLen %d", len(longest), err, MaxConsistencyLen)
	}
}

func TestVerifyPositionRejects(t *testing.T) {
	s := newSigner(t, decisionKey)
	other := newSigner(t, []byte("another-key-0123456789abcdef"))
	forged, _ := other.SignPosition("acme", goldenUser, 0x16b374d848, decisionExp)
	decision := goldenDecision // same key, tenant and user
	tests := []struct {
		name, v, tenant, user string
		now                   time.Time
		want                  error
	}{
		{"another key", forged, "acme", goldenUser, decisionNow, ErrConsistencySignature},
		{"tampered position", strings.Replace(goldenPosition, "p=16b374d848", "p=16b374d849", 1), "acme", goldenUser, decisionNow, ErrConsistencySignature},
		{"expired", goldenPosition, "acme", goldenUser, decisionExp, ErrConsistencyExpired},
		{"another user", goldenPosition, "acme", strings.Repeat("ab", 16), decisionNow, ErrConsistencyUser},
		{"no user", goldenPosition, "acme", "", decisionNow, ErrConsistencyUser},
		{"another tenant", goldenPosition, "globex", goldenUser, decisionNow, ErrConsistencyUser},
		{"a decision", decision, "acme", goldenUser, decisionNow, ErrConsistencyMalformed},
		{"oversized", goldenPosition + strings.Repeat("x", MaxConsistencyLen), "acme", goldenUser, decisionNow, ErrConsistencyMalformed},
		{"empty", "", "acme", goldenUser, decisionNow, ErrConsistencyMalformed},
		{"leading zero", strings.Replace(goldenPosition, "p=", "p=0", 1), "acme", goldenUser, decisionNow, ErrConsistencyMalformed},
		{"upper hex", strings.Replace(goldenPosition, "p=16b", "p=16B", 1), "acme", goldenUser, decisionNow, ErrConsistencyMalformed},
		{"position 0", strings.Replace(goldenPosition, "p=16b374d848", "p=0", 1), "acme", goldenUser, decisionNow, ErrConsistencyMalformed},
		{"17 digits", strings.Replace(goldenPosition, "p=16b374d848", "p=1"+strings.Repeat("0", 16), 1), "acme", goldenUser, decisionNow, ErrConsistencyMalformed},
		{"version", "c2" + goldenPosition[2:], "acme", goldenUser, decisionNow, ErrConsistencyMalformed},
		{"short mac", goldenPosition[:len(goldenPosition)-1], "acme", goldenUser, decisionNow, ErrConsistencyMalformed},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, err := s.VerifyPosition(tt.v, tt.tenant, tt.user, tt.now)
			if !errors.Is(err, tt.want) || p != 0 {
				t.Fatalf("VerifyPosition = %x, %v; want %v", p, err, tt.want)
			}
		})
	}
}

func TestSignPositionRejectsBadFields(t *testing.T) {
	s := newSigner(t, decisionKey)
	for _, tc := range []struct {
		tenant, user string
		pos          uint64
		exp          time.Time
		field        string
	}{
		{"a;b", goldenUser, 1, decisionExp, "field t"},
		{"acme", "XYZ", 1, decisionExp, "field u"},
		{"acme", goldenUser, 0, decisionExp, "field p"},
		{"acme", goldenUser, 1, time.Time{}, "field e"},
	} {
		_, err := s.SignPosition(tc.tenant, tc.user, tc.pos, tc.exp)
		if !errors.Is(err, ErrConsistencyMalformed) || !strings.Contains(err.Error(), tc.field) {
			t.Errorf("SignPosition(%q, %q, %d, %v) error %v, want ErrConsistencyMalformed naming %s", tc.tenant, tc.user, tc.pos, tc.exp, err, tc.field)
		}
	}
}

func TestPositionSignerRotation(t *testing.T) {
	oldKey := []byte("old-key-0123456789abcdef")
	old := newSigner(t, oldKey)
	rotated := newSigner(t, decisionKey, oldKey)
	l := Labels{Tenant: "acme", UserHash: goldenUser}
	v, err := old.PositionSigner(time.Minute, func() time.Time { return decisionNow })(l, 42)
	if err != nil {
		t.Fatal(err)
	}
	if p, err := rotated.VerifyPosition(v, "acme", goldenUser, decisionNow); err != nil || p != 42 {
		t.Fatalf("a token of the previous key: %d, %v", p, err)
	}
	if _, err := old.VerifyPosition(mustSignPos(t, rotated, l, 42), "acme", goldenUser, decisionNow); !errors.Is(err, ErrConsistencySignature) {
		t.Fatalf("a token of a key the verifier lacks: %v", err)
	}
}

func mustSignPos(t *testing.T, s *DecisionSigner, l Labels, pos uint64) string {
	t.Helper()
	v, err := s.PositionSigner(0, func() time.Time { return decisionNow })(l, pos)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

func TestPropagatePosition(t *testing.T) {
	s := newSigner(t, decisionKey)
	sign := s.PositionSigner(time.Minute, nil)
	l := Labels{Tenant: "acme", UserHash: goldenUser}

	h := http.Header{}
	h.Set(HeaderConsistency, "stale inbound token")
	if err := PropagatePosition(h, HTTP, l, 0x10, sign); err != nil {
		t.Fatal(err)
	}
	if vs := h.Values(HeaderConsistency); len(vs) != 1 {
		t.Fatalf("header after PropagatePosition: %q", vs)
	} else if p, err := s.VerifyPosition(vs[0], "acme", goldenUser, time.Now()); err != nil || p != 0x10 {
		t.Fatalf("propagated token verifies as %x, %v", p, err)
	}
	// No position, or no signer: an inbound token is never forwarded.
	for _, tc := range []struct {
		pos  uint64
		sign PositionSignFunc
	}{{0, sign}, {5, nil}} {
		h := http.Header{}
		h.Set(HeaderConsistency, "inbound")
		if err := PropagatePosition(h, HTTP, l, tc.pos, tc.sign); err != nil || len(h.Values(HeaderConsistency)) != 0 {
			t.Errorf("pos %d: header %q, err %v; want none", tc.pos, h.Values(HeaderConsistency), err)
		}
	}
	// A failing signer removes the key and names it.
	h.Set(HeaderConsistency, "inbound")
	err := PropagatePosition(h, HTTP, Labels{Tenant: "bad tenant"}, 5, sign)
	if !errors.Is(err, ErrConsistencyMalformed) || !strings.Contains(err.Error(), HeaderConsistency) || len(h.Values(HeaderConsistency)) != 0 {
		t.Errorf("failing signer: err %v, header %q", err, h.Values(HeaderConsistency))
	}

	kv, err := AppendPosition(nil, GRPC, l, 7, sign)
	if err != nil || len(kv) != 2 || kv[0] != "x-canary-consistency" {
		t.Fatalf("AppendPosition = %q, %v", kv, err)
	}
	if kv, err := AppendPosition(nil, GRPC, l, 0, sign); err != nil || len(kv) != 0 {
		t.Fatalf("AppendPosition without a position = %q, %v", kv, err)
	}
}

func TestSessionPosition(t *testing.T) {
	bg := context.Background()
	if p := PositionFromContext(bg); p != 0 {
		t.Fatalf("a bare context has position %d", p)
	}
	ctx := NewContext(bg, Labels{Tenant: "acme"})
	if p := PositionFromContext(ctx); p != 0 {
		t.Fatalf("a fresh request has position %d", p)
	}
	s := SessionFromContext(ctx)
	s.RaisePosition(10)
	s.RaisePosition(7) // lower: ignored
	if p := PositionFromContext(ctx); p != 10 {
		t.Fatalf("position %d, want 10", p)
	}
	// A child context with labels shares the session; its Labels.Position
	// raises the shared position, never lowers it.
	child := NewContext(ctx, Labels{Tenant: "acme", Position: 12})
	if p := PositionFromContext(ctx); p != 12 {
		t.Fatalf("after a child with Position 12: %d", p)
	}
	_ = NewContext(child, Labels{Tenant: "acme", Position: 3})
	if p := PositionFromContext(ctx); p != 12 {
		t.Fatalf("after a child with Position 3: %d", p)
	}
	// A context labelled with a position starts with it.
	if p := PositionFromContext(NewContext(bg, Labels{Position: 99})); p != 99 {
		t.Fatalf("NewContext with Position 99: %d", p)
	}
	pc := NewPendingContext(bg)
	if p := PositionFromContext(pc.Label(Labels{Position: 5})); p != 5 {
		t.Fatalf("PendingContext.Label with Position 5: %d", p)
	}
}
