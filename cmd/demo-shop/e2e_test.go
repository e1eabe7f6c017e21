package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"go.uber.org/goleak"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/reqcanary/canary"
	"github.com/reqcanary/canary/tenant"
)

// These tests build the demo-shop binary, start it on free ports and drive
// the walk-through of docs/demo.md over HTTP and gRPC, as a user would.

var (
	binOnce sync.Once
	binDir  string
	binPath string
	binErr  error
)

func TestMain(m *testing.M) {
	code := m.Run()
	if binDir != "" {
		os.RemoveAll(binDir)
	}
	if code == 0 {
		if err := goleak.Find(); err != nil {
			fmt.Fprintln(os.Stderr, "goleak:", err)
			code = 1
		}
	}
	os.Exit(code)
}

// binary builds demo-shop once per test run (with -race when the tests have
// it, so the build cache is shared) and returns its path.
func binary(t *testing.T) string {
	t.Helper()
	binOnce.Do(func() {
		binDir, binErr = os.MkdirTemp("", "demo-shop-e2e-")
		if binErr != nil {
			return
		}
		binPath = filepath.Join(binDir, "demo-shop")
		args := []string{"build", "-o", binPath}
		if raceEnabled {
			args = append(args, "-race")
		}
		if !servicesBuilt {
			// The build under test, as `make demo` makes it (Makefile).
			args = append(args, "-tags", "demo_embedded", "-gcflags", "all=-N -l")
		}
		cmd := exec.Command(filepath.Join(runtime.GOROOT(), "bin", "go"), append(args, ".")...)
		if out, err := cmd.CombinedOutput(); err != nil {
			binErr = fmt.Errorf("go build: %v\n%s", err, out)
		}
	})
	if binErr != nil {
		t.Fatal(binErr)
	}
	return binPath
}

// cleanEnv is the environment without DEMO_SHOP_* variables.
func cleanEnv(extra ...string) []string {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "DEMO_SHOP_") && !strings.HasPrefix(kv, "CANARY_USER_HASH_KEY=") {
			env = append(env, kv)
		}
	}
	return append(env, extra...)
}

// shopProc is a running demo-shop.
type shopProc struct {
	t        *testing.T
	cmd      *exec.Cmd
	stderr   *syncBuffer
	readDone chan struct{}
	http     string // base URL of the public listener
	adminURL string // base URL of the admin listener (-admin)
	grpcAddr string
	client   *http.Client
	conn     *grpc.ClientConn
}

var addrLine = regexp.MustCompile(`^demo-shop: http=(\S+) grpc=(\S+) admin=(\S+)$`)

// startShop starts the binary on free ports with args (and env, KEY=VALUE)
// and returns once it has printed its addresses. At the end of the test it
// is stopped with SIGTERM and must exit 0.
func startShop(t *testing.T, env []string, args ...string) *shopProc {
	t.Helper()
	args = append([]string{"-http", "127.0.0.1:0", "-grpc", "127.0.0.1:0", "-admin", "127.0.0.1:0", "-admin-token", adminToken}, args...)
	cmd := exec.Command(binary(t), args...)
	cmd.Env = cleanEnv(env...)
	p := &shopProc{t: t, cmd: cmd, stderr: &syncBuffer{}, readDone: make(chan struct{})}
	cmd.Stderr = p.stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	addrs := make(chan []string, 1)
	go func() {
		defer close(p.readDone)
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			if m := addrLine.FindStringSubmatch(sc.Text()); m != nil {
				addrs <- m[1:]
			}
		}
	}()
	select {
	case a := <-addrs:
		p.http, p.grpcAddr, p.adminURL = "http://"+a[0], a[1], "http://"+a[2]
	case <-p.readDone:
		cmd.Wait()
		t.Fatalf("demo-shop exited before listening: %v\nstderr:\n%s", cmd.ProcessState, p.stderr)
	case <-time.After(30 * time.Second):
		cmd.Process.Kill()
		<-p.readDone
		cmd.Wait()
		t.Fatalf("demo-shop did not print its addresses within 30s\nstderr:\n%s", p.stderr)
	}
	tr := &http.Transport{}
	p.client = &http.Client{Transport: tr, Timeout: 10 * time.Second}
	p.conn, err = grpc.NewClient(p.grpcAddr,
		grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithDefaultCallOptions(grpc.ForceCodec(jsonCodec{})))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		p.conn.Close()
		tr.CloseIdleConnections()
		p.stop()
	})
	return p
}

