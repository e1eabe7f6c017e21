package canary

import (
	"bytes"
	"encoding/json"
	"net/http"
	"strconv"
	"time"
)

// DefaultAdminMaxStreams is how many event streams (GET …/events) an
// [AdminHandler] serves at once unless [WithAdminMaxStreams] says otherwise.
const DefaultAdminMaxStreams = 8

// AdminCodeTooManyStreams is the code of a 503 answer to GET …/events when
// the handler already serves its maximum of streams.
const AdminCodeTooManyStreams = "too_many_streams"

// adminEventInterval is the pause between two events of a stream.
const adminEventInterval = time.Second

// adminEventWriteTimeout bounds the write of one event to a slow client.
const adminEventWriteTimeout = 5 * time.Second

// WithAdminMaxStreams bounds the event streams (GET …/events) the admin
// handler serves at once; one more is answered 503 (code
// AdminCodeTooManyStreams). Default DefaultAdminMaxStreams; n <= 0 keeps the
// default.
func WithAdminMaxStreams(n int) AdminOption {
	return adminOptionFunc(func(c *adminConfig) {
		if n > 0 {
			c.maxStreams = n
		}
	})
}

// serveEvents answers GET …/events with a Server-Sent Events stream: an
// event "status" at once and then every second, its data the engine's
// status as the status GET answers it without a token (redacted: an
// EventSource cannot send the token). The stream ends when the client goes,
// when the engine is closed, or when a write to the client stalls.
func (h *adminHandler) serveEvents(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet {
		w.Header().Set("Allow", http.MethodGet)
		writeJSON(w, http.StatusMethodNotAllowed, adminErrorBody{Code: AdminCodeBadRequest,
			Error: "method " + r.Method + " not allowed on " + r.URL.Path + "; use GET"})
		return
	}
	select {
	case <-h.e.done:
		writeJSON(w, http.StatusServiceUnavailable, adminErrorBody{Code: AdminCodeUnavailable, Error: "the engine is closed"})
		return
	default:
	}
	select {
	case h.streams <- struct{}{}:
		defer func() { <-h.streams }()
	default:
		w.Header().Set("Retry-After", "5")
		writeJSON(w, http.StatusServiceUnavailable, adminErrorBody{Code: AdminCodeTooManyStreams,
			Error: "this admin handler already serves " + strconv.Itoa(cap(h.streams)) + " event streams (canary.WithAdminMaxStreams)"})
		return
	}
	rc := http.NewResponseController(w)
	if !canFlush(w) {
		// A middleware's writer that neither flushes nor unwraps: the
		// events would sit in its buffer and the console would reconnect
		// every two seconds. Say so instead.
		writeJSON(w, http.StatusInternalServerError, adminErrorBody{Code: "no_flush",
			Error: "the ResponseWriter cannot flush (a middleware in front of the admin handler wraps it without Flush or Unwrap): no event stream"})
		return
	}
	w.Header().Set("Content-Type", "text/event-stream")
	w.Header().Set("X-Accel-Buffering", "no")
	w.WriteHeader(http.StatusOK)
	send := func(first bool) bool {
		var buf bytes.Buffer
		if first {
			buf.WriteString("retry: 2000\n\n")
		}
		b, err := h.redactedStatusJSON()
		if err != nil {
			h.e.log.Warn("canary: admin events: encoding the status", "error", err)
			return false
		}
		buf.WriteString("event: status\ndata: ")
		buf.Write(b)
		buf.WriteString("\n\n")
		_ = rc.SetWriteDeadline(time.Now().Add(adminEventWriteTimeout))
		if _, err := w.Write(buf.Bytes()); err != nil {
			return false
		}
		return rc.Flush() == nil
	}
	if !send(true) {
		return
	}
	tick := time.NewTicker(adminEventInterval)
	defer tick.Stop()
	for {
		select {
		case <-r.Context().Done():
			return
		case <-h.e.done:
			return
		case <-tick.C:
			if !send(false) {
				return
			}
		}
	}
}

// redactedStatusJSON is the engine's status as the status GET answers it
// without a token, on one line.
func (h *adminHandler) redactedStatusJSON() ([]byte, error) {
	m, err := redactedStatus(h.e.Status())
	if err != nil {
		return nil, err
	}
	return json.Marshal(m)
}

// canFlush reports whether w, or a writer it wraps (Unwrap, as
// http.ResponseController follows), can flush.
func canFlush(w http.ResponseWriter) bool {
	for {
		if _, ok := w.(http.Flusher); ok {
			return true
		}
		u, ok := w.(interface{ Unwrap() http.ResponseWriter })
		if !ok {
			return false
		}
		w = u.Unwrap()
	}
}
