package console_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"image/png"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/log"
	"github.com/chromedp/cdproto/runtime"
	"github.com/chromedp/chromedp"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.opentelemetry.io/otel/attribute"
	otellog "go.opentelemetry.io/otel/log"
	"go.opentelemetry.io/otel/log/embedded"
	"go.uber.org/zap"

	"github.com/reqcanary/canary"
	"github.com/reqcanary/canary/internal/testenv"
	"github.com/reqcanary/canary/planstore"
	"github.com/reqcanary/canary/planstore/etcdstore"
	"github.com/reqcanary/canary/tenant"
)

const (
	token = "console-test-token"
	salt  = "console-secret-salt"
)

// planText is a plan with a guard that never trips (its sample minimums are
// out of reach), so that traffic moves the figures and nothing else.
func planText(pct float64) string {
	return fmt.Sprintf(`salt: %s
canary_percent: %g
tenants:
  canary: [acme]
override:
  trusted_cidrs: ["10.9.8.0/24"]
guard:
  enabled: true
  min_canary_samples: 1000000
  min_stable_samples: 1000000
  latency_min_samples: 1000000
  unit_samples: 255
`, salt, pct)
}

// fixture is an engine on a real etcd plan store, its admin handler mounted
// at /admin/canary on a test server, and a browser tab.
type fixture struct {
	e     *canary.Engine
	store planstore.Store
	srv   *httptest.Server
	ui    string // the console's URL
	tab   context.Context
	audit *recordingLogs
	msgs  *consoleLog
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	eps := testenv.EtcdEndpoints(t)
	prefix := fmt.Sprintf("/canary-test/console/%s-%d-%d/", t.Name(), os.Getpid(), time.Now().UnixNano())
	store, err := etcdstore.New(etcdstore.Config{Endpoints: eps, Prefix: prefix, Validate: canary.ValidatePlan,
		OpTimeout: 2 * time.Second, RetryInterval: 100 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = store.Close()
		cli, err := clientv3.New(clientv3.Config{Endpoints: eps, DialTimeout: 3 * time.Second, Logger: zap.NewNop()})
		if err != nil {
			return
		}
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_, _ = cli.Delete(ctx, prefix, clientv3.WithPrefix())
		_ = cli.Close()
	})
	ctx := t.Context()
	for i, pct := range []float64{10, 20} {
		if _, err := store.Apply(ctx, []byte(planText(pct)), int64(i), planstore.Change{Author: "ana", Note: fmt.Sprintf("step %d", i+1)}); err != nil {
			t.Fatal(err)
		}
	}
	audit := &recordingLogs{}
	e, err := canary.New(canary.WithPlanStore(store), canary.WithUserHashKey([]byte("0123456789abcdef0123456789abcdef")),
		canary.WithLoggerProvider(audit), canary.WithLogger(slog.New(slog.DiscardHandler)))
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, 5*time.Second, "the engine follows the store's version 2", func() bool {
		st := e.Status()
		return st.PlanStore != nil && st.PlanStore.Version == 2
	})
	mux := http.NewServeMux()
	h := canary.AdminHandler(e, canary.WithAdminToken(token))
	mux.Handle("/admin/canary", h)
	mux.Handle("/admin/canary/", h)
	srv := httptest.NewServer(mux)
	t.Cleanup(func() {
		_ = e.Close() // ends the page's event stream
		srv.Close()
	})
	f := &fixture{e: e, store: store, srv: srv, ui: srv.URL + "/admin/canary/ui/", audit: audit, msgs: &consoleLog{}}
	f.tab = newTab(t) // closed before the server (cleanups run last first)
	if err := chromedp.Listen(f.tab, f.msgs.add); err != nil {
		t.Fatal(err)
	}
	return f
}

// open loads the console and waits until its event stream is live.
func (f *fixture) open(t *testing.T) {
	t.Helper()
	f.do(t, "open the console", chromedp.EmulateViewport(1280, 900), chromedp.Navigate(f.ui),
		chromedp.WaitVisible(chromedp.ID("overview")))
	f.waitText(t, "live", "live")
}

func (f *fixture) do(t *testing.T, what string, actions ...chromedp.Action[chromedp.Void]) {
	t.Helper()
	ctx, cancel := context.WithTimeout(f.tab, 20*time.Second)
	defer cancel()
	if err := chromedp.Do(ctx, actions...); err != nil {
		t.Fatalf("%s: %v (page log: %v)", what, err, f.msgs.all())
	}
}

