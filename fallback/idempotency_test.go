package fallback

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/failsafe-go/failsafe-go/timeout"

	"github.com/reqcanary/canary/tenant"
)

// TestIdempotencyRules: a request that is not idempotent goes to the next
// endpoint only when it was certainly not sent.
func TestIdempotencyRules(t *testing.T) {
	type want struct {
		servedBy, reason string // "" servedBy: an error
		status           int
		replayed         bool // the next endpoint received the request, with its body
		notReplayed      bool // the error is ErrNotReplayed
	}
	for _, tc := range []struct {
		name   string
		method string
		hdr    []string
		canary http.HandlerFunc // nil: refused
		stable http.HandlerFunc
		want   want
	}{
		{"POST timeout after send", "POST", nil, hang(5 * time.Second), ok200,
			want{notReplayed: true}},
		{"POST 503 after send", "POST", nil, httpStatus(503), ok200,
			want{servedBy: "canary", status: 503}},
		{"PATCH 500 after send", "PATCH", nil, httpStatus(500), ok200,
			want{servedBy: "canary", status: 500}},
		{"POST refused connection", "POST", nil, nil, ok200,
			want{servedBy: "stable", reason: "canary:connect", status: 200, replayed: true}},
		{"POST with Idempotency-Key timeout", "POST", []string{"Idempotency-Key", "k-1"}, hang(5 * time.Second), ok200,
			want{servedBy: "stable", reason: "canary:timeout", status: 200, replayed: true}},
		{"POST with Idempotency-Key 503", "POST", []string{"Idempotency-Key", "k-2"}, httpStatus(503), ok200,
			want{servedBy: "stable", reason: "canary:status-503", status: 200, replayed: true}},
		{"PUT timeout", "PUT", nil, hang(5 * time.Second), ok200,
			want{servedBy: "stable", reason: "canary:timeout", status: 200, replayed: true}},
		{"DELETE 503", "DELETE", nil, httpStatus(503), ok200,
			want{servedBy: "stable", reason: "canary:status-503", status: 200, replayed: true}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			canaryURL := refusedURL(t)
			if tc.canary != nil {
				canaryURL = newServer(t, "canary", tc.canary).URL
			}
			stable := newServer(t, "stable", tc.stable)
			shadow := newServer(t, "shadow", nil)
			tr := mustTransport(t, Config{Canary: canaryURL, Stable: stable.URL, Shadow: shadow.URL, Timeout: 150 * time.Millisecond})
			r := do(t, tr, labelled(tenant.Canary, "acme", ""), tc.method, "http://dep/orders", `{"qty":3}`, tc.hdr...)
			if tc.want.servedBy == "" {
				if !errors.Is(r.err, ErrNotReplayed) != !tc.want.notReplayed || r.err == nil {
					t.Fatalf("error %v, want ErrNotReplayed=%v", r.err, tc.want.notReplayed)
				}
				if !errors.Is(r.err, timeout.ErrExceeded) {
					t.Fatalf("error %v does not wrap the canary's timeout", r.err)
				}
			} else if r.err != nil || r.servedBy != tc.want.servedBy || r.reason != tc.want.reason || r.status != tc.want.status {
				t.Fatalf("got %+v (%v), want %+v", r, r.err, tc.want)
			}
			got := stable.requests()
			if tc.want.replayed {
				if len(got) != 1 || got[0].Body != `{"qty":3}` || got[0].Method != tc.method {
					t.Fatalf("stable received %+v, want one %s with the body", got, tc.method)
				}
			} else if len(got) != 0 {
				t.Fatalf("a %s that may have been sent was replayed to stable", tc.method)
			}
			if n := shadow.hits.Load(); n != 0 {
				t.Fatalf("shadow received %d requests", n)
			}
		})
	}
}

// TestNotReplayedAfterStableWasSent: a POST that reached stable after the
// canary refused the connection is not sent to shadow when stable fails.
func TestNotReplayedAfterStableWasSent(t *testing.T) {
	stable := newServer(t, "stable", httpStatus(503))
	shadow := newServer(t, "shadow", nil)
	tr := mustTransport(t, Config{Canary: refusedURL(t), Stable: stable.URL, Shadow: shadow.URL})
	r := do(t, tr, labelled(tenant.Canary, "acme", ""), "POST", "http://dep/orders", "x")
	if r.err != nil || r.servedBy != "stable" || r.status != 503 || r.reason != "canary:connect, stable:status-503" {
		t.Fatalf("got %+v (%v), want stable's 503 after canary:connect, both reasons listed", r, r.err)
	}
	if shadow.hits.Load() != 0 {
		t.Fatal("the POST was replayed to shadow")
	}
}