// stop sends SIGTERM and checks the shop stops gracefully with exit code 0.
func (p *shopProc) stop() {
	t := p.t
	if p.cmd.ProcessState != nil {
		return
	}
	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Errorf("SIGTERM: %v", err)
	}
	select {
	case <-p.readDone:
	case <-time.After(15 * time.Second):
		t.Errorf("demo-shop did not stop within 15s of SIGTERM")
		p.cmd.Process.Kill()
		<-p.readDone
	}
	if err := p.cmd.Wait(); err != nil {
		t.Errorf("demo-shop exited with %v after SIGTERM, want 0\nstderr:\n%s", err, p.stderr)
	}
	if !strings.Contains(p.stderr.String(), "demo-shop: stopped") {
		t.Errorf("stderr does not say it stopped:\n%s", p.stderr)
	}
}

// syncBuffer is a bytes.Buffer safe for the writer goroutine of exec.Cmd.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// answer is an HTTP answer of the shop.
type answer struct {
	status int
	header http.Header
	reply  reply
	raw    string
}

// do sends one HTTP request to the public listener with headers ("Name:
// value" strings).
func (p *shopProc) do(method, path, body string, headers ...string) answer {
	p.t.Helper()
	return p.doURL(method, p.http+path, body, headers...)
}

// adminDo sends one HTTP request to the admin listener.
func (p *shopProc) adminDo(method, path, body string, headers ...string) answer {
	p.t.Helper()
	return p.doURL(method, p.adminURL+path, body, headers...)
}