func (f *fixture) text(t *testing.T, id string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(f.tab, 10*time.Second)
	defer cancel()
	s, err := chromedp.Run(ctx, chromedp.TextContent(chromedp.ID(id)))
	if err != nil {
		t.Fatalf("text of #%s: %v", id, err)
	}
	return s
}

// waitText waits until the text of #id contains want.
func (f *fixture) waitText(t *testing.T, id, want string) string {
	t.Helper()
	var got string
	waitFor(t, 10*time.Second, fmt.Sprintf("#%s contains %q", id, want), func() bool {
		got = f.text(t, id)
		return strings.Contains(got, want)
	})
	return got
}

// confirm clicks a button and then the confirmation dialog's button ok.
func (f *fixture) confirm(t *testing.T, button, ok string) {
	t.Helper()
	f.do(t, "click #"+button, chromedp.Click(chromedp.ID(button)), chromedp.WaitVisible(chromedp.ID("confirm")),
		chromedp.Click(chromedp.ID(ok)), chromedp.WaitNotVisible(chromedp.ID("confirm")))
}

func (f *fixture) setToken(t *testing.T, tok string) {
	t.Helper()
	f.do(t, "type the token", chromedp.SetValue(chromedp.ID("token"), tok), chromedp.Click(chromedp.ID("token-set")))
}

