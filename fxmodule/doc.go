// Package fxmodule wires canary into a go.uber.org/fx application with one
// option, [Module].
//
// Module provides, from a [Config] the application supplies (or none: the
// default plan, 0 % canary):
//
//   - *canary.Engine, closed on stop;
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
//     them without it is an error), closed on stop;
//   - [Fallbacks], the fallback transports of Config.Fallback by name, closed
//     on stop.
//
// It never provides what it does not own: *redis.Client, a
// metric.MeterProvider and a *slog.Logger are taken when the application
// provides them (all optional) and handed to the engine, dbwrap and fallback.
//
// Every value is built by the packages' own constructors (canary.New,
// dbwrap.Open, fallback.NewTransport, (*canary.Engine).Transport…), which stay
// usable without fx.
package fxmodule
