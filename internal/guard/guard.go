package guard

import (
	"hash/maphash"
	"math"
	"math/bits"
	"time"

	"github.com/reqcanary/canary/tenant"
	"google.golang.org/grpc/codes"
)

// Guard records request outcomes per cohort and decides whether the canary
// is worse than stable. Create it with [New]. All methods are safe for
// concurrent use; Record is lock-free and does not allocate.
//
// A Guard holds no trip state of its own: Evaluate reports what the current
// window says. The caller keeps the kill switch, and calls [Guard.Reset] when
// an operator re-arms it so that the failures which caused the trip do not
// trip it again.
type Guard struct {
	cfg       Config // with defaults
	clock     Clock
	threshold float64 // the failure rule's evidence threshold, in nats
	win       *window
	seed      maphash.Seed // hashes units; random per guard, so clients cannot aim at collisions
}

// New returns a Guard configured by cfg (zero fields take their defaults; see
// [Config]) that reads the time from clock ([SystemClock] when nil). It
// returns the errors of [Config.Validate].
func New(cfg Config, clock Clock) (*Guard, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if clock == nil {
		clock = SystemClock{}
	}
	cfg = cfg.WithDefaults()
	return &Guard{
		cfg:       cfg,
		clock:     clock,
		threshold: cfg.evidenceThreshold(),
		win: newWindow(clock.Now(), cfg.Buckets, cfg.BucketWidth,
			1<<bits.Len(uint(cfg.MaxUnits-1)), cfg.UnitSamples),
		seed: maphash.MakeSeed(),
	}, nil
}

// Config returns the guard's configuration, with defaults filled in.
func (g *Guard) Config() Config { return g.cfg }

// Record counts one request of cohort c that failed or not and took latency,
// at the clock's current time, as a unit of its own (see [Outcome.Unit]).
// Requests of any cohort other than [tenant.Stable] and [tenant.Canary] are
// ignored. A request whose bucket has already left the window (its caller
// stalled for a whole window, or the clock went back by as much) is dropped.
func (g *Guard) Record(c tenant.Cohort, failed bool, latency time.Duration) {
	g.RecordAt(g.clock.Now(), c, failed, latency)
}

// RecordOutcome counts one outcome at the clock's current time: a success
// or a failure, unless its unit already counted [Config.UnitSamples]
// outcomes in the current bucket (then it is only counted as left out); a
// client-cancelled outcome is only counted apart. It is lock-free and does
// not allocate.
func (g *Guard) RecordOutcome(o Outcome) { g.RecordOutcomeAt(g.clock.Now(), o) }

// RecordOutcomeAt is RecordOutcome for an outcome at the instant at, which
// must come from the guard's clock.
func (g *Guard) RecordOutcomeAt(at time.Time, o Outcome) {
	var ci int
	switch o.Cohort {
	case tenant.Stable:
		ci = stableIdx
	case tenant.Canary:
		ci = canaryIdx
	default:
		return
	}
	var u unit
	if o.Unit != "" {
		u = unit{h: maphash.String(g.seed, o.Unit) ^ mix64(uint64(o.Space)+1), ok: true}
	}
	g.win.record(at, ci, o.Kind, u, o.Latency)
}

// RecordAt is Record for a request that ended at the instant at, which must
// come from the guard's clock. A caller that already read the clock to
// measure the latency saves a second reading (time.Now is most of Record's
// cost).
func (g *Guard) RecordAt(at time.Time, c tenant.Cohort, failed bool, latency time.Duration) {
	var ci int
	switch c {
	case tenant.Stable:
		ci = stableIdx
	case tenant.Canary:
		ci = canaryIdx
	default:
		return
	}
	k := Success
	if failed {
		k = Failure
	}
	g.win.record(at, ci, k, unit{}, latency)
}

// RecordHTTP records a request answered with an HTTP status; see [HTTPFailed].
func (g *Guard) RecordHTTP(c tenant.Cohort, status int, latency time.Duration) {
	g.Record(c, HTTPFailed(status), latency)
}

// RecordGRPC records a call that ended with a gRPC status code; see
// [GRPCFailed].
func (g *Guard) RecordGRPC(c tenant.Cohort, code codes.Code, latency time.Duration) {
	g.Record(c, GRPCFailed(code), latency)
}

// Reset forgets every recorded outcome. Call it when the kill switch is
// re-armed.
func (g *Guard) Reset() { g.win.reset() }

// Snapshot returns the figures of both cohorts over the current window.
func (g *Guard) Snapshot() Snapshot {
	var hists [2]Histogram
	return g.read(&hists)
}

