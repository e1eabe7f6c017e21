package fallback

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"math/rand/v2"
	"net/http"
	"sort"
	"strconv"
	"strings"
	"sync"

	"go.opentelemetry.io/otel/trace"

	"github.com/reqcanary/canary/tenant"
)

// Answer is one side of a shadow comparison.
type Answer struct {
	// Status is the HTTP status code.
	Status int
	// Header holds the answer's headers.
	Header http.Header
	// Body is the whole body (at most CompareConfig.MaxBodyBytes).
	Body []byte
}

// Mismatch describes a shadow comparison whose answers differ. It is passed
// to CompareConfig.OnMismatch.
type Mismatch struct {
	// Method and URL are those of the caller's request (URL as the caller
	// gave it, before the endpoint rewrite).
	Method, URL string
	// Tenant is the request's tenant ("" when none).
	Tenant string
	// Stable and Canary are the two answers.
	Stable, Canary Answer
	// Field is the first differing JSON field, as a dot-separated path
	// ("" for the root), when both bodies are JSON and the statuses are
	// equal; "" otherwise.
	Field string
}

// captured is the caller's copy of the stable body, handed to a comparison.
type captured struct {
	body     []byte // nil when larger than the capture limit
	complete bool
}

// comparer runs shadow comparisons in the background, at most MaxInFlight
// at once, until close.
type comparer struct {
	t      *transport
	cfg    *CompareConfig
	ignore [][]string
	sem    chan struct{}
	ctx    context.Context // canceled by close
	cancel context.CancelFunc
	mu     sync.Mutex // guards closed and wg.Add against close
	closed bool
	wg     sync.WaitGroup
}

func newComparer(t *transport, cfg *CompareConfig) *comparer {
	c := &comparer{t: t, cfg: cfg, sem: make(chan struct{}, cfg.MaxInFlight)}
	for _, p := range cfg.IgnoreJSONFields {
		c.ignore = append(c.ignore, strings.Split(p, "."))
	}
	c.ctx, c.cancel = context.WithCancel(context.Background())
	return c
}

// start decides whether st's request, answered by resp from Stable, is
// compared. When it is, start launches the comparison and returns the
// channel on which the caller's copy of the stable body must be sent (it
// has room for that one value); otherwise nil.
func (c *comparer) start(st *reqState, resp *http.Response) chan captured {
	if st.req.Method != http.MethodGet || rand.Float64() >= c.cfg.SampleRate {
		return nil
	}
	select {
	case c.sem <- struct{}{}:
	default:
		c.t.m.comparison(st, "dropped")
		return nil
	}
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		<-c.sem
		return nil
	}
	c.wg.Add(1)
	c.mu.Unlock()

	// Everything the background work needs is copied now: the caller may
	// reuse its request once it has closed the answer's body.
	// The shadow request keeps the caller's labels and trace, not its
	// cancellation (nor any other value of its context).
	base := tenant.NewContext(c.ctx, st.labels)
	if sc := trace.SpanContextFromContext(st.Context); sc.IsValid() {
		base = trace.ContextWithSpanContext(base, sc)
	}
	ctx, cancel := context.WithTimeout(base, c.cfg.Timeout)
	shadow := st.req.Clone(ctx)
	shadow.Body, shadow.GetBody, shadow.ContentLength = nil, nil, 0
	h := c.t.hops[roleCanary]
	u := *shadow.URL
	shadow.URL = &u
	shadow.URL.Scheme, shadow.URL.Host, shadow.Host = h.base.Scheme, h.base.Host, ""
	if h.prefix != "" {
		shadow.URL.Path = h.prefix + "/" + strings.TrimPrefix(u.Path, "/")
		shadow.URL.RawPath = ""
	}
	shadow.Header.Set(HeaderShadow, "1")
	m := Mismatch{
		Method: st.req.Method, URL: st.req.URL.String(), Tenant: st.labels.Tenant,
		Stable: Answer{Status: resp.StatusCode, Header: resp.Header.Clone()},
	}
	ch := make(chan captured, 1)
	go func() {
		defer c.wg.Done()
		defer func() { <-c.sem }()
		defer cancel()
		res := c.run(ctx, shadow, &m, ch)
		if c.ctx.Err() != nil && (res == "error" || res == "skipped") {
			res = "canceled" // stopped by Close
		}
		c.t.m.comparison(ctx, res)
	}()
	return ch
}

