// Package ramp is the progressive-delivery controller: it moves a plan's
// canary percentage through the steps of its ramp section (package
// ramp/spec), holding each step while its gates (the guard's statistic on
// the fleet's summed figures, PromQL queries) hold, and rolls back or
// pauses when a gate fails.
//
// One controller leads at a time (etcd's concurrency.Election on a lease);
// the ramp's state (phase, step, when it started, the checks so far) lives
// in etcd, so a new leader continues where the old one stopped, without
// repeating or skipping a step. Every plan change goes through the plan
// store ([planstore.Store.Apply]) with the expected version, an author and a
// note saying why, so the plan history is the ramp's audit trail.
//
// Engines publish their guard's figures with [NewPublisher]; operators
// drive the ramp with [Controller.Start], [Controller.Pause],
// [Controller.Resume], [Controller.Abort] and [Controller.PromoteNow], from
// any instance, and read it with [Controller.Status]. See docs/ramp.md.
package ramp
