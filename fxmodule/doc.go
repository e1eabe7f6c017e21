// Package fxmodule wires canary into a go.uber.org/fx application with one
// option, [Module].
//
// Module provides, from a [Config] the application supplies (or none: the
// default plan, 0 % canary):
//
//   - *canary.Engine, started on start and closed on stop;
//   - the HTTP middleware, a func(http.Handler) http.Handler, named
//     `name:"canary"` and also in the value group `group:"canary.middleware"`
//     for applications that collect their middleware;
//   - the gRPC interceptors grpc.UnaryServerInterceptor,
//     grpc.StreamServerInterceptor, grpc.UnaryClientInterceptor and
//     grpc.StreamClientInterceptor, each named `name:"canary"`: the
//     engine's method values ((*canary.Engine).UnaryServerInterceptor…);
//   - the outbound HTTP transport, an http.RoundTripper named
//     `name:"canary"`: (*canary.Engine).Transport over http.DefaultTransport,
//     which writes the request's labels onto outgoing requests;
//   - *sql.DB and *sqlx.DB opened by dbwrap when Config.DB is set (asking for
//     them without it is an error), started on start and closed on stop;
//   - [Fallbacks], the fallback transports of Config.Fallback by name, closed
//     on stop.
//
// It never provides what it does not own: a metric.MeterProvider, a
// *slog.Logger and a dbwrap.TokenStore are taken when the application
// provides them (all optional) and handed to the engine, dbwrap and fallback.
// With Redis, add fxredis.Module (package fxmodule/fxredis): on the
// application's *redis.Client it provides the token store that keeps the
// database's read-your-writes tokens in Redis (unless Config.DB.TokenStore is
// set). It is a package of its own so that this one does not import go-redis.
//
// Every value is built by the packages' own constructors (canary.New,
// dbwrap.Open, redistoken.New, fallback.NewTransport,
// (*canary.Engine).Transport…), which stay usable without fx.
//
// # Lifecycle
//
// The constructors start nothing in the background: the engine is built with
// canary.WithDeferredStart and the database with dbwrap.Config.DeferStart,
// and their OnStart hooks start the plan-file watcher, the guard, the
// fleet's kill-switch subscription and the replica poller. fx runs OnStop
// hooks only for an application that started, so this is what keeps an
// application whose fx.New fails (a later constructor or invoke returned an
// error) from leaking goroutines and connections: what the module built then
// holds none, except the opener goroutine database/sql runs in every *sql.DB
// until it is closed, and the circuit-state metric callback each fallback
// transport registers with the meter provider when it is built (no
// goroutine; it is unregistered by the transport's Close).
//
// fx also skips the OnStop hook of every hook whose OnStart did not run: when
// the start fails in a hook that runs before the database's (the engine's own,
// say, with a fleet switch whose Redis cannot be reached, or one of the
// application's), the *sql.DB is not closed either and keeps that same opener
// goroutine; nothing else of the module's runs then.
//
// Between construction and start, invokes may use what the module provides:
// the engine decides with the plan read at construction (and the fleet's
// switch read then, with canary.WithFleetSwitch), and the database works with
// every read on the primary and no connection kept idle. A plan file edited
// meanwhile is applied once started.
package fxmodule
