package rediscache_test

import (
	"context"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/reqcanary/canary/fallback"
	"github.com/reqcanary/canary/tenant"
)

// TestCacheIsolatesTenants: no tenant reads another tenant's answer, even
// for the same URL; an unlabelled request reads neither.
func TestCacheIsolatesTenants(t *testing.T) {
	c, _, _ := newCache(t, time.Minute)
	tr, sw := cacheSetup(t, c, nil, nil)
	acme := labelled(tenant.Stable, "acme", "")
	do(t, tr, acme, "GET", "http://dep/account", "X-For", "acme")
	sw.broken.Store(true)
	if r := do(t, tr, labelled(tenant.Stable, "globex", ""), "GET", "http://dep/account"); r.servedBy == "cache" {
		t.Fatalf("tenant globex read acme's answer: %q", r.body)
	}
	if r := do(t, tr, context.Background(), "GET", "http://dep/account"); r.servedBy == "cache" {
		t.Fatalf("a request without tenant read acme's answer: %q", r.body)
	}
	r := do(t, tr, acme, "GET", "http://dep/account")
	if r.servedBy != "cache" || !strings.Contains(r.body, `"tenant":"acme"`) {
		t.Fatalf("acme got %+v, want its own cached answer", r)
	}
}

// TestCachePrivacyCookiePageNotShared pins issue 12 for the Redis cache:
// Alice's cookie-authenticated page was stored under the tenant's shared key
// and served, once the dependency failed, to Bob and to an anonymous user of
// the same tenant. Neither may get it, nor Bob claiming Alice's user hash;
// Alice (same user, same cookie) still gets her own stale answer.
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
	c, _, _ := newCache(t, time.Minute)
	tr, sw := cacheSetup(t, c, serve, func(c *fallback.Config) { c.SessionHeaders = []string{"x-session-token"} })
	alice := labelled(tenant.Stable, "acme", "hash-alice")
	bob := labelled(tenant.Stable, "acme", "hash-bob")
	anon := labelled(tenant.Stable, "acme", "")
	for _, hdr := range [][]string{
		{"Cookie", "session=alice-secret"},
		{"Authorization", "Bearer alice-token"},
		{"X-Session-Token", "alice-session"},
	} {
		if r := do(t, tr, alice, "GET", "http://dep/account/"+hdr[0], hdr...); r.servedBy != "stable" || r.status != 200 {
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
			if r := do(t, tr, tc.ctx, "GET", path, tc.hdr...); r.servedBy == "cache" {
				t.Errorf("%s was served alice's cached %s page: %q", tc.who, hdr[0], r.body)
			}
		}
	}
	r := do(t, tr, alice, "GET", "http://dep/account/Cookie", "Cookie", "session=alice-secret")
	if r.servedBy != "cache" || r.body != "account page of alice-secret" {
		t.Errorf("alice with her cookie got %+v, want her own cached page", r)
	}
}
