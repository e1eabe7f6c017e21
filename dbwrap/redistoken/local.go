package redistoken

import (
	"sync"
	"time"

	"github.com/reqcanary/canary/dbwrap"
)

// localTokens is the Store's in-process copy of the positions
// this instance saved: written through on every Save, read on every Load (so
// that read-your-writes holds on this instance while Redis is unreachable),
// and the source of the write-back of the positions Redis missed.
//
// It holds at most capacity entries; when full, the entry saved least
// recently goes. Entries expire with the TTL they were saved with; an
// expired entry is dropped when it is saved again or reaches the end of the
// list. It is safe for concurrent use.
type localTokens struct {
	mu       sync.Mutex
	capacity int
	entries  map[string]*localToken
	head     *localToken // most recently saved
	tail     *localToken // least recently saved
	dirty    int         // entries Redis has not got yet
	lost     uint64      // dirty entries evicted before they were written back
}

type localToken struct {
	key        string
	pos        uint64
	expires    time.Time
	ver        uint64 // bumped by every save of the key
	dirty      bool   // saved here, not yet in Redis
	prev, next *localToken
}

// pendingToken is a dirty entry to write back.
type pendingToken struct {
	key string
	pos uint64
	ttl time.Duration // what is left of it
	ver uint64
}

func newLocalTokens(capacity int) *localTokens {
	return &localTokens{capacity: capacity, entries: make(map[string]*localToken, min(capacity, 1024))}
}

// save records a write at pos (the TokenStore.Save rules) and returns the
// entry's new version.
func (l *localTokens) save(key string, pos uint64, ttl time.Duration, now time.Time) (ver, merged uint64) {
	l.mu.Lock()
	defer l.mu.Unlock()
	exp := now.Add(ttl)
	e := l.entries[key]
	switch {
	case e == nil:
		e = &localToken{key: key}
		l.entries[key] = e
		l.pushFront(e)
		for len(l.entries) > l.capacity {
			l.remove(l.tail, now)
		}
	case !now.Before(e.expires):
		l.setDirty(e, false)
		e.pos, e.expires = 0, time.Time{}
		l.moveToFront(e)
	default:
		l.moveToFront(e)
	}
	if e.pos == dbwrap.PositionUnknown && pos != dbwrap.PositionUnknown {
		e.expires = exp
	}
	e.pos = dbwrap.MergePosition(e.pos, pos)
	if exp.After(e.expires) {
		e.expires = exp
	}
	e.ver++
	return e.ver, e.pos
}

// load returns the key's position, if it has one that has not expired.
func (l *localTokens) load(key string, now time.Time) (uint64, bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	e := l.entries[key]
	if e == nil || !now.Before(e.expires) {
		return 0, false
	}
	return e.pos, true
}

// markDirty marks the key's entry as missing from Redis.
func (l *localTokens) markDirty(key string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if e := l.entries[key]; e != nil {
		l.setDirty(e, true)
	}
}

// markClean marks the key's entry as written to Redis, unless it was saved
// again since version ver.
func (l *localTokens) markClean(key string, ver uint64) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if e := l.entries[key]; e != nil && e.ver == ver {
		l.setDirty(e, false)
	}
}

// pending returns the dirty entries that have not expired, least recently
// saved first, and forgets the dirty mark of expired ones (Redis would drop
// them anyway).
func (l *localTokens) pending(now time.Time) []pendingToken {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.dirty == 0 {
		return nil
	}
	out := make([]pendingToken, 0, l.dirty)
	for e := l.tail; e != nil; e = e.prev {
		if !e.dirty {
			continue
		}
		left := e.expires.Sub(now)
		if left <= 0 {
			l.setDirty(e, false)
			continue
		}
		out = append(out, pendingToken{key: e.key, pos: e.pos, ttl: left, ver: e.ver})
	}
	return out
}

// dirtyCount returns the number of entries Redis has not got yet.
func (l *localTokens) dirtyCount() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.dirty
}

func (l *localTokens) setDirty(e *localToken, d bool) {
	if e.dirty == d {
		return
	}
	e.dirty = d
	if d {
		l.dirty++
	} else {
		l.dirty--
	}
}

func (l *localTokens) remove(e *localToken, now time.Time) {
	if e.dirty && now.Before(e.expires) {
		l.lost++
	}
	l.setDirty(e, false)
	l.unlink(e)
	delete(l.entries, e.key)
}

func (l *localTokens) pushFront(e *localToken) {
	e.prev, e.next = nil, l.head
	if l.head != nil {
		l.head.prev = e
	}
	l.head = e
	if l.tail == nil {
		l.tail = e
	}
}

func (l *localTokens) unlink(e *localToken) {
	if e.prev != nil {
		e.prev.next = e.next
	} else {
		l.head = e.next
	}
	if e.next != nil {
		e.next.prev = e.prev
	} else {
		l.tail = e.prev
	}
	e.prev, e.next = nil, nil
}

func (l *localTokens) moveToFront(e *localToken) {
	if l.head == e {
		return
	}
	l.unlink(e)
	l.pushFront(e)
}
