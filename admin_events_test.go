package canary

import (
	"bufio"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/reqcanary/canary/tenant"
)

// openEvents starts GET url and returns the answer (its body still open)
// and the function that ends the request.
func openEvents(t *testing.T, url string) (*http.Response, context.CancelFunc) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	t.Cleanup(func() { cancel(); _ = res.Body.Close() })
	return res, cancel
}

// nextEvent reads the stream up to the next "status" event and returns its
// data decoded.
func nextEvent(t *testing.T, r *bufio.Reader) map[string]any {
	t.Helper()
	event := ""
	for {
		line, err := r.ReadString('\n')
		if err != nil {
			t.Fatalf("reading the stream: %v", err)
		}
		line = strings.TrimRight(line, "\n")
		switch {
		case strings.HasPrefix(line, "event: "):
			event = strings.TrimPrefix(line, "event: ")
		case strings.HasPrefix(line, "data: ") && event == "status":
			var m map[string]any
			if err := json.Unmarshal([]byte(strings.TrimPrefix(line, "data: ")), &m); err != nil {
				t.Fatalf("event data is not JSON: %v: %s", err, line)
			}
			return m
		}
	}
}

// TestAdminEventsStream: GET …/events is an SSE stream of the status without
// the secrets, one event a second that follows the engine's figures.
func TestAdminEventsStream(t *testing.T) {
	const salt = "s3cret-salt-events"
	e := newTestEngine(t, "salt: "+salt+"\ncanary_percent: 5\noverride:\n  trusted_cidrs: [10.77.0.0/16]\nguard:\n  enabled: true\n  unit_samples: 255\n")
	srv := httptest.NewServer(AdminHandler(e, WithAdminToken("tok")))
	t.Cleanup(srv.Close)
	res, _ := openEvents(t, srv.URL+"/admin/canary/events")
	if res.StatusCode != 200 || res.Header.Get("Content-Type") != "text/event-stream" || res.Header.Get("Cache-Control") != "no-store" {
		t.Fatalf("answer %d %v", res.StatusCode, res.Header)
	}
	r := bufio.NewReader(res.Body)
	first := nextEvent(t, r)
	if path(first, "guard.canary.requests") != 0.0 || path(first, "plan.canary_percent") != 5.0 {
		t.Fatalf("first event: %v", first)
	}
	if _, ok := first["redacted"]; !ok {
		t.Errorf("the event does not list the redacted fields: %v", first)
	}
	for i := range 10 {
		e.RecordOutcome(context.Background(), tenant.Canary, i < 5, time.Millisecond)
	}
	start := time.Now()
	next := nextEvent(t, r)
	if d := time.Since(start); d > 1500*time.Millisecond {
		t.Errorf("the next event came after %v, want about 1 s", d)
	}
	if path(next, "guard.canary.requests") != 10.0 || path(next, "guard.canary.failure_rate") != 0.5 {
		t.Errorf("next event's canary figures: %v", path(next, "guard.canary"))
	}
	b, _ := json.Marshal(next)
	if strings.Contains(string(b), salt) || strings.Contains(string(b), "10.77.0.0") {
		t.Error("an event shows the salt or the trusted CIDRs")
	}
	// Only GET.
	resp, err := http.Post(srv.URL+"/admin/canary/events", "application/json", strings.NewReader("{}"))
	if err != nil {
		t.Fatal(err)
	}
	_ = resp.Body.Close()
	if resp.StatusCode != http.StatusMethodNotAllowed {
		t.Errorf("POST …/events: %d, want 405", resp.StatusCode)
	}
}

