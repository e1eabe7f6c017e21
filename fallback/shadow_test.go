package fallback

import (
	"context"
	"io"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/reqcanary/canary/tenant"
)

const stableDoc = `{"id":1,"meta":{"requestId":"s-1"},"items":[{"n":1,"ts":"a"}]}`

func canaryDocs(w http.ResponseWriter, r *http.Request) {
	switch r.URL.Path {
	case "/same":
		io.WriteString(w, `{"items":[{"ts":"b","n":1}],"meta":{"requestId":"c-9"},"id":1}`)
	case "/diff":
		io.WriteString(w, `{"id":1,"meta":{"requestId":"s-1"},"items":[{"n":2,"ts":"a"}]}`)
	case "/status":
		w.WriteHeader(500)
		io.WriteString(w, stableDoc)
	default:
		io.WriteString(w, stableDoc)
	}
}

func TestShadowComparison(t *testing.T) {
	reader, mp := newReader()
	canary := newServer(t, "canary", canaryDocs)
	stable := newServer(t, "stable", func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, stableDoc) })
	var mu sync.Mutex
	var mismatches []Mismatch
	tr := mustTransport(t, Config{Canary: canary.URL, Stable: stable.URL, MeterProvider: mp,
		Compare: &CompareConfig{SampleRate: 1, IgnoreJSONFields: []string{"meta.requestId", "items.*.ts"},
			OnMismatch: func(m Mismatch) { mu.Lock(); mismatches = append(mismatches, m); mu.Unlock() }}})
	stableCtx := labelled(tenant.Stable, "acme", "")
	for _, p := range []string{"/same", "/diff", "/status"} {
		if r := do(t, tr, stableCtx, "GET", "http://dep"+p, ""); r.servedBy != "stable" || r.body != stableDoc {
			t.Fatalf("GET %s: %+v", p, r)
		}
	}
	// Not compared: the canary cohort, and requests other than GET.
	do(t, tr, labelled(tenant.Canary, "acme", ""), "GET", "http://dep/canary-cohort", "")
	do(t, tr, stableCtx, "POST", "http://dep/post", "x")
	eventually(t, "3 comparisons", func() bool {
		n := int64(0)
		for _, v := range collect(t, reader)[MetricShadowComparisons] {
			n += v
		}
		return n == 3
	})
	tr.Close()

	for _, r := range canary.requests() {
		if r.Path == "/canary-cohort" {
			if r.Header.Get(HeaderShadow) != "" {
				t.Error("a canary-cohort request was marked as shadow")
			}
			continue
		}
		if r.Method != "GET" || r.Header.Get(HeaderShadow) != "1" {
			t.Errorf("shadow request %s %s has %s=%q", r.Method, r.Path, HeaderShadow, r.Header.Get(HeaderShadow))
		}
	}
	if n := len(canary.requests()); n != 4 {
		t.Errorf("canary received %d requests, want 3 shadows and 1 canary-cohort request", n)
	}
	got := collect(t, reader)[MetricShadowComparisons]
	if got["canary.shadow.result=match"] != 1 || got["canary.shadow.result=mismatch"] != 2 {
		t.Errorf("comparisons %v, want 1 match and 2 mismatches", got)
	}
	mu.Lock()
	defer mu.Unlock()
	byURL := map[string]Mismatch{}
	for _, m := range mismatches {
		byURL[m.URL] = m
	}
	if m := byURL["http://dep/diff"]; m.Field != "items.0.n" || m.Tenant != "acme" || m.Stable.Status != 200 || m.Canary.Status != 200 {
		t.Errorf("diff mismatch %+v, want field items.0.n", m)
	}
	if m := byURL["http://dep/status"]; m.Stable.Status != 200 || m.Canary.Status != 500 {
		t.Errorf("status mismatch %+v", m)
	}
	if len(mismatches) != 2 {
		t.Errorf("%d mismatches reported, want 2", len(mismatches))
	}
}

