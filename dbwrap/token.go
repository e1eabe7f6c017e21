package dbwrap

import (
	"context"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/reqcanary/canary/tenant"
)

// A consistency token is a write position (see Dialect) written as two
// hexadecimal halves "HI/LO", PostgreSQL's LSN text form, e.g. "16/B374D848".
// A read that carries a token goes to a replica whose replay position has
// reached it, else to the primary.
//
// PositionUnknown is the position of a write whose position could not be
// read (no dialect, or the query failed, e.g. the primary went down right
// after the write): no replica ever reaches it, so reads that must see it go
// to the primary. It is not a position like the others: a later write's
// known position replaces it (that write's position covers every earlier
// write on the same primary), and it expires with its TTL like any other.
// A TokenStore must implement that rule (see TokenStore.Save).
const PositionUnknown = tenant.PositionUnknown

const positionUnknown = PositionUnknown

// ctxKey is the context key of dbwrap's own per-context options.
type ctxKey struct{}

// ctxOptions are the options WithPrimary and WithConsistencyToken set.
type ctxOptions struct {
	primary bool
	token   *tokenBox // nil when no token was attached
}

// tokenBox is the position a context's reads must see. It grows, with one
// exception: a write's known position replaces PositionUnknown (see
// record). Writes through a context made by WithConsistencyToken record
// theirs in it.
type tokenBox struct{ pos atomic.Uint64 }

// raise merges a position the reads must see too (an upstream token, the
// user's stored one): the highest wins, PositionUnknown above all.
func (b *tokenBox) raise(p uint64) {
	for {
		old := b.pos.Load()
		if old >= p || b.pos.CompareAndSwap(old, p) {
			return
		}
	}
}

// record merges the position read after a write: as raise, except that a
// known position replaces PositionUnknown, since a write's position covers
// every write committed before it on the primary.
func (b *tokenBox) record(p uint64) {
	for {
		old := b.pos.Load()
		next := MergePosition(old, p)
		if next == old || b.pos.CompareAndSwap(old, next) {
			return
		}
	}
}

// MergePosition returns what a remembered position cur becomes when a write
// at pos is recorded: the higher of the two, except that a known pos (not 0,
// not PositionUnknown) replaces PositionUnknown, since a write's position
// covers every write committed before it on the primary. It is the rule of
// TokenStore.Save; a TokenStore implementation can apply it as is. It is a
// pure function.
func MergePosition(cur, pos uint64) uint64 {
	if cur == positionUnknown && pos != positionUnknown && pos != 0 {
		return pos
	}
	return max(cur, pos)
}

func optionsFrom(ctx context.Context) *ctxOptions {
	o, _ := ctx.Value(ctxKey{}).(*ctxOptions)
	return o
}

// WithPrimary returns a copy of ctx whose statements all go to the primary,
// like a /* canary:primary */ comment on each of them.
func WithPrimary(ctx context.Context) context.Context {
	o := ctxOptions{primary: true}
	if p := optionsFrom(ctx); p != nil {
		o.token = p.token
	}
	return context.WithValue(ctx, ctxKey{}, &o)
}

// WithConsistencyToken returns a copy of ctx whose reads see at least the
// writes that token (from [ConsistencyToken], usually of an upstream service)
// stands for: they go to a replica that has replayed it, else to the primary.
// Writes made through the returned context raise its token. An empty or
// malformed token is ignored.
func WithConsistencyToken(ctx context.Context, token string) context.Context {
	p, err := parseLSN(token)
	if err != nil || p == 0 {
		return ctx
	}
	o := ctxOptions{token: new(tokenBox)}
	if parent := optionsFrom(ctx); parent != nil {
		o.primary = parent.primary
		if parent.token != nil {
			o.token.pos.Store(parent.token.pos.Load())
		}
	}
	o.token.raise(p)
	return context.WithValue(ctx, ctxKey{}, &o)
}

// ConsistencyToken returns the token that the reads through ctx must see:
// the highest of the request's position (tenant.PositionFromContext: the
// positions written through the request's tenant session, see
// tenant.NewContext, an upstream service's verified position, and the
// user's remembered position once a read of this request loaded it) and of
// the token attached by WithConsistencyToken. ok is false when there is
// none. The engine's transports carry the request's position, signed, to
// downstream services (X-Canary-Consistency), whose engines hand it to
// their dbwrap; for other transports, attach the token with
// WithConsistencyToken downstream.
func ConsistencyToken(ctx context.Context) (token string, ok bool) {
	p := tenant.PositionFromContext(ctx)
	if o := optionsFrom(ctx); o != nil && o.token != nil {
		p = max(p, o.token.pos.Load())
	}
	if p == 0 {
		return "", false
	}
	return formatLSN(p), true
}