func (p *shopProc) doURL(method, url, body string, headers ...string) answer {
	p.t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequest(method, url, rd)
	if err != nil {
		p.t.Fatal(err)
	}
	for _, h := range headers {
		k, v, _ := strings.Cut(h, ":")
		req.Header.Add(strings.TrimSpace(k), strings.TrimSpace(v))
	}
	resp, err := p.client.Do(req)
	if err != nil {
		p.t.Fatalf("%s %s: %v", method, url, err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	a := answer{status: resp.StatusCode, header: resp.Header, raw: string(raw)}
	_ = json.Unmarshal(raw, &a.reply)
	return a
}

// adminToken is the token the tests start the shop with (-admin-token).
const adminToken = "e2e-admin-token"

// canaryStatus is the part of canary.AdminHandler's GET the tests read.
type canaryStatus struct {
	KillSwitch struct {
		On      bool     `json:"on"`
		Reason  string   `json:"reason"`
		Sources []string `json:"sources"`
	} `json:"kill_switch"`
	Guard struct {
		Enabled bool            `json:"enabled"`
		Trip    json.RawMessage `json:"trip"`
		Stable  guardFigures    `json:"stable"`
		Canary  guardFigures    `json:"canary"`
	} `json:"guard"`
}

// waitServed asks for product 2 as tenant until the pricing version
// servedBy answers it (its circuit breaker closed again), for up to 10 s.
func (p *shopProc) waitServed(tenantID, servedBy string) {
	p.t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		a := p.do("GET", "/products/2", "", "X-Tenant-ID: "+tenantID, "X-User-ID: prober")
		if a.status == http.StatusOK && a.reply.Served.Pricing == servedBy {
			return
		}
		if time.Now().After(deadline) {
			p.t.Fatalf("%s: pricing %s did not answer again within 10 s: %d %s", tenantID, servedBy, a.status, a.raw)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// guardFigures are one cohort's figures in the admin status.
type guardFigures struct {
	Requests        uint64 `json:"requests"`
	Failures        uint64 `json:"failures"`
	ClientCancelled uint64 `json:"client_cancelled"`
}

// status reads GET /admin/canary.
func (p *shopProc) status() canaryStatus {
	p.t.Helper()
	a := p.adminDo("GET", "/admin/canary", "")
	var st canaryStatus
	if a.status != http.StatusOK || json.Unmarshal([]byte(a.raw), &st) != nil {
		p.t.Fatalf("GET /admin/canary: %d %s", a.status, a.raw)
	}
	return st
}

// adminJSON posts body to /admin/canary with the admin token and wants 200.
func (p *shopProc) adminJSON(body string) {
	p.t.Helper()
	if a := p.adminDo("POST", "/admin/canary", body, "Authorization: Bearer "+adminToken); a.status != http.StatusOK {
		p.t.Fatalf("POST /admin/canary %s: %d %s", body, a.status, a.raw)
	}
}

// admin posts to an admin URL with the admin token and wants 200.
func (p *shopProc) admin(path string) {
	p.t.Helper()
	if a := p.adminDo("POST", path, "", "Authorization: Bearer "+adminToken); a.status != http.StatusOK {
		p.t.Fatalf("POST %s: %d %s", path, a.status, a.raw)
	}
}

// call invokes a gRPC method with metadata (key, value pairs).
func (p *shopProc) call(method string, req any, md ...string) (*reply, metadata.MD, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	ctx = metadata.AppendToOutgoingContext(ctx, md...)
	var rp reply
	var tr metadata.MD
	err := p.conn.Invoke(ctx, "/"+shopServiceName+"/"+method, req, &rp, grpc.Trailer(&tr))
	return &rp, tr, err
}

// want checks an answer's status, cohort, reason and who served the price.
func want(t *testing.T, what string, a answer, status int, cohort tenant.Cohort, reason, servedBy string) {
	t.Helper()
	if a.status != status {
		t.Fatalf("%s: status %d, want %d; body %s", what, a.status, status, a.raw)
	}
	l := a.reply.Labels
	if l.Cohort != cohort || l.Reason != reason {
		t.Errorf("%s: labels cohort=%q reason=%q, want %q %q", what, l.Cohort, l.Reason, cohort, reason)
	}
	if got := a.header.Get(tenant.HeaderCohort); got != string(cohort) {
		t.Errorf("%s: %s = %q, want %q", what, tenant.HeaderCohort, got, cohort)
	}
	if servedBy != "" {
		if a.reply.Served.Pricing != servedBy || a.header.Get("X-Canary-Served-By") != servedBy {
			t.Errorf("%s: served by %q (header %q), want %q; body %s", what,
				a.reply.Served.Pricing, a.header.Get("X-Canary-Served-By"), servedBy, a.raw)
		}
	}
}

var hex32 = regexp.MustCompile(`^[0-9a-f]{32}$`)

func TestWalkthrough(t *testing.T) {
	p := startShop(t, nil, "-db", filepath.Join(t.TempDir(), "shop.db"))
	plan, err := canary.ParsePlan(embeddedPlan)
	if err != nil {
		t.Fatal(err)
	}

	t.Run("products of a canary tenant", func(t *testing.T) {
		a := p.do("GET", "/products", "", "X-Tenant-ID: acme", "X-User-ID: alice")
		want(t, "acme", a, 200, tenant.Canary, tenant.ReasonTenantCanary, "canary")
		if len(a.reply.Products) != len(seedProducts) {
			t.Fatalf("%d products, want %d: %s", len(a.reply.Products), len(seedProducts), a.raw)
		}
		if pr := a.reply.Products[0]; pr.Name != "Espresso cup" || pr.PriceVersion != "canary" || pr.PriceCents != 1080 {
			t.Errorf("first product %+v, want the espresso cup at the canary price 1080", pr)
		}
		l := a.reply.Labels
		if !hex32.MatchString(l.UserHash) || !hex32.MatchString(l.TraceID) || l.PlanVersion != plan.Version {
			t.Errorf("labels %+v: want a user hash, a trace id and plan version %d", l, plan.Version)
		}
		if strings.Contains(a.raw, "alice") {
			t.Errorf("the raw user id is in the answer: %s", a.raw)
		}
		if a.reply.Served.DB != "replica-0 (read)" {
			t.Errorf("db %q, want the read-only pool", a.reply.Served.DB)
		}
	})

	t.Run("percentage", func(t *testing.T) {
		// bob's bucket is above 20 % and victor's below, under the plan's salt.
		for user, cohort := range map[string]tenant.Cohort{"bob": tenant.Stable, "victor": tenant.Canary} {
			a := p.do("GET", "/products/2", "", "X-Tenant-ID: globex", "X-User-ID: "+user)
			want(t, user, a, 200, cohort, tenant.ReasonPercent, string(cohort))
			if b := tenant.BucketOf(plan.Salt, "globex", user); a.reply.Labels.Bucket != b {
				t.Errorf("%s: bucket %d, want %d", user, a.reply.Labels.Bucket, b)
			}
		}
	})

	t.Run("tenant lists and trusted override", func(t *testing.T) {
		want(t, "bigbank", p.do("GET", "/products/1", "", "X-Tenant-ID: bigbank"),
			200, tenant.Stable, tenant.ReasonTenantStable, "stable")
		// The test runs on loopback, which the plan trusts.
		want(t, "bigbank+override", p.do("GET", "/products/1", "", "X-Tenant-ID: bigbank", "X-Canary: canary"),
			200, tenant.Canary, tenant.ReasonOverride, "canary")
		want(t, "acme+override", p.do("GET", "/products/1", "", "X-Tenant-ID: acme", "X-Canary: stable"),
			200, tenant.Stable, tenant.ReasonOverride, "stable")
	})

	t.Run("trace is continued", func(t *testing.T) {
		const trace = "4bf92f3577b34da6a3ce929d0e0e4736"
		a := p.do("GET", "/products/1", "", "X-Tenant-ID: acme", "Traceparent: 00-"+trace+"-00f067aa0ba902b7-01")
		if a.reply.Labels.TraceID != trace {
			t.Errorf("trace id %q, want the caller's %s", a.reply.Labels.TraceID, trace)
		}
	})

	t.Run("bad input", func(t *testing.T) {
		a := p.do("GET", "/products", "", "X-Tenant-ID: not a tenant")
		if a.status != 400 || !strings.Contains(a.raw, "X-Tenant-ID") {
			t.Errorf("invalid tenant: %d %s, want 400 naming X-Tenant-ID", a.status, a.raw)
		}
		a = p.do("POST", "/orders", `{"product_id":1,"quantity":1}`, "X-Tenant-ID: globex")
		if a.status != 400 || !strings.Contains(a.reply.Error, "X-User-ID") {
			t.Errorf("order without user: %d %s, want 400 naming X-User-ID", a.status, a.raw)
		}
		a = p.do("POST", "/orders", `{"product_id":1,"quantity":0}`, "X-Tenant-ID: globex", "X-User-ID: bob")
		if a.status != 400 || !strings.Contains(a.reply.Error, "quantity") {
			t.Errorf("quantity 0: %d %s, want 400 naming quantity", a.status, a.raw)
		}
		if a := p.do("GET", "/products/99", "", "X-Tenant-ID: globex"); a.status != 404 {
			t.Errorf("unknown product: %d %s, want 404", a.status, a.raw)
		}
	})

	t.Run("read your own new order at once", func(t *testing.T) {
		a := p.do("POST", "/orders", `{"product_id":2,"quantity":3}`, "X-Tenant-ID: globex", "X-User-ID: bob")
		want(t, "create", a, 201, tenant.Stable, tenant.ReasonPercent, "stable")
		o := a.reply.Order
		if o == nil || o.ID == 0 || o.UnitCents != 3400 || o.Quantity != 3 || o.PricedBy != "stable" {
			t.Fatalf("order %+v, want 3 × product 2 at the stable price 3400", o)
		}
		path := fmt.Sprintf("/orders/%d", o.ID)
		got := p.do("GET", path, "", "X-Tenant-ID: globex", "X-User-ID: bob")
		if got.status != 200 || got.reply.Order == nil || *got.reply.Order != *o {
			t.Fatalf("read back: %d %s, want the order just made", got.status, got.raw)
		}
		if got.reply.Served.DB != "primary (sticky)" {
			t.Errorf("the writer's read went to %q, want the primary (sticky after its write)", got.reply.Served.DB)
		}
		other := p.do("GET", path, "", "X-Tenant-ID: globex", "X-User-ID: carol")
		if other.status != 200 || other.reply.Served.DB != "replica-0 (read)" {
			t.Errorf("another user of the tenant: %d via %q, want 200 from the read-only pool", other.status, other.reply.Served.DB)
		}
		if a := p.do("GET", path, "", "X-Tenant-ID: initech", "X-User-ID: bob"); a.status != 404 {
			t.Errorf("another tenant read the order: %d %s, want 404", a.status, a.raw)
		}
	})

	t.Run("gRPC", func(t *testing.T) {
		rp, tr, err := p.call("ListProducts", struct{}{}, "x-tenant-id", "acme", "x-user-id", "alice")
		if err != nil {
			t.Fatal(err)
		}
		if rp.Labels.Cohort != "canary" || rp.Labels.Reason != tenant.ReasonTenantCanary || rp.Served.Pricing != "canary" ||
			len(rp.Products) != len(seedProducts) || !hex32.MatchString(rp.Labels.TraceID) {
			t.Errorf("ListProducts for acme: %+v", rp)
		}
		if c := tr.Get("x-canary-cohort"); len(c) != 1 || c[0] != "canary" {
			t.Errorf("trailer x-canary-cohort %v, want canary", c)
		}
		rp, _, err = p.call("GetProduct", idRequest{ID: 3}, "x-tenant-id", "bigbank", "x-canary", "canary")
		if err != nil || rp.Labels.Reason != tenant.ReasonOverride || rp.Product.PriceVersion != "canary" {
			t.Errorf("GetProduct with a trusted override: %v %+v", err, rp)
		}
		rp, _, err = p.call("CreateOrder", newOrder{ProductID: 4, Quantity: 1}, "x-tenant-id", "globex", "x-user-id", "victor")
		if err != nil || rp.Order == nil || rp.Labels.Cohort != "canary" || rp.Order.UnitCents != 1620 {
			t.Fatalf("CreateOrder for victor (canary by percent): %v %+v", err, rp)
		}
		got, _, err := p.call("GetOrder", idRequest{ID: rp.Order.ID}, "x-tenant-id", "globex", "x-user-id", "victor")
		if err != nil || got.Order == nil || *got.Order != *rp.Order || got.Served.DB != "primary (sticky)" {
			t.Errorf("GetOrder right after CreateOrder: %v %+v", err, got)
		}
		_, _, err = p.call("GetOrder", idRequest{ID: rp.Order.ID}, "x-tenant-id", "initech")
		if status.Code(err) != codes.NotFound {
			t.Errorf("another tenant's order: %v, want NotFound", err)
		}
		_, _, err = p.call("CreateOrder", newOrder{ProductID: 1, Quantity: 1}, "x-tenant-id", "globex")
		if status.Code(err) != codes.InvalidArgument || !strings.Contains(err.Error(), "X-User-ID") {
			t.Errorf("order without user: %v, want InvalidArgument naming the user", err)
		}
		_, _, err = p.call("ListProducts", struct{}{}, "x-tenant-id", "bad tenant")
		if status.Code(err) != codes.InvalidArgument || !strings.Contains(err.Error(), "x-tenant-id") {
			t.Errorf("invalid tenant metadata: %v, want InvalidArgument naming x-tenant-id", err)
		}
	})

	t.Run("slow canary: stable answers", func(t *testing.T) {
		p.admin("/admin/pricing/canary?mode=slow")
		a := p.do("GET", "/products/1", "", "X-Tenant-ID: acme")
		want(t, "acme", a, 200, tenant.Canary, tenant.ReasonTenantCanary, "stable")
		if a.reply.Served.PricingFallback != "canary:timeout" || a.reply.Product.PriceCents != 1200 {
			t.Errorf("fallback %q price %d, want canary:timeout and the stable price 1200",
				a.reply.Served.PricingFallback, a.reply.Product.PriceCents)
		}
	})

	t.Run("both failing: the cached answer", func(t *testing.T) {
		p.admin("/admin/pricing/canary?mode=fail")
		p.admin("/admin/pricing/stable?mode=fail")
		a := p.do("GET", "/products/1", "", "X-Tenant-ID: acme")
		want(t, "acme", a, 200, tenant.Canary, tenant.ReasonTenantCanary, "cache")
		if a.reply.Product.PriceCents != 1200 || a.reply.Product.PriceVersion != "stable" {
			t.Errorf("cached price %+v, want the last stable answer", a.reply.Product)
		}
		// Nothing cached for this one: the shop says pricing is unavailable.
		a = p.do("GET", "/products/5", "", "X-Tenant-ID: acme")
		if a.status != 503 || !strings.Contains(a.reply.Error, "pricing unavailable") || a.reply.Labels.Cohort != "canary" {
			t.Errorf("uncached product with pricing down: %d %s, want 503 with the labels", a.status, a.raw)
		}
		p.admin("/admin/pricing/canary?mode=ok")
		p.admin("/admin/pricing/stable?mode=ok")
	})

	t.Run("shared outage: both cohorts from the cache, no trip", func(t *testing.T) {
		// Warm the cache of both tenants, then take every pricing version
		// down: both cohorts are served the cached answer, each such answer
		// a failure of its own cohort, counted once. A shared outage is not
		// the canary's fault: the guard must not trip.
		// Only stable answers are cached: stable answers product 2 for
		// bigbank, and for acme while the canary version fails.
		p.waitServed("bigbank", "stable") // its circuit, opened by the test before, closed again
		p.admin("/admin/pricing/canary?mode=fail")
		p.waitServed("acme", "stable")
		p.admin("/admin/pricing/stable?mode=fail")
		for i := range 40 {
			a := p.do("GET", "/products/2", "", "X-Tenant-ID: acme", fmt.Sprintf("X-User-ID: out%d", i))
			want(t, "acme, pricing down", a, 200, tenant.Canary, tenant.ReasonTenantCanary, "cache")
			a = p.do("GET", "/products/2", "", "X-Tenant-ID: bigbank", fmt.Sprintf("X-User-ID: out%d", i))
			want(t, "bigbank, pricing down", a, 200, tenant.Stable, tenant.ReasonTenantStable, "cache")
		}
		time.Sleep(600 * time.Millisecond) // two evaluations at least
		st := p.status()
		if st.KillSwitch.On || st.Guard.Trip != nil {
			t.Fatalf("a shared pricing outage tripped the guard: %+v", st)
		}
		// 40 cached answers per cohort, plus the few probes around them: a
		// double count would make 80 or more.
		if st.Guard.Canary.Failures < 40 || st.Guard.Stable.Failures < 40 ||
			st.Guard.Canary.Requests >= 80 || st.Guard.Stable.Requests >= 80 {
			t.Errorf("guard figures canary %+v stable %+v: want each cached answer counted once, as a failure of its cohort",
				st.Guard.Canary, st.Guard.Stable)
		}
		p.admin("/admin/pricing/canary?mode=ok")
		p.admin("/admin/pricing/stable?mode=ok")
		p.waitServed("acme", "canary")
		p.waitServed("bigbank", "stable")
		p.adminJSON(`{"action":"rearm"}`) // empties the window for the next test
	})

	t.Run("guard trips on a failing canary, then re-armed", func(t *testing.T) {
		p.admin("/admin/pricing/canary?mode=fail")
		// acme (canary) is answered by stable pricing each time, and every
		// such fallback is a canary failure for the guard; bigbank is stable.
		// Each request from its own user: one user (or one tenant without
		// users) cannot trip the guard alone.
		for i := range 30 {
			p.do("GET", "/products/1", "", "X-Tenant-ID: acme", fmt.Sprintf("X-User-ID: u%d", i))
			p.do("GET", "/products/1", "", "X-Tenant-ID: bigbank", fmt.Sprintf("X-User-ID: u%d", i))
		}
		var st canaryStatus
		deadline := time.Now().Add(5 * time.Second)
		for {
			st = p.status()
			if st.KillSwitch.On || time.Now().After(deadline) {
				break
			}
			time.Sleep(50 * time.Millisecond)
		}
		if !st.KillSwitch.On || st.KillSwitch.Reason != tenant.ReasonGuard || st.Guard.Trip == nil {
			t.Fatalf("admin status after a failing canary: %+v, want the kill switch on by the guard with a trip", st)
		}
		want(t, "acme after the trip", p.do("GET", "/products/1", "", "X-Tenant-ID: acme"), 200, tenant.Stable, tenant.ReasonGuard, "stable")

		// The console shows the trip on the admin listener, and only reads.
		if a := p.adminDo("GET", "/admin/canary/ui/", ""); a.status != http.StatusOK || !strings.Contains(a.raw, "tripped") ||
			a.header.Get("Content-Security-Policy") == "" {
			t.Errorf("GET /admin/canary/ui/ after the trip: %d %v %.200s", a.status, a.header, a.raw)
		}
		if a := p.adminDo("POST", "/admin/canary", `{"action":"rearm"}`); a.status != http.StatusUnauthorized {
			t.Errorf("rearm without the token: %d %s, want 401", a.status, a.raw)
		}
		if a := p.adminDo("POST", "/admin/canary", `{"action":"bogus"}`, "Authorization: Bearer "+adminToken); a.status != http.StatusBadRequest || !strings.Contains(a.raw, `"action"`) {
			t.Errorf("bad action: %d %s, want 400 naming the field", a.status, a.raw)
		}
		p.admin("/admin/pricing/canary?mode=ok")
		p.adminJSON(`{"action":"rearm"}`)
		if st := p.status(); st.KillSwitch.On {
			t.Errorf("after rearm: %+v", st.KillSwitch)
		}
		// The canary is back in the cohort at once; its pricing circuit, opened
		// by the failures, lets calls through again after its delay.
		want(t, "acme after rearm", p.do("GET", "/products/1", "", "X-Tenant-ID: acme"), 200, tenant.Canary, tenant.ReasonTenantCanary, "")
	})

	t.Run("kill switch", func(t *testing.T) {
		p.adminJSON(`{"action":"on","note":"e2e"}`)
		a := p.do("GET", "/products/2", "", "X-Tenant-ID: acme", "X-Canary: canary")
		want(t, "acme with override", a, 200, tenant.Stable, tenant.ReasonKillSwitch, "")
		if a.reply.Served.Pricing == "canary" {
			t.Errorf("the canary pricing served a request while the kill switch is on")
		}
		rp, _, err := p.call("ListProducts", struct{}{}, "x-tenant-id", "globex", "x-user-id", "victor")
		if err != nil || rp.Labels.Cohort != "stable" || rp.Labels.Reason != tenant.ReasonKillSwitch {
			t.Errorf("gRPC with the kill switch on: %v %+v", err, rp)
		}
		if st := p.status(); !st.KillSwitch.On || st.KillSwitch.Reason != tenant.ReasonKillSwitch {
			t.Errorf("admin state: %+v", st.KillSwitch)
		}
		p.adminJSON(`{"action":"off"}`)
		want(t, "acme after", p.do("GET", "/products", "", "X-Tenant-ID: acme"), 200, tenant.Canary, tenant.ReasonTenantCanary, "")
	})

	t.Run("metrics", func(t *testing.T) {
		a := p.adminDo("GET", "/metrics", "")
		for _, name := range []string{"canary_fallback_attempts", "canary_fallback_fallbacks", "canary_db_routes", "http_server_request"} {
			if !strings.Contains(a.raw, name) {
				t.Errorf("/metrics has no %s", name)
			}
		}
	})

	// Last: an open console (its event stream) does not hold the shop's stop.
	t.Run("console stream at stop", func(t *testing.T) {
		resp, err := http.Get(p.adminURL + "/admin/canary/events")
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		r := bufio.NewReader(resp.Body)
		for {
			line, err := r.ReadString('\n')
			if err != nil {
				t.Fatalf("reading the event stream: %v", err)
			}
			if strings.HasPrefix(line, "data: {") {
				break
			}
		}
		start := time.Now()
		p.stop()
		if d := time.Since(start); d > 5*time.Second {
			t.Errorf("the shop took %v to stop with a console open, want well under its 10 s grace", d)
		}
		if _, err := io.Copy(io.Discard, r); err != nil {
			t.Logf("stream end: %v", err)
		}
	})
}

func TestBadStart(t *testing.T) {
	busy, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	dir := t.TempDir()
	type badStart struct {
		name string
		args []string
		code int
		msg  string
	}
	tests := []badStart{
		{"unknown flag", []string{"-nope"}, exitUsage, "flag provided but not defined: -nope"},
		{"bad address", []string{"-http", "8080"}, exitUsage, `-http (or DEMO_SHOP_HTTP): "8080" is not host:port`},
		{"replica without primary", []string{"-pg-replica", "postgres://x"}, exitUsage, "-pg-replica (or DEMO_SHOP_PG_REPLICA) needs -pg-primary"},
		{"stray argument", []string{"serve"}, exitUsage, `unexpected argument "serve"`},
		{"port in use", []string{"-http", busy.Addr().String(), "-grpc", "127.0.0.1:0", "-db", filepath.Join(dir, "a.db")}, exitError, "-http: listen tcp"},
		{"database unreachable", []string{"-http", "127.0.0.1:0", "-grpc", "127.0.0.1:0",
			"-pg-primary", "postgres://demo:secret@127.0.0.1:1/shop?connect_timeout=2"}, exitError, "-pg-primary: cannot open the database"},
		{"redis unreachable", []string{"-http", "127.0.0.1:0", "-grpc", "127.0.0.1:0", "-db", filepath.Join(dir, "b.db"),
			"-redis", "127.0.0.1:1"}, exitError, "-redis: cannot reach Redis at 127.0.0.1:1"},
		{"bad plan", []string{"-http", "127.0.0.1:0", "-grpc", "127.0.0.1:0", "-db", filepath.Join(dir, "c.db"),
			"-plan", filepath.Join(dir, "missing.yaml")}, exitError, "-plan:"},
	}
	if !servicesBuilt {
		// -tags demo_embedded (make demo): the service flags are refused
		// before anything starts, naming the flag and the way out.
		for i, tt := range tests {
			switch tt.name {
			case "database unreachable":
				tests[i].code, tests[i].msg = exitUsage, "-pg-primary (or DEMO_SHOP_PG_PRIMARY): this demo-shop was built with -tags demo_embedded"
			case "redis unreachable":
				tests[i].code, tests[i].msg = exitUsage, "-redis (or DEMO_SHOP_REDIS): this demo-shop was built with -tags demo_embedded"
			case "replica without primary":
				tests[i].msg = "-pg-replica (or DEMO_SHOP_PG_REPLICA): this demo-shop was built with -tags demo_embedded"
			}
		}
		tests = append(tests,
			badStart{"etcd in an embedded build", []string{"-etcd", "127.0.0.1:2379"}, exitUsage, "go run ./cmd/demo-shop -etcd"},
			badStart{"mysql in an embedded build", []string{"-mysql-primary", "u@tcp(127.0.0.1:1)/x"}, exitUsage,
				"-mysql-primary (or DEMO_SHOP_MYSQL_PRIMARY): this demo-shop was built with -tags demo_embedded"})
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cmd := exec.Command(binary(t), tt.args...)
			cmd.Env = cleanEnv()
			var stderr bytes.Buffer
			cmd.Stderr = &stderr
			err := cmd.Run()
			code := cmd.ProcessState.ExitCode()
			if err == nil || code != tt.code {
				t.Errorf("exit code %d (%v), want %d", code, err, tt.code)
			}
			if !strings.Contains(stderr.String(), tt.msg) {
				t.Errorf("stderr does not say %q:\n%s", tt.msg, stderr.String())
			}
			if s := stderr.String(); strings.Contains(s, "goroutine ") || strings.Contains(s, "panic") || strings.Contains(s, "secret") {
				t.Errorf("stderr has a stack trace or a password:\n%s", s)
			}
		})
	}
}
