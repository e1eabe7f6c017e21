package fallback

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/reqcanary/canary/tenant"
)

// switchable is a stable endpoint that answers with serve until broken, then
// with 503.
type switchable struct {
	broken atomic.Bool
	serve  http.HandlerFunc
}

func (s *switchable) handler(w http.ResponseWriter, r *http.Request) {
	if s.broken.Load() {
		httpStatus(503)(w, r)
		return
	}
	s.serve(w, r)
}

// cacheSetup returns a transport over a breakable stable endpoint with the
// cache, and the switch.
func cacheSetup(t *testing.T, c Cache, serve http.HandlerFunc, tweak func(*Config)) (Transport, *switchable) {
	t.Helper()
	sw := &switchable{serve: serve}
	if sw.serve == nil {
		sw.serve = func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "application/json")
			w.Header().Set("X-Answer", "kept")
			w.WriteHeader(http.StatusOK)
			fmt.Fprintf(w, `{"path":%q,"tenant":%q}`, r.URL.RequestURI(), r.Header.Get("X-For"))
		}
	}
	cfg := Config{Name: "dep-" + t.Name(), Stable: newServer(t, "stable", sw.handler).URL, Cache: c,
		Breaker: BreakerConfig{Failures: 1000}}
	if tweak != nil {
		tweak(&cfg)
	}
	return mustTransport(t, cfg), sw
}

func memCache(t *testing.T) Cache {
	c, err := NewMemoryCache(1<<20, time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func TestCacheServesLastGoodAnswer(t *testing.T) {
	tr, sw := cacheSetup(t, memCache(t), nil, nil)
	ctx := labelled(tenant.Stable, "acme", "")
	fresh := do(t, tr, ctx, "GET", "http://dep/items?page=2", "", "X-For", "acme")
	if fresh.servedBy != "stable" {
		t.Fatalf("%+v", fresh)
	}
	sw.broken.Store(true)
	r := do(t, tr, ctx, "GET", "http://dep/items?page=2", "")
	if r.err != nil || r.servedBy != "cache" || r.reason != "stable:status-503" {
		t.Fatalf("got %+v (%v), want cache after stable:status-503", r, r.err)
	}
	if r.status != 200 || r.body != fresh.body || r.header.Get("X-Answer") != "kept" ||
		r.header.Get("Content-Type") != "application/json" || r.header.Get("Age") == "" {
		t.Fatalf("cached answer %+v does not keep status, headers and body of %+v", r, fresh)
	}
	// Another query string is another answer.
	if r := do(t, tr, ctx, "GET", "http://dep/items?page=3", ""); r.servedBy != "stable" || r.status != 503 {
		t.Fatalf("page=3 got %+v, want stable's 503", r)
	}
}

// TestCacheIsolatesTenants: no tenant reads another tenant's answer, even
// for the same URL; an unlabelled request reads neither.
func TestCacheIsolatesTenants(t *testing.T) {
	// The Redis cache runs the same test in package rediscache.
	for name, c := range map[string]Cache{"memory": memCache(t)} {
		t.Run(name, func(t *testing.T) {
			tr, sw := cacheSetup(t, c, nil, nil)
			acme := labelled(tenant.Stable, "acme", "")
			do(t, tr, acme, "GET", "http://dep/account", "", "X-For", "acme")
			sw.broken.Store(true)
			if r := do(t, tr, labelled(tenant.Stable, "globex", ""), "GET", "http://dep/account", ""); r.servedBy == "cache" {
				t.Fatalf("tenant globex read acme's answer: %q", r.body)
			}
			if r := do(t, tr, context.Background(), "GET", "http://dep/account", ""); r.servedBy == "cache" {
				t.Fatalf("a request without tenant read acme's answer: %q", r.body)
			}
			r := do(t, tr, acme, "GET", "http://dep/account", "")
			if r.servedBy != "cache" || !strings.Contains(r.body, `"tenant":"acme"`) {
				t.Fatalf("acme got %+v, want its own cached answer", r)
			}
		})
	}
}

// TestCachePrivateAnswers: private answers (Cache-Control private, or to an
// Authorization request without public) are keyed by the user hash and the
// request's credentials.
func TestCachePrivateAnswers(t *testing.T) {
	serve := func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/me" {
			w.Header().Set("Cache-Control", "private, max-age=60")
		}
		if r.URL.Path == "/public" {
			w.Header().Set("Cache-Control", "public")
		}
		io.WriteString(w, "for "+r.Header.Get("X-For"))
	}
	tr, sw := cacheSetup(t, memCache(t), serve, nil)
	alice := labelled(tenant.Stable, "acme", "hash-alice")
	bob := labelled(tenant.Stable, "acme", "hash-bob")
	anon := labelled(tenant.Stable, "acme", "")
	do(t, tr, alice, "GET", "http://dep/me", "", "X-For", "alice")
	do(t, tr, alice, "GET", "http://dep/token", "", "X-For", "alice", "Authorization", "Bearer a")
	do(t, tr, alice, "GET", "http://dep/public", "", "X-For", "alice", "Authorization", "Bearer a")
	do(t, tr, anon, "GET", "http://dep/anon-private", "", "X-For", "anon")
	sw.broken.Store(true)
	for _, tc := range []struct {
		ctx      context.Context
		who, url string
		want     string // "" for no cached answer
		hdr      []string
	}{
		{alice, "alice", "/me", "for alice", nil},
		{bob, "bob", "/me", "", nil},
		{anon, "anonymous", "/me", "", nil},
		{alice, "alice", "/token", "for alice", []string{"Authorization", "Bearer a"}},
		{alice, "alice with another token", "/token", "", []string{"Authorization", "Bearer b"}},
		{bob, "bob", "/token", "", []string{"Authorization", "Bearer a"}},
		{bob, "bob", "/public", "for alice", nil}, // explicitly public: shared within the tenant
	} {
		r := do(t, tr, tc.ctx, "GET", "http://dep"+tc.url, "", tc.hdr...)
		got := ""
		if r.servedBy == "cache" {
			got = r.body
		}
		if got != tc.want {
			t.Errorf("%s GET %s: cached answer %q, want %q", tc.who, tc.url, got, tc.want)
		}
	}
}

