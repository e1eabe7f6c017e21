// Package planstore keeps the rollout plan of a fleet in one shared place: a
// [Store] holds the current plan with a version, refuses writes based on an
// old version (compare-and-swap), validates a plan before it is written,
// keeps an audited history, rolls back, and tells every watcher about each
// change. [NewEtcd] is the etcd implementation.
//
// The package does not import the engine: the caller passes the validation
// function (the engine's plan parser) in [EtcdConfig.Validate].
package planstore
