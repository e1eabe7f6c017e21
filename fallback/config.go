package fallback

import (
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"time"

	"go.opentelemetry.io/otel/metric"

	"github.com/reqcanary/canary/tenant"
)

// Defaults applied by [NewTransport] to zero fields of [Config].
const (
	DefaultTimeout           = time.Second
	DefaultBudget            = 5 * time.Second
	DefaultCacheTimeout      = 20 * time.Millisecond
	DefaultMaxCacheBodyBytes = 1 << 20
	// DefaultMaxReplayBodyBytes is the default of Config.MaxReplayBodyBytes.
	DefaultMaxReplayBodyBytes = 1 << 20
	DefaultBreakerFailures    = 5
	DefaultBreakerDelay       = 10 * time.Second
)

// Config configures [NewTransport]. The zero value of every optional field is
// its documented default; Stable is the only required field.
type Config struct {
	// Name names the dependency: it is part of every cache key (so that two
	// transports sharing one Redis never read each other's answers) and the
	// value of the canary.dependency metric attribute. Default: the host of
	// Stable.
	Name string

	// Stable is the base URL of the stable version of the dependency
	// (required), e.g. "http://inventory-stable:8080" or "https://api/v1".
	// A request's scheme and host are replaced by the endpoint's, and the
	// endpoint's path, if any, is prefixed to the request's path; the Host
	// header is the endpoint's. Query and fragment are not allowed.
	Stable string
	// Canary is the base URL of the canary version (optional). When set,
	// requests of the canary cohort go there first; when empty, every
	// request starts at Stable.
	Canary string
	// Shadow is the base URL of a standby endpoint (optional), tried after
	// Stable.
	Shadow string

	// Transport performs the requests. Default: http.DefaultTransport. When
	// it is an *http.Transport, a non-idempotent request that timed out
	// before a connection was obtained is known not to have been sent.
	Transport http.RoundTripper

	// Timeout bounds each attempt, from sending the request to receiving the
	// response headers (reading the body is not bounded by it). It fires even
	// when the request's own deadline is later. Default: [DefaultTimeout].
	Timeout time.Duration
	// CohortTimeout overrides Timeout for the attempts made on behalf of a
	// cohort's requests, e.g. a tight timeout for the canary cohort so that
	// it falls back to stable quickly. Keys must be tenant.Stable or
	// tenant.Canary.
	CohortTimeout map[tenant.Cohort]time.Duration
	// Budget is the longest time the chain may take; tell your callers to
	// give requests at least this deadline. NewTransport rejects a Config
	// whose longest chain (the sum of the attempt timeouts of every
	// endpoint a request may visit, plus CacheTimeout when Cache is set)
	// exceeds it: failsafe-go skips a fallback once the request's context
	// is done, so a chain longer than the callers' deadline silently loses
	// its last steps. Default: [DefaultBudget].
	Budget time.Duration

	// Breaker configures the circuit breaker of each endpoint.
	Breaker BreakerConfig

	// Cache, when set, stores the last good GET/HEAD answers of Stable and
	// Shadow and serves them when every endpoint failed (stale-if-error).
	// See [Cache] for what is stored and under which key.
	Cache Cache
	// CacheTimeout bounds each cache read or write. When a request's
	// deadline is too close for an attempt's full timeout, the attempt is
	// shortened so that this much time is left for the cache. Default:
	// [DefaultCacheTimeout].
	CacheTimeout time.Duration
	// MaxCacheBodyBytes is the largest body stored in the cache; larger
	// answers are served but not stored. Default: [DefaultMaxCacheBodyBytes].
	MaxCacheBodyBytes int64
	// CacheVary lists request headers that are part of the cache key (e.g.
	// "Accept", "Accept-Language"). An answer whose Vary header names a
	// header not in this list, or is "*", is not stored.
	CacheVary []string
	// SessionHeaders names request headers that identify a user's session
	// besides Authorization and Cookie, which always do (e.g.
	// "X-Session-Token"). The answer to a request carrying any of them is
	// private: it is stored only under that user's own key (user hash and
	// the values of these headers), never served to another user or to an
	// anonymous request; see [Cache].
	SessionHeaders []string
	// MaxReplayBodyBytes is the largest request body kept in memory so that
	// it can be sent again to the next endpoint. A body declared larger
	// (Content-Length), or of unknown length that turns out larger once this
	// many bytes were read ahead, is streamed to one endpoint and never
	// replayed: if that attempt fails after the body was handed to it,
	// RoundTrip returns the failure (an [*Error] matching [ErrBodyNotReplayed]
	// and [ErrNotReplayed], or the 5xx answer). With a single endpoint in the
	// chain, bodies are never buffered. Default: [DefaultMaxReplayBodyBytes].
	MaxReplayBodyBytes int64

	// Compare, when set, enables shadow comparison: a sampled share of the
	// stable cohort's GETs is also sent to Canary in the background and the
	// two answers are compared. Requires Canary.
	Compare *CompareConfig

	// MeterProvider provides the meter of the metrics. Default:
	// otel.GetMeterProvider() at the time NewTransport is called.
	MeterProvider metric.MeterProvider
}

