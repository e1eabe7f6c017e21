package tenant

import (
	"context"
	"math"
	"sync"
	"sync/atomic"
)

// labelsKey is the context key under which a *labelsContext finds itself.
type labelsKey struct{}

// labelsContext carries the labels and the session in a single allocation: it
// is itself the context returned by NewContext.
type labelsContext struct {
	context.Context
	labels  Labels
	session *Session
	own     Session
	cohort  [1]string // NewContextWithCohortHeader's value, this request's own
}

// Value returns the labelsContext itself for labelsKey and defers to the
// parent otherwise.
func (c *labelsContext) Value(key any) any {
	if key == (labelsKey{}) {
		return c
	}
	return c.Context.Value(key)
}

// String names the context for debugging, like the standard library's.
func (c *labelsContext) String() string { return "tenant.NewContext" }

// NewContext returns a copy of ctx that carries l. If ctx already carries a
// [Session] (it was made by NewContext, or derives from such a context), the
// new context shares it; otherwise it gets a new, empty one. Contexts derived
// from the result share its session.
func NewContext(ctx context.Context, l Labels) context.Context {
	return newLabelsContext(ctx, l)
}

// NewContextWithCohortHeader is [NewContext] that also returns the value an
// HTTP adapter puts under the [HeaderCohort] response header: a slice of one
// element, string(l.Cohort). The slice lives in the context's own
// allocation, so setting the header allocates nothing; it belongs to this
// request alone, so a handler that changes the header value in place changes
// only its own response; and its capacity is its length, so appending to it
// copies.
func NewContextWithCohortHeader(ctx context.Context, l Labels) (context.Context, []string) {
	c := newLabelsContext(ctx, l)
	c.cohort[0] = string(l.Cohort)
	return c, c.cohort[:1:1]
}

func newLabelsContext(ctx context.Context, l Labels) *labelsContext {
	c := &labelsContext{labels: l}
	c.init(ctx)
	if l.Position != 0 {
		c.session.RaisePosition(l.Position)
	}
	return c
}

// init makes ctx the parent of c and gives c its session: the one ctx
// carries, else c's own.
func (c *labelsContext) init(ctx context.Context) {
	c.Context = ctx
	if parent, ok := ctx.Value(labelsKey{}).(*labelsContext); ok {
		c.session = parent.session
	} else {
		c.session = &c.own
	}
}

// FromContext returns the Labels that ctx carries, and whether it carries any.
func FromContext(ctx context.Context) (Labels, bool) {
	if ctx == nil {
		return Labels{}, false
	}
	c, ok := ctx.Value(labelsKey{}).(*labelsContext)
	if !ok {
		return Labels{}, false
	}
	return c.labels, true
}

// SessionFromContext returns the request's [Session], or nil when ctx was not
// made by [NewContext] or derived from such a context.
func SessionFromContext(ctx context.Context) *Session {
	if ctx == nil {
		return nil
	}
	c, ok := ctx.Value(labelsKey{}).(*labelsContext)
	if !ok {
		return nil
	}
	return c.session
}

// Session is a small store that lives as long as one request. Later layers
// write to it what the rest of the request must honour, such as the database
// wrapper's read-your-writes token. Keys follow the rules of context keys: use
// an unexported type of your own package.
//
// A Session is safe for concurrent use. The zero value is ready to use.
type Session struct {
	mu     sync.Mutex
	values map[any]any
	pos    atomic.Uint64 // RaisePosition
}

// RaisePosition raises the write position that the request's reads must see
// (and that its outgoing calls carry to the services they call) to at least
// p; a lower p changes nothing. The database layer calls it after each write
// of the request; a context made by [NewContext] with [Labels.Position] set
// calls it with that position.
func (s *Session) RaisePosition(p uint64) {
	for {
		old := s.pos.Load()
		if old >= p || s.pos.CompareAndSwap(old, p) {
			return
		}
	}
}

// PositionUnknown is the position of a write whose position could not be
// read: no replica is known to have replayed it, so the reads that must see
// it go to the primary. [Session.RecordWrite] lets a later write's known
// position replace it.
const PositionUnknown uint64 = math.MaxUint64

// RecordWrite merges the position of a write the request made: as
// [Session.RaisePosition], except that a known position replaces
// [PositionUnknown], since a write's position covers every write committed
// before it on the same primary.
func (s *Session) RecordWrite(p uint64) {
	for {
		old := s.pos.Load()
		next := max(old, p)
		if old == PositionUnknown && p != 0 && p != PositionUnknown {
			next = p
		}
		if next == old || s.pos.CompareAndSwap(old, next) {
			return
		}
	}
}

// Position returns the highest write position raised by
// [Session.RaisePosition], or 0.
func (s *Session) Position() uint64 { return s.pos.Load() }

// PositionFromContext returns the write position that the reads of the
// request ctx belongs to must see ([Session.Position]), or 0 when ctx
// carries no session or no position. Outbound adapters send it, signed, to
// the services the request calls.
func PositionFromContext(ctx context.Context) uint64 {
	if s := SessionFromContext(ctx); s != nil {
		return s.Position()
	}
	return 0
}

// Load returns the value stored under key, and whether there was one.
func (s *Session) Load(key any) (any, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	v, ok := s.values[key]
	return v, ok
}

// Store sets the value under key.
func (s *Session) Store(key, value any) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.values == nil {
		s.values = make(map[any]any, 2)
	}
	s.values[key] = value
}

// Update atomically replaces the value under key by fn(old, ok), where ok
// says whether there was an old value, and returns the new value. fn runs
// with the session locked: it must be quick and must not use the session.
func (s *Session) Update(key any, fn func(old any, ok bool) any) any {
	s.mu.Lock()
	defer s.mu.Unlock()
	old, ok := s.values[key]
	v := fn(old, ok)
	if s.values == nil {
		s.values = make(map[any]any, 2)
	}
	s.values[key] = v
	return v
}
