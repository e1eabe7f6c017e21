package tenant

import (
	"context"
	"sync/atomic"
)

// PendingContext is a labels context allocated before its labels are known,
// for an adapter that wants the memory of the context it will hand its
// handler to serve first as something else, such as the [Source] it gives
// the [Decider]: a pointer to a type defined over PendingContext boxes into
// an interface without allocating.
//
// A PendingContext is not itself a context: until [PendingContext.Label] is
// called, no context carrying it exists, so nothing can observe a request
// whose labels are not yet decided. Make one with [NewPendingContext]; the
// zero value is not usable. Its methods are safe for concurrent use.
//
// An adapter that keeps other per-request state can embed a PendingContext
// in its own struct and call [PendingContext.Init], so that one allocation
// holds both.
type PendingContext struct {
	c        labelsContext
	labelled atomic.Bool // c has been handed out by Label
	hashOut  atomic.Bool // hash has been handed out by UserHashBuffer
	hash     [UserHashLen]byte
}

// NewPendingContext returns a PendingContext whose labelled context will be
// a child of parent and will carry parent's [Session] if parent carries one,
// as [NewContext] would. It allocates once: the context [PendingContext.Label]
// returns first is that same allocation. It panics if parent is nil, as the
// context package's constructors do.
func NewPendingContext(parent context.Context) *PendingContext {
	if parent == nil {
		panic("tenant: NewPendingContext with a nil parent context")
	}
	p := &PendingContext{}
	p.c.init(parent)
	return p
}

// Init makes the zero PendingContext p what [NewPendingContext](parent)
// returns, in memory the caller owns (typically a field of its own
// per-request struct), allocating nothing. It panics if parent is nil or p
// has already been initialized.
func (p *PendingContext) Init(parent context.Context) {
	if parent == nil {
		panic("tenant: PendingContext.Init with a nil parent context")
	}
	if p.c.Context != nil {
		panic("tenant: PendingContext.Init called twice")
	}
	p.c.init(parent)
}

// UserHashBuffer returns memory in p for the hex digits of the request's
// user hash ([UserHasher.HashInto]), so that deciding allocates no string:
// the first call returns it, later calls return nil (a buffer is written
// once, as the string made from it must never change). It implements
// [UserHashBuffer] for adapters whose [Source] is built on p.
func (p *PendingContext) UserHashBuffer() *[UserHashLen]byte {
	if p.hashOut.Swap(true) {
		return nil
	}
	return &p.hash
}

// LabelWithCohortHeader is [PendingContext.Label] that also returns the
// value an HTTP adapter sets under [HeaderCohort], as
// [NewContextWithCohortHeader] does: a slice of one element in the
// context's own memory, this request's own.
func (p *PendingContext) LabelWithCohortHeader(l Labels) (context.Context, []string) {
	ctx := p.Label(l)
	c := ctx.(*labelsContext)
	c.cohort[0] = string(l.Cohort)
	return c, c.cohort[:1:1]
}

// Parent returns the context p was made from. It never carries p's labels;
// it is what an adapter reads the request from while the labels are being
// decided, and it stays the same after Label.
func (p *PendingContext) Parent() context.Context { return p.c.Context }

// Label returns a child of [PendingContext.Parent] that carries l
// ([FromContext]) and p's session ([SessionFromContext]).
//
// The first call returns the context that [NewPendingContext] allocated,
// allocating nothing. Labels, once set, never change: a later call (even a
// concurrent one) does not touch that context but returns a new one, as
// NewContext(p.Parent(), l) would, except that it shares p's session. Every
// context Label returns is a distinct context with the labels it was asked
// for.
func (p *PendingContext) Label(l Labels) context.Context {
	if l.Position != 0 {
		p.c.session.RaisePosition(l.Position)
	}
	if !p.labelled.CompareAndSwap(false, true) {
		return &labelsContext{Context: p.c.Context, labels: l, session: p.c.session}
	}
	p.c.labels = l
	return &p.c
}
