// Package planstore keeps the rollout plan of a fleet in one shared place: a
// [Store] holds the current plan with a version, refuses writes based on an
// old version (compare-and-swap), validates a plan before it is written,
// keeps an audited history, rolls back, and tells every watcher about each
// change. The etcd implementation is in package planstore/etcdstore (so
// that only programs that use etcd compile its client); [NewRedis] is the
// Redis one.
//
// The package does not import the engine: the caller passes the validation
// function (the engine's plan parser, canary.ValidatePlan).
package planstore
