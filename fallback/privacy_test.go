package fallback

import (
	"context"
	"io"
	"net/http"
	"testing"

	"github.com/reqcanary/canary/tenant"
)

// TestCachePrivacyCookiePageNotShared pins issue 12: Alice's
// cookie-authenticated page was stored under the tenant's shared key and
// served, once the dependency failed, to Bob and to an anonymous user of the
// same tenant. Neither may get it, nor Bob claiming Alice's user hash; Alice
// (same user, same cookie) still gets her own stale answer.
func TestCachePrivacyCookiePageNotShared(t *testing.T) {
	serve := func(w http.ResponseWriter, r *http.Request) {
		who := "anonymous"
		if c, err := r.Cookie("session"); err == nil {
			who = c.Value
		}
		if s := r.Header.Get("X-Session-Token"); s != "" {
			who = s
		}
		io.WriteString(w, "account page of "+who)
	}
	// The Redis cache runs the same test in package rediscache.
	for name, c := range map[string]Cache{"memory": memCache(t)} {
		t.Run(name, func(t *testing.T) {
			tr, sw := cacheSetup(t, c, serve, func(c *Config) { c.SessionHeaders = []string{"x-session-token"} })
			alice := labelled(tenant.Stable, "acme", "hash-alice")
			bob := labelled(tenant.Stable, "acme", "hash-bob")
			anon := labelled(tenant.Stable, "acme", "")
			for _, hdr := range [][]string{
				{"Cookie", "session=alice-secret"},
				{"Authorization", "Bearer alice-token"},
				{"X-Session-Token", "alice-session"},
			} {
				if r := do(t, tr, alice, "GET", "http://dep/account/"+hdr[0], "", hdr...); r.servedBy != "stable" || r.status != 200 {
					t.Fatalf("alice's first request: %+v (%v)", r, r.err)
				}
			}
			sw.broken.Store(true)
			for _, hdr := range [][]string{{"Cookie", "session="}, {"Authorization", "Bearer x"}, {"X-Session-Token", "x"}} {
				path := "http://dep/account/" + hdr[0]
				for _, tc := range []struct {
					who string
					ctx context.Context
					hdr []string
				}{
					{"bob with his own " + hdr[0], bob, []string{hdr[0], hdr[1] + "bob"}},
					{"bob without credentials", bob, nil},
					{"an anonymous user", anon, nil},
					{"an anonymous user with another " + hdr[0], anon, []string{hdr[0], hdr[1] + "other"}},
					{"bob claiming alice's user hash", alice, []string{hdr[0], hdr[1] + "bob"}},
					{"bob claiming alice's user hash, no credentials", alice, nil},
				} {
					if r := do(t, tr, tc.ctx, "GET", path, "", tc.hdr...); r.servedBy == "cache" {
						t.Errorf("%s was served alice's cached %s page: %q", tc.who, hdr[0], r.body)
					}
				}
			}
			r := do(t, tr, alice, "GET", "http://dep/account/Cookie", "", "Cookie", "session=alice-secret")
			if r.servedBy != "cache" || r.body != "account page of alice-secret" {
				t.Errorf("alice with her cookie got %+v, want her own cached page", r)
			}
		})
	}
}

// TestCachePrivacyHonoursVaryAndCacheControl: answers marked no-store or
// private are never shared; Vary: * or a Vary the transport cannot key on is
// never stored; a Vary it keys on serves only requests with the same values.
func TestCachePrivacyHonoursVaryAndCacheControl(t *testing.T) {
	serve := func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/private":
			w.Header().Set("Cache-Control", "private")
		case "/no-store":
			w.Header().Set("Cache-Control", "max-age=60, no-store")
		case "/vary-star":
			w.Header().Set("Vary", "*")
		case "/vary-cookie":
			w.Header().Set("Vary", "Cookie")
		case "/vary-lang":
			w.Header().Set("Vary", "accept-language")
		case "/set-cookie":
			w.Header().Set("Set-Cookie", "session=new; HttpOnly")
			w.Header().Set("Cache-Control", "private")
		}
		io.WriteString(w, r.URL.Path+" in "+r.Header.Get("Accept-Language"))
	}
	tr, sw := cacheSetup(t, memCache(t), serve, func(c *Config) { c.CacheVary = []string{"Accept-Language"} })
	alice := labelled(tenant.Stable, "acme", "hash-alice")
	bob := labelled(tenant.Stable, "acme", "hash-bob")
	for _, p := range []string{"/private", "/no-store", "/vary-star", "/vary-cookie", "/vary-lang", "/set-cookie"} {
		do(t, tr, alice, "GET", "http://dep"+p, "", "Accept-Language", "fr")
	}
	sw.broken.Store(true)
	for _, p := range []string{"/private", "/no-store", "/vary-star", "/vary-cookie", "/vary-lang", "/set-cookie"} {
		if r := do(t, tr, bob, "GET", "http://dep"+p, "", "Accept-Language", "de"); r.servedBy == "cache" {
			t.Errorf("bob (Accept-Language de) got alice's cached %s: %q", p, r.body)
		}
	}
	for p, want := range map[string]bool{"/private": true, "/no-store": false, "/vary-star": false,
		"/vary-cookie": false, "/vary-lang": true, "/set-cookie": false} {
		r := do(t, tr, alice, "GET", "http://dep"+p, "", "Accept-Language", "fr")
		if got := r.servedBy == "cache"; got != want {
			t.Errorf("alice GET %s again: served from cache %v, want %v (%+v)", p, got, want, r)
		}
	}
	if r := do(t, tr, bob, "GET", "http://dep/vary-lang", "", "Accept-Language", "fr"); r.servedBy != "cache" {
		t.Errorf("a shared answer varying on Accept-Language fr was not served to another fr request: %+v", r)
	}
}
