package main

import (
	"bytes"
	"fmt"
	"net/http"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// TestAdminListener pins issue 12: the admin API, the pricing fault
// injection and /metrics were served on the public listener, and the
// pricing switches needed no token. They are on the admin listener only,
// and every admin POST needs the token.
func TestAdminListener(t *testing.T) {
	p := startShop(t, nil, "-db", filepath.Join(t.TempDir(), "shop.db"))
	for _, path := range []string{"/metrics", "/admin/canary", "/admin/pricing"} {
		if a := p.do("GET", path, ""); a.status != http.StatusNotFound {
			t.Errorf("public GET %s: %d, want 404", path, a.status)
		}
		if a := p.adminDo("GET", path, ""); a.status != http.StatusOK {
			t.Errorf("admin GET %s: %d, want 200", path, a.status)
		}
	}
	if a := p.do("POST", "/admin/pricing/canary?mode=fail", "", "Authorization: Bearer "+adminToken); a.status != http.StatusNotFound {
		t.Errorf("public POST /admin/pricing: %d, want 404", a.status)
	}
	for name, hdr := range map[string][]string{"no token": nil, "wrong token": {"Authorization: Bearer nope"}} {
		if a := p.adminDo("POST", "/admin/pricing/canary?mode=fail", "", hdr...); a.status != http.StatusUnauthorized {
			t.Errorf("admin POST /admin/pricing with %s: %d %s, want 401", name, a.status, a.raw)
		}
	}
	if a := p.adminDo("GET", "/admin/pricing", ""); !strings.Contains(a.raw, `"canary": "ok"`) {
		t.Fatalf("a refused POST changed the mode: %s", a.raw)
	}
	p.admin("/admin/pricing/canary?mode=fail")
	if a := p.adminDo("GET", "/admin/pricing", ""); !strings.Contains(a.raw, `"canary": "fail"`) {
		t.Fatalf("the POST with the token did not change the mode: %s", a.raw)
	}
	p.admin("/admin/pricing/canary?mode=ok")
}

// TestAdminReadOnly: with an empty -admin-token every admin POST is
// refused.
func TestAdminReadOnly(t *testing.T) {
	p := startShop(t, nil, "-db", filepath.Join(t.TempDir(), "shop.db"), "-admin-token", "")
	if a := p.adminDo("POST", "/admin/pricing/canary?mode=fail", "", "Authorization: Bearer "); a.status != http.StatusForbidden {
		t.Errorf("POST /admin/pricing on a read-only admin: %d %s, want 403", a.status, a.raw)
	}
}

// TestMetricsIgnoreHost pins issue 12: otelhttp labelled the HTTP metrics
// with the client's Host header, so distinct Host headers grew /metrics
// without bound. 1000 distinct Host headers (and ports) must not grow it;
// the route is the pattern, not the path.
func TestMetricsIgnoreHost(t *testing.T) {
	p := startShop(t, nil, "-db", filepath.Join(t.TempDir(), "shop.db"))
	send := func(host string, path string) {
		req, _ := http.NewRequest("GET", p.http+path, nil)
		req.Host = host
		resp, err := p.client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
	}
	httpLines := func() []string {
		var out []string
		for _, l := range strings.Split(p.adminDo("GET", "/metrics", "").raw, "\n") {
			if strings.HasPrefix(l, "http_server_") {
				out = append(out, l)
			}
		}
		return out
	}
	for i := range 3 {
		send("warmup.example", fmt.Sprintf("/products/%d", 100+i))
		send("warmup.example", fmt.Sprintf("/no-such-page-%d", i))
	}
	before := httpLines()
	for i := range 1000 {
		send(fmt.Sprintf("h%d.attacker.example:%d", i, 1000+i), fmt.Sprintf("/products/%d", 1000+i))
	}
	after := httpLines()
	if len(after) != len(before) {
		t.Errorf("1000 distinct Host headers grew the http_server_ series from %d to %d lines", len(before), len(after))
	}
	joined := strings.Join(after, "\n")
	if strings.Contains(joined, "attacker") || strings.Contains(joined, "warmup") {
		t.Errorf("/metrics holds a client's Host header:\n%s", firstLines(joined, 5))
	}
	if !strings.Contains(joined, `http_route="/products/{id}"`) {
		t.Errorf("/metrics has no http_route=\"/products/{id}\":\n%s", firstLines(joined, 5))
	}
	if regexp.MustCompile(`/products/[0-9]`).MatchString(joined) {
		t.Errorf("/metrics holds request paths:\n%s", firstLines(joined, 5))
	}
}

func firstLines(s string, n int) string {
	lines := strings.SplitN(s, "\n", n+1)
	return strings.Join(lines[:min(n, len(lines))], "\n")
}

// TestBadStartAdmin: the built-in admin token is refused when a listener is
// beyond loopback, with a message naming the flag; a bad -admin address is
// a usage error; a busy one an error naming -admin.
func TestBadStartAdmin(t *testing.T) {
	dir := t.TempDir()
	for _, tt := range []struct {
		name string
		args []string
		code int
		msg  string
	}{
		{"public http with the built-in token", []string{"-http", "0.0.0.0:0", "-grpc", "127.0.0.1:0", "-admin", "127.0.0.1:0"}, exitUsage,
			`-admin-token (or DEMO_SHOP_ADMIN_TOKEN): the built-in "demo-token" is for a shop on loopback only, and -http 0.0.0.0:0 listens beyond it`},
		{"public admin with the built-in token", []string{"-http", "127.0.0.1:0", "-grpc", "127.0.0.1:0", "-admin", ":0"}, exitUsage,
			"-admin :0 listens beyond it"},
		{"public grpc, explicit built-in token", []string{"-grpc", "[::]:0", "-admin-token", "demo-token"}, exitUsage, "-grpc [::]:0 listens beyond it"},
		{"bad admin address", []string{"-admin", "8081"}, exitUsage, `-admin (or DEMO_SHOP_ADMIN): "8081" is not host:port`},
	} {
		t.Run(tt.name, func(t *testing.T) {
			cmd := exec.Command(binary(t), append(tt.args, "-db", filepath.Join(dir, "x.db"))...)
			cmd.Env = cleanEnv()
			var stderr bytes.Buffer
			cmd.Stderr = &stderr
			err := cmd.Run()
			if code := cmd.ProcessState.ExitCode(); err == nil || code != tt.code {
				t.Errorf("exit code %d (%v), want %d", code, err, tt.code)
			}
			if !strings.Contains(stderr.String(), tt.msg) {
				t.Errorf("stderr does not say %q:\n%s", tt.msg, stderr.String())
			}
		})
	}
}
