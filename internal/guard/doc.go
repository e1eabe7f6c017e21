// Package guard compares the canary cohort against the stable cohort inside
// one process and decides when the canary is worse: it records each request's
// outcome (failed or not, and its latency) per cohort in a sliding window of
// time buckets, and [Guard.Evaluate] trips when the canary's failure rate is
// worse than stable's by a relative factor, an absolute margin and a one-sided
// two-proportion z-test, or when the canary's p95 latency exceeds stable's by
// a factor.
//
// Recording is lock-free (a few atomic operations, no allocation) and memory
// is fixed at construction. The window rotates lazily, on Record and
// Evaluate, following a [Clock] the caller injects; nothing runs in the
// background. What to do on a trip (turn the kill switch on, log, emit
// telemetry) is the caller's business: a [Trip] carries the figures.
package guard
