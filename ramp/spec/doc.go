// Package spec is the vocabulary of progressive delivery: the plan's ramp
// section ([Ramp]: steps, gates, what a failure does), read from YAML with
// line-numbered problems ([ParseNode], [Parse]) and checked ([Ramp.Check]),
// and the fleet's cohort figures ([Figures]) that engines publish and the
// ramp controller (package ramp) sums and judges. It imports no store client,
// so the engine can validate a ramp section without etcd.
package spec
