// Package tokenstoretest checks that a dbwrap.TokenStore keeps the contract
// dbwrap relies on, for the stores of this module (the memory store, the
// Redis one in dbwrap/redistoken) and for third-party ones:
//
//	func TestMyStore(t *testing.T) {
//		tokenstoretest.Contract(t, newMyStore(t), "3:acme:u1")
//	}
package tokenstoretest

import (
	"context"
	"testing"
	"time"

	"github.com/reqcanary/canary/dbwrap"
)

// Contract checks s with key (which must not be in use): an empty Load is
// 0, the highest position Saved wins, a known position replaces
// [dbwrap.PositionUnknown] (even a lower one: it covers every earlier
// write), and an entry expires after its TTL and not before. It takes up to
// 5 s (the expiry of a 100 ms TTL is awaited).
func Contract(t testing.TB, s dbwrap.TokenStore, key string) {
	t.Helper()
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
	if err := s.Save(ctx, key, dbwrap.PositionUnknown, time.Minute); err != nil {
		t.Fatal(err)
	}
	if p, _ := s.Load(ctx, key); p != dbwrap.PositionUnknown {
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