func TestCacheStoresOnlyWhatItMay(t *testing.T) {
	serve := func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/no-store":
			w.Header().Set("Cache-Control", "no-store")
		case "/cookie":
			w.Header().Set("Set-Cookie", "session=secret")
		case "/vary-star":
			w.Header().Set("Vary", "*")
		case "/vary-other":
			w.Header().Set("Vary", "Accept-Language")
		case "/not-found":
			w.WriteHeader(404)
		case "/partial":
			w.WriteHeader(206)
		case "/big":
			io.WriteString(w, strings.Repeat("x", 2048))
			return
		}
		io.WriteString(w, "answer "+r.URL.Path)
	}
	tr, sw := cacheSetup(t, memCache(t), serve, func(c *Config) { c.MaxCacheBodyBytes = 1024 })
	ctx := labelled(tenant.Stable, "acme", "")
	type step struct {
		method, path, body string
		hdr                []string
	}
	for _, s := range []step{
		{"GET", "/no-store", "", nil}, {"GET", "/cookie", "", nil}, {"GET", "/vary-star", "", nil},
		{"GET", "/vary-other", "", nil}, {"GET", "/not-found", "", nil}, {"GET", "/partial", "", nil},
		{"GET", "/big", "", nil}, {"POST", "/post", "x", nil}, {"GET", "/req-no-store", "", []string{"Cache-Control", "no-store"}},
		{"GET", "/range", "", []string{"Range", "bytes=0-1"}},
	} {
		r := do(t, tr, ctx, s.method, "http://dep"+s.path, s.body, s.hdr...)
		if s.path == "/big" && len(r.body) != 2048 {
			t.Fatalf("an answer larger than MaxCacheBodyBytes was not served whole: %d bytes", len(r.body))
		}
	}
	sw.broken.Store(true)
	for _, p := range []string{"/no-store", "/cookie", "/vary-star", "/vary-other", "/not-found", "/partial", "/big", "/req-no-store", "/range"} {
		if r := do(t, tr, ctx, "GET", "http://dep"+p, ""); r.servedBy == "cache" {
			t.Errorf("GET %s was stored and served from the cache", p)
		}
	}
	if r := do(t, tr, ctx, "POST", "http://dep/post", "x"); r.servedBy == "cache" {
		t.Error("a POST answer was served from the cache")
	}
}