// TestShadowNeverDelaysTheAnswer: the caller gets and reads the stable answer
// while the shadow request is stuck; Close stops the stuck comparison.
func TestShadowNeverDelaysTheAnswer(t *testing.T) {
	reader, mp := newReader()
	arrived := make(chan struct{}, 1)
	canary := newServer(t, "canary", func(w http.ResponseWriter, r *http.Request) {
		arrived <- struct{}{}
		<-r.Context().Done()
	})
	tr := mustTransport(t, Config{Canary: canary.URL, Stable: newServer(t, "stable", nil).URL, MeterProvider: mp,
		Compare: &CompareConfig{SampleRate: 1, Timeout: time.Minute}})
	r := do(t, tr, context.Background(), "GET", "http://dep/a", "")
	if r.servedBy != "stable" || r.body != "hello from stable /a" {
		t.Fatalf("%+v", r)
	}
	<-arrived // the shadow request is in flight and will not end by itself
	done := make(chan struct{})
	go func() { tr.Close(); close(done) }()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("Close did not stop the stuck comparison")
	}
	if got := collect(t, reader)[MetricShadowComparisons]; got["canary.shadow.result=canceled"] != 1 {
		t.Errorf("comparisons %v, want 1 canceled", got)
	}
}

func TestShadowBoundedInFlight(t *testing.T) {
	reader, mp := newReader()
	release := make(chan struct{})
	canary := newServer(t, "canary", func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-release:
		case <-r.Context().Done():
		}
	})
	tr := mustTransport(t, Config{Canary: canary.URL, Stable: newServer(t, "stable", nil).URL, MeterProvider: mp,
		Compare: &CompareConfig{SampleRate: 1, MaxInFlight: 1}})
	for range 3 {
		do(t, tr, context.Background(), "GET", "http://dep/a", "")
	}
	eventually(t, "the shadow request", func() bool { return canary.hits.Load() == 1 })
	close(release)
	eventually(t, "the comparison", func() bool {
		return collect(t, reader)[MetricShadowComparisons]["canary.shadow.result=mismatch"] == 1
	})
	tr.Close()
	got := collect(t, reader)[MetricShadowComparisons]
	if got["canary.shadow.result=dropped"] != 2 || canary.hits.Load() != 1 {
		t.Fatalf("comparisons %v with %d shadow requests, want 2 dropped and 1 sent", got, canary.hits.Load())
	}
}

func TestShadowSkipsUnreadAnswers(t *testing.T) {
	reader, mp := newReader()
	canary := newServer(t, "canary", nil)
	tr := mustTransport(t, Config{Canary: canary.URL, Stable: newServer(t, "stable", nil).URL, MeterProvider: mp,
		Compare: &CompareConfig{SampleRate: 1}})
	req, _ := http.NewRequest("GET", "http://dep/a", nil)
	resp, err := tr.RoundTrip(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close() // not read
	eventually(t, "the comparison to be skipped", func() bool {
		return collect(t, reader)[MetricShadowComparisons]["canary.shadow.result=skipped"] == 1
	})
	if got := collect(t, reader)[MetricShadowComparisons]; len(got) != 1 {
		t.Fatalf("comparisons %v, want only 1 skipped", got)
	}
}

func TestBodiesEqual(t *testing.T) {
	ignore := [][]string{{"meta", "id"}, {"list", "*", "at"}}
	for _, tc := range []struct {
		a, b  string
		equal bool
		field string
	}{
		{`{"a":1}`, `{"a":1}`, true, ""},
		{`{"a":1,"b":[1,2]}`, `{"b":[1,2],"a":1}`, true, ""},
		{`{"a":1}`, `{"a":1.0}`, false, "a"},
		{`{"a":1}`, `{"a":1,"b":2}`, false, "b"},
		{`{"meta":{"id":"x"}}`, `{"meta":{"id":"y"}}`, true, ""},
		{`{"meta":{"id":"x"}}`, `{"meta":{}}`, true, ""},
		{`{"list":[{"at":1,"v":1}]}`, `{"list":[{"at":2,"v":1}]}`, true, ""},
		{`{"list":[{"at":1,"v":1}]}`, `{"list":[{"at":1,"v":2}]}`, false, "list.0.v"},
		{`{"list":[1]}`, `{"list":[1,2]}`, false, "list"},
		{`[1]`, `{"a":1}`, false, ""},
		{`not json`, `not json`, true, ""},
		{`not json`, `not jsoN`, false, ""},
		{`{"a":1} trailing`, `{"a":1} other`, false, ""},
	} {
		field, equal := bodiesEqual([]byte(tc.a), []byte(tc.b), ignore)
		if equal != tc.equal || field != tc.field {
			t.Errorf("bodiesEqual(%s, %s) = %q, %v; want %q, %v", tc.a, tc.b, field, equal, tc.field, tc.equal)
		}
	}
}
