package dbwrap

import (
	"context"
	"testing"
	"time"
)

func TestLSNRoundTrip(t *testing.T) {
	for _, s := range []string{"0/1", "16/B374D848", "FFFFFFFF/FFFFFFFF"} {
		p, err := parseLSN(s)
		if err != nil || formatLSN(p) != s {
			t.Errorf("parseLSN(%q) = %x, %v; formats as %q", s, p, err, formatLSN(p))
		}
	}
	for _, s := range []string{"", "/", "1/", "/1", "x/1", "1/2/3", "100000000/0"} {
		if _, err := parseLSN(s); err == nil {
			t.Errorf("parseLSN(%q) accepted", s)
		}
	}
	if _, ok := ConsistencyToken(WithConsistencyToken(context.Background(), "garbage")); ok {
		t.Error("a malformed token was attached")
	}
	a := WithConsistencyToken(context.Background(), "1/0")
	if tok, _ := ConsistencyToken(WithConsistencyToken(a, "0/FF")); tok != "1/0" {
		t.Errorf("a lower token replaced a higher one: %s", tok)
	}
}

// testStore checks a TokenStore's contract: the highest position wins, the
// TTL is refreshed, and an entry expires only after its TTL. (The Redis
// store's tests in redistoken check the same contract.)
func testStore(t *testing.T, s TokenStore, key string) {
	ctx := context.Background()
	if p, err := s.Load(ctx, key); err != nil || p != 0 {
		t.Fatalf("empty Load = %x, %v", p, err)
	}
	if err := s.Save(ctx, key, 0x200, time.Minute); err != nil {
		t.Fatal(err)
	}
	if err := s.Save(ctx, key, 0x100, time.Minute); err != nil {
		t.Fatal(err)
	}
	if p, err := s.Load(ctx, key); err != nil || p != 0x200 {
		t.Errorf("Load after a lower Save = %x, %v; want 200", p, err)
	}
	if err := s.Save(ctx, key, positionUnknown, time.Minute); err != nil {
		t.Fatal(err)
	}
	if p, _ := s.Load(ctx, key); p != positionUnknown {
		t.Errorf("Load = %x, want the unknown position", p)
	}
	// A later write's known position replaces the unknown one, even a lower
	// one than before: it covers every earlier write.
	if err := s.Save(ctx, key, 0x150, time.Minute); err != nil {
		t.Fatal(err)
	}
	if p, _ := s.Load(ctx, key); p != 0x150 {
		t.Errorf("Load after a known position replaced the unknown one = %x, want 150", p)
	}
	short := key + "-short"
	if err := s.Save(ctx, short, 5, 100*time.Millisecond); err != nil {
		t.Fatal(err)
	}
	if p, _ := s.Load(ctx, short); p != 5 {
		t.Errorf("Load before the TTL = %d, want 5", p)
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		p, _ := s.Load(ctx, short)
		if p == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the entry did not expire")
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestMemoryTokenStore(t *testing.T) {
	t.Parallel()
	testStore(t, NewMemoryTokenStore(), "3:acme:u1")
}
