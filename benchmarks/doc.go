// Package benchmarks measures canary's overhead against bare baselines (chi,
// grpc over bufconn, database/sql drivers, http.Transport). It is its own Go
// module, with `replace => ../`, so the baselines it measures never enter the
// main module's go.mod. docs/benchmarks.md reports the figures and the
// commands that produced them.
package benchmarks
