// Package fallback keeps a dependency answering when its canary (or its
// stable version) is slow or failing: an http.RoundTripper and a gRPC unary
// client interceptor, built on failsafe-go, that send each request to the
// endpoint of its cohort and fall back along a chain — canary → stable →
// shadow (a standby endpoint) → the last good answer from a cache.
//
// The cohort comes from the request's labels (tenant.FromContext), decided
// once at the edge. Each endpoint has one circuit breaker shared by all
// requests and a per-attempt timeout (failsafe-go's circuitbreaker and
// timeout, run per attempt by failsafehttp or failsafegrpc); the chain is a
// composition of failsafe-go fallback policies; the stale-if-error step is a
// fallback that reads a [Cache]: [NewMemoryCache] in process memory, or
// package [github.com/reqcanary/canary/fallback/rediscache] in Redis (this
// package does not import the Redis client).
// Requests that are not idempotent are sent to another endpoint only when
// they certainly were not sent (connection refused, open circuit).
// Request bodies are kept for replay only up to Config.MaxReplayBodyBytes;
// larger ones are streamed to one endpoint. Answers to requests carrying
// credentials (Authorization, Cookie, Config.SessionHeaders) are cached for
// that user only, and the caches bound each tenant's share.
//
// Answers say who served them (X-Canary-Served-By) and why a fallback
// happened (X-Canary-Fallback-Reason). Optionally, a sampled share of the
// stable cohort's GETs is mirrored to the canary in the background and the
// answers compared ([CompareConfig]). Metrics and span events go to
// OpenTelemetry.
//
// docs/fallback.md explains the chain, the headers, the idempotency rules,
// the cache key and how to size the timeouts.
package fallback