// hangingDial returns a base transport whose dials to addr block until the
// context is done: a blackholed canary.
func hangingDial(t *testing.T, addr string) *http.Transport {
	b := newBase(t)
	var d net.Dialer
	b.DialContext = func(ctx context.Context, network, a string) (net.Conn, error) {
		if a == addr {
			<-ctx.Done()
			return nil, ctx.Err()
		}
		return d.DialContext(ctx, network, a)
	}
	return b
}

// TestTimeoutBeforeConnectionIsNotSent: a POST whose attempt timed out while
// the connection was still being made was not sent, so it may switch.
func TestTimeoutBeforeConnectionIsNotSent(t *testing.T) {
	canary := newServer(t, "canary", nil)
	stable := newServer(t, "stable", nil)
	tr := mustTransport(t, Config{Transport: hangingDial(t, canary.Listener.Addr().String()),
		Canary: canary.URL, Stable: stable.URL, Timeout: 100 * time.Millisecond})
	r := do(t, tr, labelled(tenant.Canary, "acme", ""), "POST", "http://dep/orders", "x")
	if r.err != nil || r.servedBy != "stable" || r.reason != "canary:timeout" {
		t.Fatalf("got %+v (%v), want stable after canary:timeout", r, r.err)
	}
	if canary.hits.Load() != 0 || len(stable.requests()) != 1 || stable.requests()[0].Body != "x" {
		t.Fatal("the POST did not reach stable exactly once with its body")
	}
}

// opaqueTransport hides the *http.Transport, so the transport cannot know
// whether a connection was made.
type opaqueTransport struct{ http.RoundTripper }

func TestTimeoutWithUnknownTransportIsAssumedSent(t *testing.T) {
	canary := newServer(t, "canary", nil)
	stable := newServer(t, "stable", nil)
	tr := mustTransport(t, Config{Transport: opaqueTransport{hangingDial(t, canary.Listener.Addr().String())},
		Canary: canary.URL, Stable: stable.URL, Timeout: 100 * time.Millisecond})
	r := do(t, tr, labelled(tenant.Canary, "acme", ""), "POST", "http://dep/orders", "x")
	if !errors.Is(r.err, ErrNotReplayed) || stable.hits.Load() != 0 {
		t.Fatalf("got %+v (%v), want ErrNotReplayed and nothing sent to stable", r, r.err)
	}
}

// TestBodyWithoutGetBodyIsReplayed: a body the standard library cannot
// replay (no GetBody) is still sent whole to the next endpoint.
func TestBodyWithoutGetBodyIsReplayed(t *testing.T) {
	stable := newServer(t, "stable", nil)
	tr := mustTransport(t, Config{Canary: refusedURL(t), Stable: stable.URL})
	body := io.MultiReader(strings.NewReader("part one, "), strings.NewReader("part two"))
	req, _ := http.NewRequestWithContext(labelled(tenant.Canary, "acme", ""), "POST", "http://dep/orders", body)
	if req.GetBody != nil {
		t.Fatal("test setup: the request has GetBody")
	}
	resp, err := tr.RoundTrip(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if got := stable.requests(); len(got) != 1 || got[0].Body != "part one, part two" {
		t.Fatalf("stable received %+v", got)
	}
}

func TestIdempotentMethods(t *testing.T) {
	for _, tc := range []struct {
		method string
		hdr    []string
		want   bool
	}{
		{"GET", nil, true}, {"HEAD", nil, true}, {"OPTIONS", nil, true}, {"TRACE", nil, true},
		{"PUT", nil, true}, {"DELETE", nil, true},
		{"POST", nil, false}, {"PATCH", nil, false}, {"CONNECT", nil, false},
		{"POST", []string{"Idempotency-Key", "a"}, true}, {"PATCH", []string{"X-Idempotency-Key", "a"}, true},
	} {
		req, _ := http.NewRequest(tc.method, "http://x/", nil)
		for i := 0; i+1 < len(tc.hdr); i += 2 {
			req.Header.Set(tc.hdr[i], tc.hdr[i+1])
		}
		if got := idempotent(req); got != tc.want {
			t.Errorf("idempotent(%s %v) = %v, want %v", tc.method, tc.hdr, got, tc.want)
		}
	}
}
