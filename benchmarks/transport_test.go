package benchmarks

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/reqcanary/canary"
	"github.com/reqcanary/canary/middleware"
	"github.com/reqcanary/canary/tenant"
)

// The transport benchmarks send one GET that a handler makes on behalf of a
// labelled request (the labels in its context, the headers a careless
// handler copies from its own inbound request: Accept and X-User-ID).
// Baselines in the same run: the same request through the base transport
// alone.

// nopTransport answers every request at once without I/O: the figures of
// BenchmarkTransportDirect are the wrapper's own cost.
type nopTransport struct{ resp http.Response }

func (t *nopTransport) RoundTrip(*http.Request) (*http.Response, error) { return &t.resp, nil }

func transportRequest(b *testing.B, url string) *http.Request {
	b.Helper()
	ctx := tenant.NewContext(context.Background(), grpcLabels)
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		b.Fatal(err)
	}
	req.Header.Set("Accept", "application/json")
	req.Header.Set(tenant.HeaderUser, "user-12345")
	return req
}

func signingEngine(b *testing.B) *canary.Engine {
	b.Helper()
	eng, err := canary.New(canary.WithSigningKey([]byte("benchmark-decision-key-0123456789")),
		canary.WithUserHashKey([]byte("benchmark-key-0123456789abcdef")))
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = eng.Close() })
	return eng
}

func BenchmarkTransportDirect(b *testing.B) {
	base := &nopTransport{resp: http.Response{StatusCode: http.StatusNoContent, Body: http.NoBody}}
	req := transportRequest(b, "http://internal.example/orders")
	run := func(b *testing.B, rt http.RoundTripper) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := rt.RoundTrip(req); err != nil {
				b.Fatal(err)
			}
		}
	}
	b.Run("baseline=nop", func(b *testing.B) { run(b, base) })
	b.Run("canary=transport", func(b *testing.B) { run(b, middleware.Transport(base)) })
	b.Run("canary=transport+signed", func(b *testing.B) { run(b, signingEngine(b).Transport(base)) })
}

func BenchmarkTransportLoopback(b *testing.B) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.WriteHeader(http.StatusNoContent)
	}))
	b.Cleanup(srv.Close)
	run := func(b *testing.B, rt http.RoundTripper) {
		client := &http.Client{Transport: rt}
		req := transportRequest(b, srv.URL)
		do := func() {
			resp, err := client.Do(req)
			if err != nil {
				b.Fatal(err)
			}
			_, _ = io.Copy(io.Discard, resp.Body)
			_ = resp.Body.Close()
		}
		do() // warm the connection
		b.ReportAllocs()
		b.ResetTimer()
		for b.Loop() {
			do()
		}
		client.CloseIdleConnections()
	}
	b.Run("baseline=http.Transport", func(b *testing.B) { run(b, &http.Transport{}) })
	b.Run("canary=transport", func(b *testing.B) { run(b, middleware.Transport(&http.Transport{})) })
	b.Run("canary=transport+signed", func(b *testing.B) { run(b, signingEngine(b).Transport(&http.Transport{})) })
}
