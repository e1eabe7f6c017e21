package fallback

import (
	"io"
	"sync"
)

// captureBody passes an answer's body to the caller and keeps a copy of up
// to limit bytes. When the caller has read it to the end (io.EOF, or as many
// bytes as the Content-Length announced when it closes), done is called
// once with the copy and complete=true; when the caller closes it earlier,
// done is called with complete=false. The copy is nil when the body was
// larger than limit.
//
// done runs on the caller's goroutine (inside Read or Close).
type captureBody struct {
	rc     io.ReadCloser
	limit  int64
	length int64 // Content-Length, -1 when unknown

	mu       sync.Mutex
	buf      []byte
	n        int64 // bytes read
	over     bool
	finished bool
	done     func(body []byte, complete bool)
}

func newCaptureBody(rc io.ReadCloser, limit, length int64, done func([]byte, bool)) *captureBody {
	b := &captureBody{rc: rc, limit: limit, length: length, done: done}
	if length > 0 && length <= limit {
		b.buf = make([]byte, 0, length)
	}
	return b
}

// Read reads from the answer's body, keeping a copy.
func (b *captureBody) Read(p []byte) (int, error) {
	n, err := b.rc.Read(p)
	b.mu.Lock()
	if n > 0 && !b.finished {
		b.n += int64(n)
		if !b.over {
			if int64(len(b.buf))+int64(n) > b.limit {
				b.over, b.buf = true, nil
			} else {
				b.buf = append(b.buf, p[:n]...)
			}
		}
	}
	if err == io.EOF {
		b.finishLocked(true)
	}
	b.mu.Unlock()
	return n, err
}

// Close closes the answer's body.
func (b *captureBody) Close() error {
	b.mu.Lock()
	b.finishLocked(b.length >= 0 && b.n == b.length)
	b.mu.Unlock()
	return b.rc.Close()
}

func (b *captureBody) finishLocked(complete bool) {
	if b.finished {
		return
	}
	b.finished = true
	var body []byte
	if !b.over {
		body = b.buf
		if body == nil {
			body = []byte{}
		}
	}
	b.done(body, complete)
}