// run sends the shadow request, waits for the caller's copy of the stable
// body and compares; it returns the comparison's result.
func (c *comparer) run(ctx context.Context, shadow *http.Request, m *Mismatch, ch chan captured) string {
	resp, err := c.t.base.RoundTrip(shadow)
	if err != nil {
		return "error"
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, c.cfg.MaxBodyBytes+1))
	resp.Body.Close()
	if err != nil {
		return "error"
	}
	if int64(len(body)) > c.cfg.MaxBodyBytes {
		return "skipped"
	}
	m.Canary = Answer{Status: resp.StatusCode, Header: resp.Header, Body: body}
	var got captured
	select {
	case got = <-ch:
	case <-ctx.Done():
		return "skipped" // the caller did not finish reading in time, or Close
	}
	if !got.complete || got.body == nil || int64(len(got.body)) > c.cfg.MaxBodyBytes {
		return "skipped"
	}
	m.Stable.Body = got.body
	var equal bool
	if c.cfg.Equal != nil {
		equal = c.cfg.Equal(m.Stable, m.Canary)
	} else {
		equal = m.Stable.Status == m.Canary.Status
		if equal {
			m.Field, equal = bodiesEqual(m.Stable.Body, m.Canary.Body, c.ignore)
		}
	}
	if equal {
		return "match"
	}
	if c.cfg.OnMismatch != nil {
		c.cfg.OnMismatch(*m)
	}
	return "mismatch"
}

// close stops the comparisons in flight and waits for them.
func (c *comparer) close() {
	c.mu.Lock()
	c.closed = true
	c.mu.Unlock()
	c.cancel()
	c.wg.Wait()
}

// bodiesEqual compares two bodies: as JSON documents without the ignored
// fields when both parse as JSON, byte for byte otherwise. It returns the
// first differing JSON path when they differ.
func bodiesEqual(a, b []byte, ignore [][]string) (string, bool) {
	va, errA := decodeJSON(a)
	vb, errB := decodeJSON(b)
	if errA != nil || errB != nil {
		return "", bytes.Equal(a, b)
	}
	path, differ := diffJSON(va, vb, nil, ignore)
	return strings.Join(path, "."), !differ
}

func decodeJSON(b []byte) (any, error) {
	d := json.NewDecoder(bytes.NewReader(b))
	d.UseNumber()
	var v any
	if err := d.Decode(&v); err != nil {
		return nil, err
	}
	if _, err := d.Token(); err != io.EOF {
		return nil, io.ErrUnexpectedEOF // trailing data: not one JSON document
	}
	return v, nil
}

// diffJSON returns the path of the first difference between a and b outside
// the ignored paths, and whether there is one.
func diffJSON(a, b any, path []string, ignore [][]string) ([]string, bool) {
	if ignored(path, ignore) {
		return nil, false
	}
	switch x := a.(type) {
	case map[string]any:
		y, ok := b.(map[string]any)
		if !ok {
			return path, true
		}
		keys := make([]string, 0, len(x)+len(y))
		for k := range x {
			keys = append(keys, k)
		}
		for k := range y {
			if _, dup := x[k]; !dup {
				keys = append(keys, k)
			}
		}
		sort.Strings(keys)
		for _, k := range keys {
			p := append(path[:len(path):len(path)], k)
			va, inA := x[k]
			vb, inB := y[k]
			if inA != inB {
				if ignored(p, ignore) {
					continue
				}
				return p, true
			}
			if d, differ := diffJSON(va, vb, p, ignore); differ {
				return d, true
			}
		}
		return nil, false
	case []any:
		y, ok := b.([]any)
		if !ok || len(x) != len(y) {
			return path, true
		}
		for i := range x {
			p := append(path[:len(path):len(path)], strconv.Itoa(i))
			if d, differ := diffJSON(x[i], y[i], p, ignore); differ {
				return d, true
			}
		}
		return nil, false
	default:
		if a != b {
			return path, true
		}
		return nil, false
	}
}

// ignored reports whether path matches one of the ignore patterns ("*"
// matches any one segment).
func ignored(path []string, ignore [][]string) bool {
	for _, pat := range ignore {
		if len(pat) != len(path) {
			continue
		}
		match := true
		for i := range pat {
			if pat[i] != "*" && pat[i] != path[i] {
				match = false
				break
			}
		}
		if match {
			return true
		}
	}
	return false
}
