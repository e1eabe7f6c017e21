package redistoken

import (
	"testing"
	"time"

	"github.com/reqcanary/canary/dbwrap"
)

// The local copy keeps at most its capacity, drops the least recently saved
// entry first, counts dirty entries dropped before their write-back, applies
// the unknown-position rule, and hands back pending entries oldest first
// with what is left of their TTL.
func TestLocalTokens(t *testing.T) {
	now := time.Unix(1000, 0)
	l := newLocalTokens(2)
	l.save("a", 10, time.Minute, now)
	l.markDirty("a")
	l.save("b", 20, time.Minute, now.Add(time.Second))
	l.markDirty("b")
	if got := l.pending(now.Add(2 * time.Second)); len(got) != 2 || got[0].key != "a" || got[0].ttl != 58*time.Second {
		t.Fatalf("pending = %+v, want a (58 s left) then b", got)
	}
	l.save("c", 30, time.Minute, now.Add(2*time.Second)) // evicts a, dirty
	if _, ok := l.load("a", now); ok || l.lost != 1 || l.dirtyCount() != 1 {
		t.Errorf("after eviction: a kept %v, lost %d, dirty %d; want gone, 1, 1", ok, l.lost, l.dirtyCount())
	}
	v, merged := l.save("b", 15, time.Minute, now.Add(3*time.Second))
	if merged != 20 {
		t.Errorf("save of 15 over 20 returned %d to send, want the merged 20", merged)
	}
	if p, _ := l.load("b", now.Add(3*time.Second)); p != 20 {
		t.Errorf("b after a lower save = %d, want 20", p)
	}
	l.markClean("b", v-1) // an older version was written: still dirty
	if l.dirtyCount() != 1 {
		t.Errorf("dirty = %d after cleaning an old version, want 1", l.dirtyCount())
	}
	l.markClean("b", v)
	if l.dirtyCount() != 0 {
		t.Errorf("dirty = %d, want 0", l.dirtyCount())
	}
	l.save("c", dbwrap.PositionUnknown, time.Minute, now.Add(4*time.Second))
	l.save("c", 5, time.Second, now.Add(5*time.Second))
	if p, ok := l.load("c", now.Add(5*time.Second)); !ok || p != 5 {
		t.Errorf("c = %x, %v after a known position replaced the unknown one; want 5", p, ok)
	}
	if _, ok := l.load("c", now.Add(7*time.Second)); ok {
		t.Error("c outlived the TTL of the known position that replaced the unknown one")
	}
}
