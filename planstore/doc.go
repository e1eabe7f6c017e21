// Package planstore keeps the rollout plan of a fleet in one shared place: a
// [Store] holds the current plan with a version, refuses writes based on an
// old version (compare-and-swap), validates a plan before it is written,
// keeps an audited history, rolls back, and tells every watcher about each
// change. The implementations are in their own packages, planstore/etcdstore
// and planstore/redisstore, so that a program compiles only the client of
// the store it uses; this package imports neither.
//
// The package does not import the engine: the caller passes the validation
// function (the engine's plan parser, canary.ValidatePlan).
package planstore