// BreakerConfig configures the circuit breaker of each endpoint. One breaker
// per endpoint is shared by all requests of a transport. A timeout, a
// transport error or a 5xx answer is a failure; a request canceled by its
// caller is not counted.
type BreakerConfig struct {
	// Failures is the number of failures, among the last Of attempts, that
	// opens the circuit. Default: [DefaultBreakerFailures].
	Failures uint
	// Of is the number of recent attempts Failures is counted over.
	// Default: Failures (that many consecutive failures).
	Of uint
	// Delay is how long the circuit stays open before it lets a trial
	// request through (half-open). Default: [DefaultBreakerDelay].
	Delay time.Duration
	// Successes is the number of successful trial requests that close a
	// half-open circuit; a failed trial opens it again. Default: 1.
	Successes uint
}

// CompareConfig configures shadow comparison. Comparisons run in the
// background: the caller's answer never waits for them. [Transport.Close]
// stops them.
type CompareConfig struct {
	// SampleRate is the share of eligible requests (GETs of the stable
	// cohort answered by Stable) that are also sent to Canary, in (0, 1].
	SampleRate float64
	// MaxInFlight bounds the comparisons running at once; a sampled request
	// that finds them all busy is not compared (counted as "dropped").
	// Default: 8.
	MaxInFlight int
	// Timeout bounds one comparison: the shadow request, reading its
	// answer, and waiting for the caller to finish reading the stable
	// answer. Default: 5s.
	Timeout time.Duration
	// MaxBodyBytes is the largest body compared; a comparison with a larger
	// body is counted as "skipped". Default: 1 MiB.
	MaxBodyBytes int64
	// IgnoreJSONFields lists JSON fields left out of the body comparison,
	// as dot-separated paths from the root of the document, where "*"
	// matches any object key or array index: "meta.requestId",
	// "items.*.updatedAt". They apply when both bodies are JSON; other
	// bodies are compared byte for byte.
	IgnoreJSONFields []string
	// Equal, when set, replaces the built-in comparison (status, then body
	// with IgnoreJSONFields). It is called from background goroutines and
	// must be safe for concurrent use.
	Equal func(stable, canary Answer) bool
	// OnMismatch, when set, is called for each mismatch, from a background
	// goroutine; it must be safe for concurrent use and should return
	// quickly (it holds a comparison slot).
	OnMismatch func(Mismatch)
}

// config is a validated Config with defaults applied.
type config struct {
	Config
	stable, canary, shadow *url.URL
	timeout                [2]time.Duration // by cohortIndex
	creds                  []string         // credential headers, canonical, sorted
}

// cohortIndex maps a cohort to an index of per-cohort arrays.
func cohortIndex(c tenant.Cohort) int {
	if c == tenant.Canary {
		return 1
	}
	return 0
}

// errMissing is wrapped by config errors about a required field.
var errMissing = errors.New("missing")

func fieldErr(field string, format string, args ...any) error {
	return fmt.Errorf("fallback: Config.%s: %s", field, fmt.Sprintf(format, args...))
}

// positiveIn checks a duration field of structure name (its error reads
// "fallback: <name>.<field>: ...") and applies def when it is zero.
func positiveIn(name, field string, d *time.Duration, def time.Duration) error {
	switch {
	case *d < 0:
		return fmt.Errorf("fallback: %s.%s: %v is negative", name, field, *d)
	case *d == 0:
		*d = def
	}
	return nil
}

