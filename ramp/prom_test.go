package ramp_test

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/api"
	promv1 "github.com/prometheus/client_golang/api/prometheus/v1"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/prometheus/common/model"

	"github.com/reqcanary/canary"
	"github.com/reqcanary/canary/internal/testenv"
	"github.com/reqcanary/canary/ramp"
)

// promService is a test service whose /metrics the test Prometheus scrapes,
// exposing canary_test_error_ratio{test="<unique>"}.
type promService struct {
	label string
	ratio prometheus.Gauge
}

func newPromService(t *testing.T) *promService {
	t.Helper()
	url := testenv.PrometheusURL(t)
	reg := prometheus.NewRegistry()
	s := &promService{label: fmt.Sprintf("%s-%d", strings.ReplaceAll(t.Name(), "/", "_"), time.Now().UnixNano())}
	s.ratio = prometheus.NewGauge(prometheus.GaugeOpts{Name: "canary_test_error_ratio", Help: "canary error ratio of a test service"})
	reg.MustRegister(s.ratio)
	s.ratio.Set(0.01)
	srv := httptest.NewServer(promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	t.Cleanup(srv.Close)
	testenv.PrometheusTarget(t, strings.TrimPrefix(srv.URL, "http://"), map[string]string{"test": s.label})

	// Wait until Prometheus has scraped it.
	tr := &http.Transport{}
	defer tr.CloseIdleConnections()
	cli, err := api.NewClient(api.Config{Address: url, RoundTripper: tr})
	if err != nil {
		t.Fatal(err)
	}
	papi := promv1.NewAPI(cli)
	deadline := time.Now().Add(30 * time.Second)
	for {
		v, _, _, err := papi.Query(context.Background(), s.query(), time.Now())
		if vec, ok := v.(model.Vector); err == nil && ok && len(vec) == 1 {
			return s
		}
		if time.Now().After(deadline) {
			t.Fatalf("Prometheus at %s did not scrape the test service within 30s (last: %v, %v)", url, v, err)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

func (s *promService) query() string {
	return fmt.Sprintf(`max(canary_test_error_ratio{test=%q})`, s.label)
}

func promPlan(query, onFailure, onError string) string {
	return fmt.Sprintf(`salt: s
canary_percent: 0
ramp:
  steps: [10%% 1s, 20%% 1s, 50%% 1h]
  check_interval: 100ms
  on_failure: %s
  gates:
    prometheus:
      - name: error-ratio
        query: '%s'
        max: 0.05
        tries: 3
        on_error: %s
`, onFailure, query, onError)
}

func TestPrometheusGateBreachRollsBack(t *testing.T) {
	svc := newPromService(t)
	prefix := testPrefix(t)
	f := newFleet(t, prefix, 1, promPlan(svc.query(), "rollback", "pause"))
	c, _ := startController(t, prefix, "ctl", etcdClient(t), func(cfg *ramp.Config) {
		cfg.PrometheusURL = testenv.PrometheusURL(t)
	})
	if _, err := c.Start(ctxT(t, 5*time.Second), alice); err != nil {
		t.Fatal(err)
	}
	// The gate passes: the ramp reaches step 2 and then its last step.
	for {
		st := waitPhase(t, c, 20*time.Second, ramp.PhaseRunning, ramp.PhaseRolledBack)
		if st.Phase != ramp.PhaseRunning {
			t.Fatalf("ramp %s before the breach: %s", st.Phase, st.Reason)
		}
		if st.Step == 2 && st.Applied {
			if g := st.Gates; len(g) == 1 && g[0].Verdict == "pass" && g[0].Value == 0.01 || len(g) == 0 {
				break
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	svc.ratio.Set(0.2) // the canary now errs: above max 0.05
	st := waitPhase(t, c, 20*time.Second, ramp.PhaseRolledBack, ramp.PhasePaused, ramp.PhaseDone)
	if st.Phase != ramp.PhaseRolledBack || !strings.Contains(st.Reason, "gate prometheus:error-ratio failed at step 3/3") ||
		!strings.Contains(st.Reason, "0.2 is above the maximum 0.05") || !strings.Contains(st.Reason, "failed check 3 of 3") {
		t.Fatalf("after the breach: %s: %s", st.Phase, st.Reason)
	}
	waitAll(t, f.engines, time.Second, func(e *canary.Engine) bool { p := e.Plan(); return p.KillSwitch && p.CanaryPercent == 0 })
	if got := stepNotes(rampHistory(t, f.store)); !slices.Equal(got, []string{"1", "2", "3"}) {
		t.Fatalf("steps = %v", got)
	}
}

// A Prometheus that does not answer is a failed check, never a pass: the
// ramp, configured to roll back on a breach but pause on an outage
// (on_error: pause), pauses and does not advance.
func TestPrometheusOutagePausesNeverAdvances(t *testing.T) {
	svc := newPromService(t)
	prefix := testPrefix(t)
	proxy := testenv.NewFaultProxy(t, strings.TrimPrefix(testenv.PrometheusURL(t), "http://"))
	f := newFleet(t, prefix, 1, promPlan(svc.query(), "rollback", "pause"))
	c, _ := startController(t, prefix, "ctl", etcdClient(t), func(cfg *ramp.Config) {
		cfg.PrometheusURL = "http://" + proxy.Addr()
		cfg.PrometheusTimeout = 300 * time.Millisecond
	})
	proxy.Set(testenv.ProxyCut)
	if _, err := c.Start(ctxT(t, 5*time.Second), alice); err != nil {
		t.Fatal(err)
	}
	st := waitPhase(t, c, 20*time.Second, ramp.PhasePaused, ramp.PhaseRolledBack, ramp.PhaseDone)
	if st.Phase != ramp.PhasePaused || st.Step != 0 || !strings.Contains(st.Reason, "query failed") {
		t.Fatalf("during the outage: %s at step %d: %s", st.Phase, st.Step+1, st.Reason)
	}
	if got := stepNotes(rampHistory(t, f.store)); !slices.Equal(got, []string{"1"}) {
		t.Fatalf("steps = %v; an outage must never advance the ramp", got)
	}
	if p := f.engines[0].Plan(); p.CanaryPercent != 10 || p.KillSwitch {
		t.Fatalf("paused plan: %g%%, kill %v", p.CanaryPercent, p.KillSwitch)
	}
	// Prometheus back: an operator resumes, and the ramp goes on.
	proxy.Set(testenv.ProxyPass)
	if _, err := c.Resume(ctxT(t, 5*time.Second), alice); err != nil {
		t.Fatal(err)
	}
	waitAll(t, f.engines, 10*time.Second, func(e *canary.Engine) bool { return e.Plan().CanaryPercent == 50 })
}

func TestPrometheusNoDataFails(t *testing.T) {
	url := testenv.PrometheusURL(t)
	prefix := testPrefix(t)
	f := newFleet(t, prefix, 1, promPlan(`max(canary_test_error_ratio{test="nobody-publishes-this"})`, "rollback", "rollback"))
	c, _ := startController(t, prefix, "ctl", etcdClient(t), func(cfg *ramp.Config) { cfg.PrometheusURL = url })
	if _, err := c.Start(ctxT(t, 5*time.Second), alice); err != nil {
		t.Fatal(err)
	}
	st := waitPhase(t, c, 20*time.Second, ramp.PhaseRolledBack, ramp.PhasePaused, ramp.PhaseDone)
	if st.Phase != ramp.PhaseRolledBack || st.Step != 0 || !strings.Contains(st.Reason, "no data") {
		t.Fatalf("no data: %s at step %d: %s", st.Phase, st.Step+1, st.Reason)
	}
	waitAll(t, f.engines, time.Second, func(e *canary.Engine) bool { return e.Plan().KillSwitch })
}
