// Package guard compares the canary cohort against the stable cohort inside
// one process and decides when the canary is worse: it records each request's
// outcome (success, failure or client-cancelled, and its latency) per cohort
// in a sliding window of time buckets, each randomisation unit (user, else
// tenant) counting at most a few outcomes per bucket, and [Guard.Evaluate]
// trips when, over a recent span of the window, the canary's failure rate,
// without its worst unit, is worse than stable's by a relative factor and an
// absolute margin, with the evidence of a sequential likelihood-ratio test
// that stays valid however often it is evaluated; or when the canary's p95
// latency exceeds stable's by a factor. Client-cancelled outcomes are
// counted apart and never compared.
//
// Recording is lock-free (a few atomic operations, no allocation) and memory
// is fixed at construction. The window rotates lazily, on Record and
// Evaluate, following a [Clock] the caller injects; nothing runs in the
// background. What to do on a trip (turn the kill switch on, log, emit
// telemetry) is the caller's business: a [Trip] carries the figures.
package guard