// read returns the snapshot, and the cohorts' latency histograms in hists.
func (g *Guard) read(hists *[2]Histogram) Snapshot {
	now := g.clock.Now()
	var n counts
	spans := make([]Span, 0, g.cfg.Buckets)
	g.win.collect(now, &n, &spans)
	*hists = n.hists
	return Snapshot{
		At:     now,
		Window: time.Duration(g.cfg.Buckets) * g.cfg.BucketWidth,
		Stable: figuresOf(&n, stableIdx),
		Canary: figuresOf(&n, canaryIdx),
		Spans:  spans,
	}
}

// Evaluate reads the current window and reports a [Trip] when a rule says
// the canary is worse than stable: first the failure rule, then the latency
// rule (see [Config] and [Trip]). It reads the bucket in progress and any
// bucket finished since the previous call, a few microseconds of work, and
// serialises with other Evaluate, Snapshot and Reset calls. The failure
// rule's test stays valid however often it is evaluated: call it on a ticker
// several times per bucket width (every 100 ms for the default 1 s) rather
// than per request.
//
// The failure rule is a sequential test (docs/guard.md, "When it trips"):
// for every span of the window that ends now and starts at one of its
// buckets ([Snapshot.Spans]), it weighs the split of the span's failures
// between the cohorts against their shares of the span's samples, with the
// canary's worst unit over the span left out (its failures taken out of the
// canary's failures and samples), so that no single user or tenant can trip
// the guard alone. It trips when the window holds MinCanarySamples (without
// the window's worst unit's failures) and MinStableSamples, and some span's
// canary failure rate exceeds stable's times FailureRatio and stable's plus
// FailureMargin, with a likelihood ratio (mixed over failure-rate ratios
// from FailureRatio up) of at least the larger of FailureEvidence and
// 1/(1−Confidence). A change is thus judged on the traffic since it began,
// not diluted by the healthy traffic before it.
//
// The latency rule also leaves out the most samples any one canary unit
// counted (Figures.TopUnitSamples), taken as slow. It trips when both
// cohorts hold LatencyMinSamples, the
// canary's p95 exceeds stable's times LatencyFactor and stable's plus
// LatencyMargin, and an exact binomial test at Confidence says that more than
// 5 % of the canary's requests are slower than that threshold (that is, the
// canary's true p95 is above it), so that the p95 of a small sample does not
// trip on a few slow requests. Stable's p95, from the larger cohort, is taken
// as known.
func (g *Guard) Evaluate() (Trip, bool) {
	var hists [2]Histogram
	s := g.read(&hists)
	return g.evaluate(s, &hists)
}

// evaluate applies the rules to s, whose cohorts' latency histograms are
// hists: figures that are sums over requests, so that the figures of several
// guards added up are judged the same way.
func (g *Guard) evaluate(s Snapshot, hists *[2]Histogram) (Trip, bool) {
	c, st := s.Canary, s.Stable
	trip := Trip{
		At:        s.At,
		Window:    s.Window,
		Stable:    st,
		Canary:    c,
		Threshold: g.threshold,
	}
	// Leave one out: the canary's window without its worst unit's failures.
	top := min(c.TopUnitFailures, c.Failures)
	trip.Z = twoProportionZ(c.Failures-top, c.Samples-top, st.Failures, st.Samples)
	cfg := &g.cfg
	alpha := 1 - cfg.Confidence
	if !cfg.DisableFailureRule &&
		c.Samples-top >= uint64(cfg.MinCanarySamples) && st.Samples >= uint64(cfg.MinStableSamples) {
		if v := cfg.failureEvidence(s.Spans); v.ok && v.evidence >= g.threshold {
			sp := v.span
			trip.Rule = RuleFailureRate
			trip.Since, trip.SpanStable, trip.SpanCanary = sp.Since, sp.Stable, sp.Canary
			trip.Evidence = v.evidence
			trip.PValue = math.Exp(-v.evidence)
			trip.Z = twoProportionZ(v.x, v.nc, sp.Stable.Failures, sp.Stable.Samples)
			return trip, true
		}
	}
	if !cfg.DisableLatencyRule &&
		c.Samples >= uint64(cfg.LatencyMinSamples) && st.Samples >= uint64(cfg.LatencyMinSamples) {
		limit := time.Duration(float64(st.P95) * cfg.LatencyFactor)
		if c.P95 > limit && c.P95-st.P95 > cfg.LatencyMargin {
			// H0: the canary's p95 is at most limit, i.e. at most 5 % of its
			// requests are slower than limit.
			// Leave one out: the canary's slow requests and samples without
			// the most any one unit counted.
			slow, n := hists[canaryIdx].countAbove(limit), c.Samples
			top := min(c.TopUnitSamples, slow)
			trip.PValue = binomialUpper(slow-top, n-top, 0.05, alpha)
			if trip.PValue <= alpha {
				trip.Rule = RuleLatencyP95
				return trip, true
			}
		}
	}
	return Trip{}, false
}