// TestAdminEventsBounded: the handler serves at most WithAdminMaxStreams
// streams; a stream whose client goes frees its slot.
func TestAdminEventsBounded(t *testing.T) {
	e := newTestEngine(t, "canary_percent: 5\n")
	srv := httptest.NewServer(AdminHandler(e, WithAdminMaxStreams(2)))
	t.Cleanup(srv.Close)
	url := srv.URL + "/canary/events"
	a, cancelA := openEvents(t, url)
	b, _ := openEvents(t, url)
	nextEvent(t, bufio.NewReader(a.Body))
	nextEvent(t, bufio.NewReader(b.Body))
	c, _ := openEvents(t, url)
	var body adminErrorBody
	if err := json.NewDecoder(c.Body).Decode(&body); err != nil || c.StatusCode != http.StatusServiceUnavailable ||
		body.Code != AdminCodeTooManyStreams || c.Header.Get("Retry-After") == "" {
		t.Fatalf("third stream: %d %+v %v", c.StatusCode, body, err)
	}
	cancelA() // the client goes: its stream ends and frees the slot
	deadline := time.Now().Add(3 * time.Second)
	for {
		d, cancelD := openEvents(t, url)
		if d.StatusCode == 200 {
			nextEvent(t, bufio.NewReader(d.Body))
			break
		}
		cancelD()
		if time.Now().After(deadline) {
			t.Fatalf("no slot freed 3 s after a client went: %d", d.StatusCode)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestAdminEventsEndOnClose: Engine.Close ends every stream (no goroutine
// is left: TestMain checks), and a new one is refused.
func TestAdminEventsEndOnClose(t *testing.T) {
	e := newTestEngine(t, "canary_percent: 5\n")
	srv := httptest.NewServer(AdminHandler(e))
	t.Cleanup(srv.Close)
	res, _ := openEvents(t, srv.URL+"/canary/events")
	r := bufio.NewReader(res.Body)
	nextEvent(t, r)
	_ = e.Close()
	done := make(chan error, 1)
	go func() { _, err := io.Copy(io.Discard, r); done <- err }()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("the stream ended with %v, want its end", err)
		}
	case <-time.After(3 * time.Second):
		t.Fatal("the stream did not end within 3 s of Engine.Close")
	}
	again, _ := openEvents(t, srv.URL+"/canary/events")
	if again.StatusCode != http.StatusServiceUnavailable {
		t.Errorf("a stream after Close: %d, want 503", again.StatusCode)
	}
}

// TestAdminConsoleRoutes: the console is served under …/ui/ whatever the
// mount, only read, with its security headers; POSTs change nothing.
func TestAdminConsoleRoutes(t *testing.T) {
	e := newTestEngine(t, "salt: console-salt-x\ncanary_percent: 5\n")
	h := AdminHandler(e, WithAdminToken("tok"))
	mux := http.NewServeMux()
	mux.Handle("/admin/canary/", h)
	mux.Handle("/ops/", http.StripPrefix("/ops", h))
	for _, p := range []string{"/admin/canary/ui/", "/ops/ui/"} {
		rec := httptest.NewRecorder()
		mux.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, p, nil))
		body := rec.Body.String()
		if rec.Code != 200 || !strings.HasPrefix(rec.Header().Get("Content-Type"), "text/html") ||
			!strings.Contains(body, `<script src="app.js"`) || strings.Contains(body, "console-salt-x") {
			t.Errorf("GET %s: %d %q", p, rec.Code, truncate(body, 200))
		}
		if csp := rec.Header().Get("Content-Security-Policy"); !strings.Contains(csp, "frame-ancestors 'none'") ||
			!strings.Contains(csp, "script-src 'self'") || rec.Header().Get("X-Frame-Options") != "DENY" ||
			rec.Header().Get("Cache-Control") != "no-store" {
			t.Errorf("GET %s: headers %v", p, rec.Header())
		}
	}
	// A POST to the console (with the token and a kill-switch body) is 405
	// and turns nothing on.
	req := httptest.NewRequest(http.MethodPost, "/admin/canary/ui/", strings.NewReader(`{"action":"on"}`))
	req.Header.Set("Authorization", "Bearer tok")
	rec := httptest.NewRecorder()
	mux.ServeHTTP(rec, req)
	if rec.Code != http.StatusMethodNotAllowed || e.Status().KillSwitch.On {
		t.Errorf("POST …/ui/: %d, kill switch %v", rec.Code, e.Status().KillSwitch.On)
	}
	// The status is still the status: a mount under a path with "ui" in it.
	rec = httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/ui/admin/canary", nil))
	if rec.Code != 200 || !strings.Contains(rec.Body.String(), `"plan_version"`) {
		t.Errorf("GET /ui/admin/canary: %d %q", rec.Code, truncate(rec.Body.String(), 100))
	}
}

// BenchmarkAdminEvent is the work of one event of a stream (once a second
// per open console): the status, redacted, encoded; Status alone is the
// baseline.
func BenchmarkAdminEvent(b *testing.B) {
	e := newTestEngine(b, "salt: bench\ncanary_percent: 5\nguard:\n  enabled: true\n")
	for i := range 1000 {
		e.RecordOutcome(context.Background(), tenant.Canary, i%10 == 0, time.Duration(i)*time.Microsecond)
		e.RecordOutcome(context.Background(), tenant.Stable, false, time.Duration(i)*time.Microsecond)
	}
	h := AdminHandler(e).(*adminHandler)
	b.Run("status", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			_ = e.Status()
		}
	})
	b.Run("event", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := h.redactedStatusJSON(); err != nil {
				b.Fatal(err)
			}
		}
	})
}
