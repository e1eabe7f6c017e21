package console_test

import (
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/reqcanary/canary/console"
)

func TestOwns(t *testing.T) {
	for _, tc := range []struct {
		path string
		want bool
	}{
		{"/admin/canary/ui", true},
		{"/admin/canary/ui/", true},
		{"/admin/canary/ui/app.js", true},
		{"/admin/canary/ui/style.css", true},
		{"/ui/", true},
		{"/admin/canary/ui/secret.txt", false},
		{"/admin/canary/ui/../plan", false},
		{"/admin/canary", false},
		{"/admin/canary/plan", false},
		{"/ui/admin/canary", false},
		{"/admin/canary/build", false},
	} {
		if got := console.Owns(tc.path); got != tc.want {
			t.Errorf("Owns(%q) = %v, want %v", tc.path, got, tc.want)
		}
	}
}

func FuzzOwns(f *testing.F) {
	for _, s := range []string{"/ui", "/a/ui/", "/a/ui/app.js", "/ui/ui/x", "", "/"} {
		f.Add(s)
	}
	h := console.Handler(console.Config{Status: func() ([]byte, error) { return []byte(`{"plan_version":1}`), nil }})
	f.Fuzz(func(t *testing.T, p string) {
		if !console.Owns(p) || !strings.HasPrefix(p, "/") {
			return
		}
		rec := httptest.NewRecorder()
		req := httptest.NewRequest(http.MethodGet, "/", nil)
		req.URL.Path = p
		h.ServeHTTP(rec, req)
		if rec.Code != 200 && rec.Code != http.StatusFound {
			t.Fatalf("Owns(%q) but GET answers %d", p, rec.Code)
		}
	})
}

func TestHandler(t *testing.T) {
	status := func() ([]byte, error) {
		return []byte(`{"plan_version":3,"plan":{"canary_percent":12.5},"kill_switch":{"on":true,"reason":"guard","sources":["guard"]},
			"guard":{"enabled":true,"window":"10s","source":"plan","tripped":true,"trip":{"summary":"failure-rate: canary 20.0% <b>"}}}`), nil
	}
	h := console.Handler(console.Config{Status: status})
	get := func(method, p string) *httptest.ResponseRecorder {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest(method, p, nil))
		return rec
	}
	rec := get(http.MethodGet, "/x/ui/")
	body := rec.Body.String()
	for _, want := range []string{`id="plan-version">3<`, "12.5 %", `class="badge on">ON<`, "held by guard (reason guard)",
		"tripped", "failure-rate: canary 20.0% &lt;b&gt;", "over the guard's window (10s)"} {
		if !strings.Contains(body, want) {
			t.Errorf("page lacks %q", want)
		}
	}
	if rec.Header().Get("Content-Security-Policy") != console.ContentSecurityPolicy {
		t.Errorf("CSP %q", rec.Header().Get("Content-Security-Policy"))
	}
	if strings.Contains(body, "<script>") || strings.Contains(body, " style=") || strings.Contains(body, "onclick") {
		t.Error("the page has inline script or style, which the CSP forbids")
	}
	if rec := get(http.MethodGet, "/x/ui"); rec.Code != http.StatusFound || rec.Header().Get("Location") != "ui/" {
		t.Errorf("GET …/ui: %d %q, want a relative redirect to ui/", rec.Code, rec.Header().Get("Location"))
	}
	if rec := get(http.MethodGet, "/x/ui/app.js"); rec.Code != 200 || !strings.HasPrefix(rec.Header().Get("Content-Type"), "text/javascript") ||
		!strings.Contains(rec.Body.String(), "'Bearer '") {
		t.Errorf("GET app.js: %d %q", rec.Code, rec.Header().Get("Content-Type"))
	}
	if rec := get(http.MethodGet, "/x/ui/nope.js"); rec.Code != http.StatusNotFound {
		t.Errorf("GET nope.js: %d, want 404", rec.Code)
	}
	if rec := get(http.MethodHead, "/x/ui/"); rec.Code != 200 || rec.Body.Len() != 0 {
		t.Errorf("HEAD: %d with %d bytes", rec.Code, rec.Body.Len())
	}
	for _, m := range []string{http.MethodPost, http.MethodPut, http.MethodDelete} {
		if rec := get(m, "/x/ui/"); rec.Code != http.StatusMethodNotAllowed || rec.Header().Get("Allow") != "GET, HEAD" {
			t.Errorf("%s: %d, want 405", m, rec.Code)
		}
	}
	// A nil or failing status source: 500 naming it.
	rec = httptest.NewRecorder()
	console.Handler(console.Config{}).ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/ui/", nil))
	if rec.Code != 500 || !strings.Contains(rec.Body.String(), "console.Config.Status") {
		t.Errorf("nil Status: %d %q", rec.Code, rec.Body.String())
	}
	rec = httptest.NewRecorder()
	console.Handler(console.Config{Status: func() ([]byte, error) { return nil, errors.New("boom") }}).
		ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/ui/", nil))
	if rec.Code != 500 || !strings.Contains(rec.Body.String(), "boom") {
		t.Errorf("failing Status: %d %q", rec.Code, rec.Body.String())
	}
}