func TestCacheVaryHeadersAreInTheKey(t *testing.T) {
	serve := func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Vary", "Accept")
		io.WriteString(w, "as "+r.Header.Get("Accept"))
	}
	tr, sw := cacheSetup(t, memCache(t), serve, func(c *Config) { c.CacheVary = []string{"accept"} })
	ctx := labelled(tenant.Stable, "acme", "")
	do(t, tr, ctx, "GET", "http://dep/doc", "", "Accept", "text/html")
	sw.broken.Store(true)
	if r := do(t, tr, ctx, "GET", "http://dep/doc", "", "Accept", "application/json"); r.servedBy == "cache" {
		t.Fatalf("an answer for Accept text/html was served for application/json: %q", r.body)
	}
	if r := do(t, tr, ctx, "GET", "http://dep/doc", "", "Accept", "text/html"); r.servedBy != "cache" || r.body != "as text/html" {
		t.Fatalf("got %+v, want the cached text/html answer", r)
	}
}

func TestCacheNeedsTheWholeBody(t *testing.T) {
	tr, sw := cacheSetup(t, memCache(t), nil, nil)
	ctx := labelled(tenant.Stable, "acme", "")
	req, _ := http.NewRequestWithContext(ctx, "GET", "http://dep/partial-read", nil)
	resp, err := tr.RoundTrip(req)
	if err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 3)
	io.ReadFull(resp.Body, buf)
	resp.Body.Close()
	sw.broken.Store(true)
	if r := do(t, tr, ctx, "GET", "http://dep/partial-read", ""); r.servedBy == "cache" {
		t.Fatal("an answer the caller did not read to the end was stored")
	}
}

func TestCacheHEAD(t *testing.T) {
	tr, sw := cacheSetup(t, memCache(t), nil, nil)
	ctx := labelled(tenant.Stable, "acme", "")
	do(t, tr, ctx, "HEAD", "http://dep/h", "")
	sw.broken.Store(true)
	r := do(t, tr, ctx, "HEAD", "http://dep/h", "")
	if r.servedBy != "cache" || r.status != 200 || r.body != "" || r.header.Get("X-Answer") != "kept" {
		t.Fatalf("HEAD: %+v", r)
	}
	if r := do(t, tr, ctx, "GET", "http://dep/h", ""); r.servedBy == "cache" {
		t.Fatal("a HEAD answer was served to a GET")
	}
}

func TestCanaryAnswersAreNotCached(t *testing.T) {
	c := memCache(t)
	tr, sw := cacheSetup(t, c, nil, func(cfg *Config) { cfg.Canary = newServer(t, "canary", nil).URL })
	do(t, tr, labelled(tenant.Canary, "acme", ""), "GET", "http://dep/c", "")
	if n := c.(*memoryCache).len(); n != 0 {
		t.Fatalf("a canary answer was stored (%d entries)", n)
	}
	_ = sw
}

// failingCache fails every call.
type failingCache struct{}

func (failingCache) Get(context.Context, string) (*Entry, bool, error) {
	return nil, false, errors.New("cache down")
}
func (failingCache) Set(context.Context, string, *Entry) error { return errors.New("cache down") }