// validate checks c, applies defaults and returns the result. Errors name the
// offending field, e.g. "fallback: Config.Stable: missing".
func (c Config) validate() (*config, error) {
	v := &config{Config: c}
	var err error
	if c.Stable == "" {
		return nil, fmt.Errorf("fallback: Config.Stable: %w", errMissing)
	}
	if v.stable, err = parseEndpoint("Stable", c.Stable); err != nil {
		return nil, err
	}
	if c.Canary != "" {
		if v.canary, err = parseEndpoint("Canary", c.Canary); err != nil {
			return nil, err
		}
	}
	if c.Shadow != "" {
		if v.shadow, err = parseEndpoint("Shadow", c.Shadow); err != nil {
			return nil, err
		}
	}
	if v.Name == "" {
		v.Name = v.stable.Host
	}
	if v.Transport == nil {
		v.Transport = http.DefaultTransport
	}
	if err := positive("Timeout", &v.Timeout, DefaultTimeout); err != nil {
		return nil, err
	}
	v.timeout = [2]time.Duration{v.Timeout, v.Timeout}
	for cohort, d := range c.CohortTimeout {
		if _, err := tenant.ParseCohort(string(cohort)); err != nil {
			return nil, fieldErr("CohortTimeout", "key %q is not a cohort", cohort)
		}
		if d <= 0 {
			return nil, fieldErr("CohortTimeout", "%s: %v is not positive", cohort, d)
		}
		v.timeout[cohortIndex(cohort)] = d
	}
	if err := positive("Budget", &v.Budget, DefaultBudget); err != nil {
		return nil, err
	}
	if err := positive("CacheTimeout", &v.CacheTimeout, DefaultCacheTimeout); err != nil {
		return nil, err
	}
	if err := positive("Breaker.Delay", &v.Breaker.Delay, DefaultBreakerDelay); err != nil {
		return nil, err
	}
	if v.Breaker.Failures == 0 {
		v.Breaker.Failures = DefaultBreakerFailures
	}
	if v.Breaker.Of == 0 {
		v.Breaker.Of = v.Breaker.Failures
	}
	if v.Breaker.Of < v.Breaker.Failures {
		return nil, fieldErr("Breaker.Of", "%d is less than Breaker.Failures %d", v.Breaker.Of, v.Breaker.Failures)
	}
	if v.Breaker.Successes == 0 {
		v.Breaker.Successes = 1
	}
	switch {
	case v.MaxCacheBodyBytes < 0:
		return nil, fieldErr("MaxCacheBodyBytes", "%d is negative", v.MaxCacheBodyBytes)
	case v.MaxCacheBodyBytes == 0:
		v.MaxCacheBodyBytes = DefaultMaxCacheBodyBytes
	}
	vary := make([]string, 0, len(c.CacheVary))
	for i, h := range c.CacheVary {
		if !validHeaderName(h) {
			return nil, fieldErr(fmt.Sprintf("CacheVary[%d]", i), "%q is not a header name", h)
		}
		vary = append(vary, http.CanonicalHeaderKey(h))
	}
	v.CacheVary = sortedUnique(vary)
	creds := []string{"Authorization", "Cookie"}
	for i, h := range c.SessionHeaders {
		if !validHeaderName(h) {
			return nil, fieldErr(fmt.Sprintf("SessionHeaders[%d]", i), "%q is not a header name", h)
		}
		creds = append(creds, http.CanonicalHeaderKey(h))
	}
	v.creds = sortedUnique(creds)
	switch {
	case v.MaxReplayBodyBytes < 0:
		return nil, fieldErr("MaxReplayBodyBytes", "%d is negative", v.MaxReplayBodyBytes)
	case v.MaxReplayBodyBytes == 0:
		v.MaxReplayBodyBytes = DefaultMaxReplayBodyBytes
	}
	if c.Compare != nil {
		cmp := *c.Compare
		if v.canary == nil {
			return nil, fieldErr("Compare", "shadow comparison needs Config.Canary")
		}
		if !(cmp.SampleRate > 0 && cmp.SampleRate <= 1) {
			return nil, fieldErr("Compare.SampleRate", "%v is not in (0, 1]", cmp.SampleRate)
		}
		switch {
		case cmp.MaxInFlight < 0:
			return nil, fieldErr("Compare.MaxInFlight", "%d is negative", cmp.MaxInFlight)
		case cmp.MaxInFlight == 0:
			cmp.MaxInFlight = 8
		}
		if err := positive("Compare.Timeout", &cmp.Timeout, 5*time.Second); err != nil {
			return nil, err
		}
		switch {
		case cmp.MaxBodyBytes < 0:
			return nil, fieldErr("Compare.MaxBodyBytes", "%d is negative", cmp.MaxBodyBytes)
		case cmp.MaxBodyBytes == 0:
			cmp.MaxBodyBytes = 1 << 20
		}
		for i, p := range cmp.IgnoreJSONFields {
			if p == "" || p[0] == '.' || p[len(p)-1] == '.' {
				return nil, fieldErr(fmt.Sprintf("Compare.IgnoreJSONFields[%d]", i), "%q is not a dot-separated path", p)
			}
		}
		v.Compare = &cmp
	}
	if longest := v.longestChain(); longest > v.Budget {
		return nil, fieldErr("Budget", "%v is shorter than the longest chain, %s: fallbacks after the callers' deadline never run; lower Timeout/CohortTimeout or raise Budget", v.Budget, v.describeLongest())
	}
	return v, nil
}