// screenshot takes a PNG of the element #id; with CANARY_UPDATE_SCREENSHOTS=1
// it is written to docs/img/console-<name>.png.
func (f *fixture) screenshot(t *testing.T, id, name string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(f.tab, 20*time.Second)
	defer cancel()
	b, err := chromedp.Run(ctx, chromedp.Screenshot(chromedp.ID(id)))
	if err != nil {
		t.Fatalf("screenshot of #%s: %v", id, err)
	}
	img, err := png.Decode(bytes.NewReader(b))
	if err != nil || img.Bounds().Dx() < 200 || img.Bounds().Dy() < 80 {
		t.Fatalf("screenshot of #%s: not a PNG of a panel: %v", id, err)
	}
	if os.Getenv("CANARY_UPDATE_SCREENSHOTS") == "1" {
		if err := os.WriteFile(filepath.Join("..", "docs", "img", "console-"+name+".png"), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

func waitFor(t *testing.T, d time.Duration, what string, ok func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !ok() {
		if time.Now().After(deadline) {
			t.Fatalf("not within %v: %s", d, what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// TestConsolePageLoads: the page loads with no console error, shows the
// overview and keeps the secrets out without a token.
func TestConsolePageLoads(t *testing.T) {
	f := newFixture(t)
	f.open(t)
	if got := f.text(t, "plan-version"); got == "" {
		t.Fatal("no plan version")
	}
	if got := f.text(t, "store-version"); !strings.HasPrefix(got, "2 ") || !strings.Contains(got, "step 2") {
		t.Errorf("store version: %q, want 2 (…step 2)", got)
	}
	if got := f.text(t, "canary-share"); got != "20 %" {
		t.Errorf("canary share: %q, want 20 %%", got)
	}
	if got := f.text(t, "kill-state"); got != "off" {
		t.Errorf("kill switch: %q, want off", got)
	}
	if got := f.text(t, "guard-state"); !strings.Contains(got, "armed") || !strings.Contains(got, "window 10s") {
		t.Errorf("guard: %q, want armed, window 10s", got)
	}
	time.Sleep(1500 * time.Millisecond) // a few events
	html, err := chromedp.Run(f.tab, chromedp.OuterHTML(chromedp.CSS("html")))
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(html, salt) || strings.Contains(html, "10.9.8.0") {
		t.Error("the page shows the salt or the trusted CIDRs without a token")
	}
	if m := f.msgs.errors(); len(m) > 0 {
		t.Errorf("console errors: %v", m)
	}
	f.screenshot(t, "overview", "overview")
}

// TestConsoleChartMoves: traffic changes the live chart within seconds.
func TestConsoleChartMoves(t *testing.T) {
	f := newFixture(t)
	f.open(t)
	// Healthy traffic on both: the lines lie together near zero.
	ctx := context.Background()
	for range 100 {
		f.e.RecordOutcome(ctx, tenant.Canary, false, 10*time.Millisecond)
		f.e.RecordOutcome(ctx, tenant.Stable, false, 10*time.Millisecond)
	}
	f.waitText(t, "fig-canary", "100 req, 0.00% failed")
	f.waitPoints(t, f.points(t)+3)
	before := f.polyline(t, "chart-fail", "line-canary")
	// Then the canary fails 60 % of the time and is slow; stable stays fine.
	for i := range 100 {
		f.e.RecordOutcome(ctx, tenant.Canary, i%10 < 6, 80*time.Millisecond)
		f.e.RecordOutcome(ctx, tenant.Stable, false, 10*time.Millisecond)
	}
	got := f.waitText(t, "fig-canary", "200 req, 30.00% failed")
	var p95 float64
	if i := strings.Index(got, "p95 "); i < 0 {
		t.Errorf("canary figures %q: no p95", got)
	} else if _, err := fmt.Sscanf(got[i:], "p95 %g ms", &p95); err != nil || p95 < 60 || p95 > 100 {
		t.Errorf("canary figures %q, want p95 about 80 ms", got)
	}
	var after string
	waitFor(t, 5*time.Second, "the canary's failure line moves", func() bool {
		after = f.polyline(t, "chart-fail", "line-canary")
		return after != before && lastY(after) < lastY(before)
	})
	if p95 := f.polyline(t, "chart-p95", "line-canary"); lastY(p95) >= lastY(f.polyline(t, "chart-p95", "line-stable")) {
		t.Errorf("p95 chart: canary (%s) not above stable", p95)
	}
	if m := f.msgs.errors(); len(m) > 0 {
		t.Errorf("console errors: %v", m)
	}
	f.waitPoints(t, f.points(t)+2)
	f.screenshot(t, "live-panel", "chart")
}

// TestConsoleKillSwitch: the kill switch button is refused without the
// token, turns the switch on with it, and the action is audited as the
// API's.
func TestConsoleKillSwitch(t *testing.T) {
	f := newFixture(t)
	f.open(t)
	f.confirm(t, "kill-on", "confirm-ok")
	msg := f.waitText(t, "action-msg", "refused")
	if !strings.Contains(msg, "401") && !strings.Contains(msg, "unauthorized") {
		t.Errorf("without a token: %q, want a 401 refusal", msg)
	}
	if f.e.Status().KillSwitch.On {
		t.Fatal("the kill switch turned on without a token")
	}
	// Cancelled: nothing sent.
	f.setToken(t, token)
	f.waitText(t, "token-state", "token accepted")
	f.confirm(t, "kill-on", "confirm-cancel")
	f.waitText(t, "action-msg", "cancelled")
	if f.e.Status().KillSwitch.On {
		t.Fatal("the kill switch turned on though the operator cancelled")
	}
	f.do(t, "note", chromedp.SetValue(chromedp.ID("kill-note"), "bad deploy"), chromedp.SetValue(chromedp.ID("author"), "ana"))
	f.confirm(t, "kill-on", "confirm-ok")
	f.waitText(t, "action-msg", "on: done")
	ks := f.e.Status().KillSwitch
	if !ks.On || len(ks.Sources) != 1 || ks.Sources[0] != canary.KillSourceOperator {
		t.Fatalf("kill switch after the button: %+v, want on by the operator", ks)
	}
	f.waitText(t, "kill-state", "ON")
	f.waitText(t, "kill-sources", "operator")
	f.waitText(t, "kill-now", "ON, held by operator")
	var rec *otellog.Record
	for _, r := range f.audit.records() {
		if r.EventName() == canary.EventKillSwitchChange && attr(r, "canary.admin.action") == "kill_switch.on" &&
			attr(r, "canary.admin.outcome") == "done" {
			rec = &r
		}
	}
	if rec == nil || attr(*rec, "canary.admin.note") != "bad deploy" || attr(*rec, "canary.admin.author") != "ana" {
		t.Errorf("no audit record kill_switch.on done by ana with the note: %v", f.audit.records())
	}
	f.screenshot(t, "actions", "kill-switch")
	f.confirm(t, "kill-off", "confirm-ok")
	f.waitText(t, "kill-state", "off")
	if f.e.Status().KillSwitch.On {
		t.Fatal("the kill switch stayed on after the off button")
	}
}

// TestConsoleExplain: explain answers with the token, as Engine.Explain
// does, and is refused without it.
func TestConsoleExplain(t *testing.T) {
	f := newFixture(t)
	f.open(t)
	f.do(t, "explain without a token", chromedp.SetValue(chromedp.ID("explain-tenant"), "acme"),
		chromedp.SetValue(chromedp.ID("explain-user"), "u-42"), chromedp.Click(chromedp.ID("explain-btn")))
	f.waitText(t, "explain-msg", "refused")
	f.setToken(t, token)
	f.waitText(t, "token-state", "token accepted")
	f.do(t, "explain", chromedp.Click(chromedp.ID("explain-btn")))
	want, err := f.e.Explain("acme", "u-42")
	if err != nil {
		t.Fatal(err)
	}
	f.waitText(t, "explain-cohort", string(want.Cohort))
	if got := f.text(t, "explain-reason"); got != want.Reason {
		t.Errorf("reason %q, want %q", got, want.Reason)
	}
	if got := f.text(t, "explain-bucket"); !strings.HasPrefix(got, fmt.Sprint(want.Bucket)+" ") {
		t.Errorf("bucket %q, want %d", got, want.Bucket)
	}
	if got := f.text(t, "explain-hash"); got != want.UserHash {
		t.Errorf("user hash %q, want %q", got, want.UserHash)
	}
	// An id the engine refuses: the field is named.
	f.do(t, "explain a bad tenant", chromedp.SetValue(chromedp.ID("explain-tenant"), strings.Repeat("x", 300)),
		chromedp.Click(chromedp.ID("explain-btn")))
	f.waitText(t, "explain-msg", "tenant")
	f.do(t, "explain again", chromedp.SetValue(chromedp.ID("explain-tenant"), "acme"), chromedp.Click(chromedp.ID("explain-btn")))
	f.waitText(t, "explain-cohort", string(want.Cohort))
	f.screenshot(t, "explain", "explain")
}

// TestConsoleRollback: with the token the plan panel shows the plan in
// force, its history and a diff, and rolls back through the real etcd
// store; every engine on it follows.
func TestConsoleRollback(t *testing.T) {
	f := newFixture(t)
	f.open(t)
	f.setToken(t, token)
	f.waitText(t, "token-state", "token accepted")
	f.do(t, "load the plan", chromedp.Click(chromedp.ID("plan-load")))
	f.waitText(t, "plan-msg", "plan version 2 loaded")
	if got := f.text(t, "plan-yaml"); got != planText(20) {
		t.Errorf("plan in force %q, want the store's version 2", got)
	}
	f.do(t, "diff 1 → 2", chromedp.Click(chromedp.ID("diff-show")))
	diff := f.waitText(t, "diff-out", "canary_percent: 20")
	if !strings.Contains(diff, "-canary_percent: 10") {
		t.Errorf("diff: %q", diff)
	}
	f.screenshot(t, "plan", "plan")
	f.confirm(t, "rollback-1", "confirm-ok")
	f.waitText(t, "plan-msg", "now version 3")
	p, err := f.store.Get(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if p.Version != 3 || string(p.Data) != planText(10) || p.RolledBackTo != 1 || p.Author != "console" {
		t.Fatalf("store after the rollback: version %d, rolled back to %d, by %q, plan %q", p.Version, p.RolledBackTo, p.Author, p.Data)
	}
	waitFor(t, 5*time.Second, "the engine runs the rolled back plan", func() bool { return f.e.Status().Plan.CanaryPercent == 10 })
	f.waitText(t, "canary-share", "10 %")
	f.waitText(t, "store-version", "3 ")
	// A stale rollback (another operator wrote meanwhile) is refused, naming the versions.
	if _, err := f.store.Apply(t.Context(), []byte(planText(30)), 3, planstore.Change{Author: "bo", Note: "meanwhile"}); err != nil {
		t.Fatal(err)
	}
	f.confirm(t, "rollback-2", "confirm-ok")
	if msg := f.waitText(t, "plan-msg", "409"); !strings.Contains(msg, "version_conflict") {
		t.Errorf("stale rollback: %q", msg)
	}
	if p, _ := f.store.Get(t.Context()); p.Version != 4 {
		t.Fatalf("a refused rollback wrote version %d", p.Version)
	}

	// Apply from the page: an invalid plan is refused with the parser's
	// line-numbered message and writes nothing; a valid one is written.
	f.do(t, "reload", chromedp.Click(chromedp.ID("plan-load")))
	f.waitText(t, "plan-msg", "plan version 4 loaded")
	f.do(t, "an invalid plan", chromedp.SetValue(chromedp.ID("apply-yaml"), "salt: x\ncanary_percent: 250\n"))
	f.confirm(t, "apply-btn", "confirm-ok")
	if msg := f.waitText(t, "plan-msg", "422"); !strings.Contains(msg, "line 2") || !strings.Contains(msg, "canary_percent") {
		t.Errorf("invalid apply: %q, want the line and key", msg)
	}
	f.do(t, "a valid plan", chromedp.SetValue(chromedp.ID("apply-yaml"), planText(5)), chromedp.SetValue(chromedp.ID("apply-note"), "five"))
	f.confirm(t, "apply-btn", "confirm-ok")
	f.waitText(t, "plan-msg", "applied: version 5")
	if p, _ := f.store.Get(t.Context()); p.Version != 5 || p.Note != "five" || string(p.Data) != planText(5) {
		t.Errorf("store after apply: version %d note %q", p.Version, p.Note)
	}
	waitFor(t, 5*time.Second, "the engine runs the applied plan", func() bool { return f.e.Status().Plan.CanaryPercent == 5 })
}

// polyline returns the points of the chart's line.
func (f *fixture) polyline(t *testing.T, chart, line string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(f.tab, 10*time.Second)
	defer cancel()
	pts, err := chromedp.Run(ctx, chromedp.Evaluate[string](
		fmt.Sprintf(`document.querySelector('#%s .%s').getAttribute('points')`, chart, line)))
	if err != nil {
		t.Fatalf("points of %s %s: %v", chart, line, err)
	}
	return pts
}

// points is how many points the failure chart has.
func (f *fixture) points(t *testing.T) int {
	t.Helper()
	ctx, cancel := context.WithTimeout(f.tab, 5*time.Second)
	defer cancel()
	got, err := chromedp.Run(ctx, chromedp.Evaluate[string](`document.getElementById('chart-fail').dataset.points || '0'`))
	if err != nil {
		t.Fatalf("points of the chart: %v", err)
	}
	var k int
	_, _ = fmt.Sscan(got, &k)
	return k
}

// waitPoints waits until the failure chart has n points.
func (f *fixture) waitPoints(t *testing.T, n int) {
	t.Helper()
	waitFor(t, time.Duration(n+3)*time.Second, fmt.Sprintf("%d points on the chart", n), func() bool { return f.points(t) >= n })
}

// lastY is the y of a polyline's last point (smaller is higher).
func lastY(points string) float64 {
	f := strings.Fields(points)
	if len(f) == 0 {
		return 1e9
	}
	var x, y float64
	_, _ = fmt.Sscanf(f[len(f)-1], "%g,%g", &x, &y)
	return y
}

// consoleLog keeps what the page wrote to its console.
type consoleLog struct {
	mu   sync.Mutex
	msgs []string
	errs []string
}

func (c *consoleLog) add(ev any) {
	var msg string
	isErr := false
	switch ev := ev.(type) {
	case *runtime.EventExceptionThrown:
		msg, isErr = "exception: "+ev.ExceptionDetails.Text, true
		if ev.ExceptionDetails.Exception != nil {
			msg += " " + ev.ExceptionDetails.Exception.Description
		}
	case *runtime.EventConsoleAPICalled:
		var parts []string
		for _, a := range ev.Args {
			b, _ := json.Marshal(a.Value)
			parts = append(parts, string(b)+a.Description)
		}
		msg = string(ev.Type) + ": " + strings.Join(parts, " ")
		isErr = ev.Type == "error" || ev.Type == "warning" || ev.Type == "assert"
	case *log.EventEntryAdded:
		msg = string(ev.Entry.Level) + " (" + string(ev.Entry.Source) + "): " + ev.Entry.Text + " " + ev.Entry.URL
		isErr = ev.Entry.Level == log.EntryLevelError || ev.Entry.Level == log.EntryLevelWarning
	default:
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.msgs = append(c.msgs, msg)
	if isErr {
		c.errs = append(c.errs, msg)
	}
}

func (c *consoleLog) errors() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]string(nil), c.errs...)
}

func (c *consoleLog) all() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]string(nil), c.msgs...)
}

// recordingLogs is an OpenTelemetry LoggerProvider that keeps the records
// (the admin handler's audit).
type recordingLogs struct {
	embedded.LoggerProvider
	mu   sync.Mutex
	recs []otellog.Record
}

func (p *recordingLogs) Logger(string, ...otellog.LoggerOption) otellog.Logger {
	return &recordingLogger{p: p}
}

func (p *recordingLogs) records() []otellog.Record {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]otellog.Record(nil), p.recs...)
}

type recordingLogger struct {
	embedded.Logger
	p *recordingLogs
}

func (l *recordingLogger) Emit(_ context.Context, r otellog.Record) {
	l.p.mu.Lock()
	l.p.recs = append(l.p.recs, r.Clone())
	l.p.mu.Unlock()
}

func (l *recordingLogger) Enabled(context.Context, otellog.EnabledParameters) bool { return true }

func attr(r otellog.Record, key string) string {
	var v string
	r.WalkAttributes(func(kv attribute.KeyValue) bool {
		if string(kv.Key) == key {
			v = kv.Value.AsString()
			return false
		}
		return true
	})
	return v
}