func TestCacheErrorsKeepTheOriginalFailure(t *testing.T) {
	tr, sw := cacheSetup(t, failingCache{}, nil, nil)
	ctx := labelled(tenant.Stable, "acme", "")
	if r := do(t, tr, ctx, "GET", "http://dep/x", ""); r.servedBy != "stable" || r.status != 200 {
		t.Fatalf("a failing cache write broke the answer: %+v", r)
	}
	sw.broken.Store(true)
	if r := do(t, tr, ctx, "GET", "http://dep/x", ""); r.servedBy != "stable" || r.status != 503 {
		t.Fatalf("a failing cache read: %+v, want stable's 503", r)
	}
}

func TestMemoryCacheBoundsAndTTL(t *testing.T) {
	if _, err := NewMemoryCache(0, time.Minute); err == nil {
		t.Error("maxBytes 0 accepted")
	}
	if _, err := NewMemoryCache(10, 0); err == nil {
		t.Error("ttl 0 accepted")
	}
	if _, err := NewMemoryCacheWith(MemoryCacheConfig{MaxBytes: 10, TTL: time.Minute, MaxTenantBytes: -1}); err == nil || !strings.Contains(err.Error(), "MaxTenantBytes") {
		t.Errorf("negative MaxTenantBytes: %v", err)
	}
	c, _ := NewMemoryCacheWith(MemoryCacheConfig{MaxBytes: 3000, MaxTenantBytes: 3000, TTL: time.Minute})
	mc := c.(*memoryCache)
	now := time.Unix(1000, 0)
	mc.now = func() time.Time { return now }
	ctx := context.Background()
	entry := func(n int) *Entry { return &Entry{Status: 200, Body: bytes.Repeat([]byte("x"), n)} }
	c.Set(ctx, "a", entry(700))
	c.Set(ctx, "b", entry(700))
	c.Get(ctx, "a") // a is now more recently used than b
	c.Set(ctx, "c", entry(700))
	if _, ok, _ := c.Get(ctx, "b"); ok {
		t.Error("the least recently used entry was not evicted")
	}
	if _, ok, _ := c.Get(ctx, "a"); !ok {
		t.Error("a recently used entry was evicted")
	}
	c.Set(ctx, "huge", entry(5000))
	if _, ok, _ := c.Get(ctx, "huge"); ok {
		t.Error("an entry larger than the cache was stored")
	}
	if mc.bytes > mc.maxBytes {
		t.Errorf("cache holds %d bytes, bound %d", mc.bytes, mc.maxBytes)
	}
	now = now.Add(time.Minute)
	if _, ok, _ := c.Get(ctx, "a"); ok {
		t.Error("an expired entry was returned")
	}
}

func TestCacheKeyIsUnambiguous(t *testing.T) {
	req := func(method, target string) *http.Request {
		r, _ := http.NewRequest(method, target, nil)
		return r
	}
	keys := map[string]string{}
	for name, k := range map[string]string{
		"base":          cacheKey("dep", "acme", "", false, req("GET", "http://h/a?b"), nil, nil),
		"other tenant":  cacheKey("dep", "acm", "", false, req("GET", "http://h/a?b"), nil, nil),
		"tenant split":  cacheKey("de", "pacme", "", false, req("GET", "http://h/a?b"), nil, nil),
		"user":          cacheKey("dep", "acme", "u", true, req("GET", "http://h/a?b"), nil, nil),
		"method":        cacheKey("dep", "acme", "", false, req("HEAD", "http://h/a?b"), nil, nil),
		"path vs query": cacheKey("dep", "acme", "", false, req("GET", "http://h/a%3Fb"), nil, nil),
		"other name":    cacheKey("dep2", "acme", "", false, req("GET", "http://h/a?b"), nil, nil),
	} {
		if prev, dup := keys[k]; dup {
			t.Errorf("%s and %s share key %s", name, prev, k)
		}
		keys[k] = name
	}
	if a, b := cacheKey("dep", "acme", "", false, req("GET", "http://one/a"), nil, nil), cacheKey("dep", "acme", "", false, req("GET", "http://two/a"), nil, nil); a != b {
		t.Error("the request's host (replaced by the endpoint's) changes the key")
	}
}