// chainTime returns the worst-case duration of the chain of a cohort and its
// description.
func (v *config) chainTime(cohort int) (time.Duration, string) {
	var total time.Duration
	desc := ""
	add := func(name string, d time.Duration) {
		total += d
		if desc != "" {
			desc += " + "
		}
		desc += fmt.Sprintf("%s %v", name, d)
	}
	if cohort == 1 && v.canary != nil {
		add("canary", v.timeout[1])
	}
	add("stable", v.timeout[cohort])
	if v.shadow != nil {
		add("shadow", v.timeout[cohort])
	}
	if v.Cache != nil {
		add("cache", v.CacheTimeout)
	}
	return total, desc
}

func (v *config) longestChain() time.Duration {
	a, _ := v.chainTime(0)
	b, _ := v.chainTime(1)
	return max(a, b)
}

func (v *config) describeLongest() string {
	a, da := v.chainTime(0)
	b, db := v.chainTime(1)
	if b > a {
		return fmt.Sprintf("%v for the canary cohort (%s)", b, db)
	}
	return fmt.Sprintf("%v for the stable cohort (%s)", a, da)
}

func positive(field string, d *time.Duration, def time.Duration) error {
	return positiveIn("Config", field, d, def)
}

// parseEndpoint parses and checks an endpoint base URL.
func parseEndpoint(field, raw string) (*url.URL, error) {
	u, err := url.Parse(raw)
	if err != nil {
		return nil, fieldErr(field, "%q is not a URL: %v", raw, err)
	}
	switch {
	case u.Scheme != "http" && u.Scheme != "https":
		return nil, fieldErr(field, "%q: scheme must be http or https", raw)
	case u.Host == "":
		return nil, fieldErr(field, "%q: no host", raw)
	case u.User != nil:
		return nil, fieldErr(field, "%q: user info is not allowed", raw)
	case u.RawQuery != "" || u.ForceQuery:
		return nil, fieldErr(field, "%q: a query is not allowed", raw)
	case u.Fragment != "":
		return nil, fieldErr(field, "%q: a fragment is not allowed", raw)
	}
	// Keep the path without its trailing slash: it prefixes request paths.
	for len(u.Path) > 0 && u.Path[len(u.Path)-1] == '/' {
		u.Path = u.Path[:len(u.Path)-1]
	}
	u.RawPath = ""
	return u, nil
}

func validHeaderName(h string) bool {
	if h == "" {
		return false
	}
	for i := 0; i < len(h); i++ {
		c := h[i]
		if !(c == '-' || c >= '0' && c <= '9' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' ||
			c == '!' || c == '#' || c == '$' || c == '%' || c == '&' || c == '\'' || c == '*' ||
			c == '+' || c == '.' || c == '^' || c == '_' || c == '`' || c == '|' || c == '~') {
			return false
		}
	}
	return true
}

func sortedUnique(s []string) []string {
	for i := 1; i < len(s); i++ {
		for j := i; j > 0 && s[j] < s[j-1]; j-- {
			s[j], s[j-1] = s[j-1], s[j]
		}
	}
	out := s[:0]
	for i, x := range s {
		if i == 0 || x != s[i-1] {
			out = append(out, x)
		}
	}
	return out
}
