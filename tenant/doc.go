// Package tenant is the vocabulary every canary adapter shares: the request's
// [Labels] and [Cohort], the context that carries them, the wire names and
// limits of the headers and metadata keys, the bucketing hash, the keyed user
// hash, and the [Decider] interface that turns what a request carries into
// Labels.
//
// It is the leaf of the module: it knows nothing of HTTP servers, gRPC, SQL or
// failsafe-go, and every other package may import it.
package tenant
