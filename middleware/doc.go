// Package middleware is canary's HTTP adapter: a chi-shaped middleware that
// labels every request once, at the edge, through a [tenant.Decider].
//
// For each request it reads the peer address, the W3C trace context, and
// (through the Decider) the tenant, user and override headers; it stores the
// resulting [tenant.Labels] in the request's context with [tenant.NewContext],
// sets the X-Canary-Cohort response header, and records the OpenTelemetry
// feature-flag attributes on the active span when that span is recording.
// Input that breaks canary's limits is answered with 400 and a JSON body that
// names the header; the handler is then not called. When a tracing
// middleware that starts its own span (otelhttp) is mounted inside, add
// [Annotate] after it so that span carries the attributes too.
//
// [Transport] is the outbound half: an http.RoundTripper that writes the
// calling request's labels onto outgoing requests (never the raw user id),
// with a signed decision when given [WithSigner].
//
// The package depends only on the tenant vocabulary, net/http and the
// OpenTelemetry trace API: it never imports the root canary package, whose
// Engine is the usual Decider. Most applications use canary.Middleware or
// (*canary.Engine).Middleware, which are built on [New].
package middleware