// sessionKey is the tenant.Session key of the request's sessionState.
type sessionKey struct{}

// sessionState is what dbwrap keeps in a request's tenant.Session, besides
// the request's position, which the session itself holds
// (tenant.Session.RaisePosition) so that outgoing calls can carry it.
type sessionState struct {
	userLoaded atomic.Bool // the user's stored position was merged into the session's
}

// sessionStateOf returns the request's state, creating it when create is
// true; nil when ctx has no tenant session (or none yet and !create).
func sessionStateOf(s *tenant.Session, create bool) *sessionState {
	if s == nil {
		return nil
	}
	if v, ok := s.Load(sessionKey{}); ok {
		return v.(*sessionState)
	}
	if !create {
		return nil
	}
	v := s.Update(sessionKey{}, func(old any, ok bool) any {
		if ok {
			return old
		}
		return new(sessionState)
	})
	return v.(*sessionState)
}

// userKey returns the token store key of the labels' user, or "" when the
// labels name no user.
func userKey(l tenant.Labels) string {
	if l.UserHash == "" {
		return ""
	}
	return strconv.Itoa(len(l.Tenant)) + ":" + l.Tenant + ":" + l.UserHash
}

// TokenStore remembers, per user (tenant + user hash), the highest write
// position of that user's recent writes, so that the user's next requests
// read their writes too.
//
// Implementations must be safe for concurrent use, must keep the highest
// position when Save is called with a lower one (except that a known
// position replaces PositionUnknown: [MergePosition] applies both rules),
// and must not forget a position before its TTL has passed (a position is
// never cleared early, even when some replica has caught up: others may not
// have). Keys are opaque strings made by dbwrap from the tenant and the
// user hash; a store keeps them as they are, e.g. under a prefix of its own.
//
// dbwrap ships [NewMemoryTokenStore]; the Redis store, for several
// instances serving the same users, is in package
// [github.com/reqcanary/canary/dbwrap/redistoken].
type TokenStore interface {
	// Load returns the user's position, or 0 when none is remembered.
	Load(ctx context.Context, key string) (uint64, error)
	// Save records a write of the user's at pos: it raises the user's
	// position to at least pos and remembers it for at least ttl from now.
	// When the remembered position is PositionUnknown and pos is known, pos
	// replaces it and is remembered for ttl from now: the unknown position
	// must not outlive the next known one, nor have its TTL renewed by it.
	Save(ctx context.Context, key string, pos uint64, ttl time.Duration) error
}

// NewMemoryTokenStore returns a TokenStore that keeps positions in this
// process's memory. Expired entries are dropped lazily by later calls; it
// starts no goroutine. It is safe for concurrent use.
func NewMemoryTokenStore() TokenStore {
	return &memoryTokens{entries: make(map[string]memoryToken)}
}

type memoryTokens struct {
	mu        sync.Mutex
	entries   map[string]memoryToken
	nextSweep time.Time
}

type memoryToken struct {
	pos     uint64
	expires time.Time
}

var _ TokenStore = (*memoryTokens)(nil)

func (m *memoryTokens) Load(_ context.Context, key string) (uint64, error) {
	now := time.Now()
	m.mu.Lock()
	defer m.mu.Unlock()
	e, ok := m.entries[key]
	if !ok || !now.Before(e.expires) {
		return 0, nil
	}
	return e.pos, nil
}

func (m *memoryTokens) Save(_ context.Context, key string, pos uint64, ttl time.Duration) error {
	now := time.Now()
	m.mu.Lock()
	defer m.mu.Unlock()
	e, ok := m.entries[key]
	if !ok || !now.Before(e.expires) {
		e = memoryToken{}
	}
	exp := now.Add(ttl)
	if e.pos == positionUnknown && pos != positionUnknown {
		e.expires = exp // the unknown position ends here
	}
	e.pos = MergePosition(e.pos, pos)
	if exp.After(e.expires) {
		e.expires = exp
	}
	m.entries[key] = e
	if now.After(m.nextSweep) {
		for k, v := range m.entries {
			if !now.Before(v.expires) {
				delete(m.entries, k)
			}
		}
		m.nextSweep = now.Add(ttl)
	}
	return nil
}
