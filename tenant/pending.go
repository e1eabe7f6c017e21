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
type PendingContext struct {
	c        labelsContext
	labelled atomic.Bool // c has been handed out by Label
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
