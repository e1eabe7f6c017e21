package fallback

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net/http"
	"sync"
)

// errBodyGone is the error of an attempt that finds the request's body of
// unbounded size already handed to an earlier attempt (the chain stops
// before that happens; this is a guard).
var errBodyGone = errors.New("fallback: the request body was already sent and cannot be replayed")

// reqBody is the body of one request, handed to each attempt by the
// recorder (failsafehttp never sees it, so it never buffers it).
//
// A body of at most Config.MaxReplayBodyBytes is replayable: every attempt
// gets a fresh reader over the bytes kept in memory (or from the caller's
// GetBody). A larger body, or one of unknown length that turns out larger
// once that many bytes were read ahead, is streamed once: the first attempt
// the base transport reads from gets it, and no later attempt can; an
// attempt that never read it (open circuit, refused connection) leaves it to
// the next endpoint.
type reqBody struct {
	length int64 // ContentLength of every attempt; -1 when unknown

	// Replayable bodies.
	getBody func() (io.ReadCloser, error)

	// Bodies sent once.
	once   bool
	src    io.ReadCloser
	mu     sync.Mutex
	read   bool // an attempt read from src
	out    int  // attempts holding src
	closed bool // src is closed
	done   bool // RoundTrip returned: the last holder closes src
}

// newReqBody prepares req's body for the attempts of the chain: replayable
// when the chain has several endpoints (multi) and the body is at most limit
// bytes, sent once otherwise. It returns nil for a request without a body,
// and closes req.Body on error.
func newReqBody(req *http.Request, limit int64, multi bool) (*reqBody, error) {
	if req.Body == nil || req.Body == http.NoBody {
		return nil, nil
	}
	length := req.ContentLength
	if length == 0 {
		length = -1 // a body with ContentLength 0 is of unknown length
	}
	if !multi || length > limit {
		return &reqBody{once: true, src: req.Body, length: length}, nil
	}
	if length > 0 && req.GetBody != nil {
		req.Body.Close() // every attempt reads from GetBody
		return &reqBody{getBody: req.GetBody, length: length}, nil
	}
	// Read ahead at most limit+1 bytes: the whole body when it is small.
	buf, err := io.ReadAll(io.LimitReader(req.Body, limit+1))
	if err != nil {
		req.Body.Close()
		return nil, fmt.Errorf("fallback: reading request body: %w", err)
	}
	if int64(len(buf)) <= limit {
		req.Body.Close()
		return &reqBody{length: int64(len(buf)), getBody: func() (io.ReadCloser, error) {
			return io.NopCloser(bytes.NewReader(buf)), nil
		}}, nil
	}
	src := struct {
		io.Reader
		io.Closer
	}{io.MultiReader(bytes.NewReader(buf), req.Body), req.Body}
	return &reqBody{once: true, src: src, length: length}, nil
}

// attempt returns the body, GetBody and ContentLength of one attempt.
func (b *reqBody) attempt() (io.ReadCloser, func() (io.ReadCloser, error), int64, error) {
	if !b.once {
		rc, err := b.getBody()
		if err != nil {
			return nil, nil, 0, fmt.Errorf("fallback: replaying request body: %w", err)
		}
		return rc, b.getBody, b.length, nil
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed || b.read || b.out > 0 {
		return nil, nil, 0, errBodyGone
	}
	b.out++
	return &onceView{b: b}, nil, b.length, nil
}

// reusable reports whether another attempt may still get the body: it is
// replayable, or no attempt has read from it and none holds it.
func (b *reqBody) reusable() bool {
	if !b.once {
		return true
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	return !b.closed && !b.read && b.out == 0
}

// finish is called when RoundTrip returns: a body sent once is closed now,
// or by the base transport holding it when it closes its view.
func (b *reqBody) finish() {
	if b == nil || !b.once {
		return
	}
	b.mu.Lock()
	b.done = true
	closeNow := b.out == 0 && !b.closed
	b.closed = b.closed || closeNow
	b.mu.Unlock()
	if closeNow {
		b.src.Close()
	}
}

// onceView is an attempt's handle on a body sent once. Closing it (the base
// transport always does) closes the caller's body once it was read, or once
// RoundTrip is over; a view never read leaves the body to the next attempt.
type onceView struct {
	b        *reqBody
	closeOne sync.Once
}

func (v *onceView) Read(p []byte) (int, error) {
	v.b.mu.Lock()
	v.b.read = true
	closed := v.b.closed
	v.b.mu.Unlock()
	if closed {
		return 0, errBodyGone
	}
	return v.b.src.Read(p)
}

func (v *onceView) Close() error {
	var err error
	v.closeOne.Do(func() {
		b := v.b
		b.mu.Lock()
		b.out--
		closeNow := !b.closed && (b.read || b.done && b.out == 0)
		b.closed = b.closed || closeNow
		b.mu.Unlock()
		if closeNow {
			err = b.src.Close()
		}
	})
	return err
}
