package ramp

import (
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strconv"
	"strings"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	otellog "go.opentelemetry.io/otel/log"
	"go.opentelemetry.io/otel/metric"

	"github.com/reqcanary/canary/planstore"
)

// Defaults of a [Config].
const (
	DefaultPrefix        = "/canary/ramp/"
	DefaultAuthor        = "ramp-controller"
	DefaultLeaseTTL      = 10 * time.Second
	DefaultOpTimeout     = 3 * time.Second
	DefaultRetryInterval = time.Second
	DefaultFiguresMaxAge = 5 * time.Second
	DefaultPromTimeout   = 5 * time.Second
)

// Errors of the controller, matched with errors.Is.
var (
	// ErrConflict: the ramp's state changed between the read and the
	// write (another operator, the leader); read the status and retry.
	ErrConflict = errors.New("ramp: state changed concurrently")
	// ErrUnavailable: etcd could not be reached or did not answer in time.
	// It also matches planstore.ErrUnavailable.
	ErrUnavailable = fmt.Errorf("ramp: etcd unavailable: %w", planstore.ErrUnavailable)
	// ErrNoRamp: the plan in force has no ramp section.
	ErrNoRamp = errors.New("ramp: the plan has no ramp section")
	// ErrPhase: the action does not apply in the ramp's phase (resuming a
	// ramp that is not paused, starting one that runs...).
	ErrPhase = errors.New("ramp: action not allowed in this phase")
)

// Config configures [New]. Client and Store are required; every other
// field has a default.
type Config struct {
	// Client is the etcd client of the election, the ramp's state and the
	// fleet's figures. The controller does not close it.
	Client *clientv3.Client
	// Store is the plan store the ramp reads its steps from and writes
	// each step to. The controller does not close it.
	Store planstore.Store
	// Prefix of the controller's keys: Prefix+"election/", Prefix+"state",
	// Prefix+"figures/<instance>". Publishers of the same fleet must use
	// the same prefix. Default DefaultPrefix.
	Prefix string
	// Instance names this controller (the election's value, the state's
	// UpdatedBy). Default: host name and process id.
	Instance string
	// Author is the author of the plan writes the controller makes on its
	// own (steps, rollbacks). Default DefaultAuthor.
	Author string
	// LeaseTTL is the election lease's time to live, whole seconds, at
	// least 2s: a crashed leader is replaced within it. Default 10s.
	LeaseTTL time.Duration
	// OpTimeout bounds each etcd call. Default 3s.
	OpTimeout time.Duration
	// RetryInterval is the pause after a failed campaign. Default 1s.
	RetryInterval time.Duration
	// FiguresMaxAge: published figures older than this are left out of the
	// fleet's sum. Default 5s.
	FiguresMaxAge time.Duration
	// PrometheusURL is the address of the Prometheus server the plan's
	// Prometheus gates query ("http://127.0.0.1:9090"). Without it every
	// Prometheus check fails ("no Prometheus configured"), never passes.
	PrometheusURL string
	// PrometheusTimeout bounds each query. Default 5s.
	PrometheusTimeout time.Duration
	// MeterProvider and LoggerProvider receive the controller's metrics
	// and events (see docs/ramp.md). Default: the global providers.
	MeterProvider  metric.MeterProvider
	LoggerProvider otellog.LoggerProvider
	// Logger logs what the controller does. Default slog.Default().
	Logger *slog.Logger
}

// withDefaults checks cfg, naming the field, and fills in the defaults.
func (cfg Config) withDefaults() (Config, error) {
	if cfg.Client == nil {
		return cfg, errors.New("ramp: Config.Client is required (an etcd client)")
	}
	if cfg.Store == nil {
		return cfg, errors.New("ramp: Config.Store is required (the fleet's plan store)")
	}
	if cfg.Prefix == "" {
		cfg.Prefix = DefaultPrefix
	}
	if !strings.HasSuffix(cfg.Prefix, "/") {
		return cfg, fmt.Errorf("ramp: Config.Prefix must end with '/', got %q", cfg.Prefix)
	}
	if cfg.Instance == "" {
		cfg.Instance = defaultInstance()
	}
	if cfg.Author == "" {
		cfg.Author = DefaultAuthor
	}
	for _, d := range []struct {
		name string
		p    *time.Duration
		def  time.Duration
	}{{"LeaseTTL", &cfg.LeaseTTL, DefaultLeaseTTL}, {"OpTimeout", &cfg.OpTimeout, DefaultOpTimeout},
		{"RetryInterval", &cfg.RetryInterval, DefaultRetryInterval}, {"FiguresMaxAge", &cfg.FiguresMaxAge, DefaultFiguresMaxAge},
		{"PrometheusTimeout", &cfg.PrometheusTimeout, DefaultPromTimeout}} {
		if *d.p < 0 {
			return cfg, fmt.Errorf("ramp: Config.%s must not be negative, got %v", d.name, *d.p)
		}
		if *d.p == 0 {
			*d.p = d.def
		}
	}
	if cfg.LeaseTTL < 2*time.Second || cfg.LeaseTTL%time.Second != 0 {
		return cfg, fmt.Errorf("ramp: Config.LeaseTTL must be whole seconds, at least 2s, got %v", cfg.LeaseTTL)
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	return cfg, nil
}

func defaultInstance() string {
	h, err := os.Hostname()
	if err != nil || h == "" {
		h = "unknown-host"
	}
	return h + ":" + strconv.Itoa(os.Getpid())
}
