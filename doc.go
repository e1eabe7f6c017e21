// Package canary labels every request once, at the edge, with the cohort of
// a rollout (canary or stable), and carries that decision through the
// request's context for every later layer to act on.
//
// The pieces compose like this:
//
//   - a [Plan] (YAML, see [ParsePlan]) says who is canary: a percentage of
//     users bucketed by a stable hash (docs/bucketing.md), tenants always or
//     never canary, a kill switch, and an override header honoured only from
//     trusted peers;
//   - an [Engine] ([New]) holds the plan, reloads a plan file when it
//     changes, and implements tenant.Decider: request in, tenant.Labels out;
//   - [Engine.Middleware] (built on package middleware) puts the labels in
//     each HTTP request's context; handlers read them with tenant.FromContext;
//   - [Middleware] is the zero-config form, on a default engine configured
//     by the environment (CANARY_PLAN), for r.Use(canary.Middleware);
//   - [Engine.Transport] and the gRPC interceptors ([Engine.UnaryServerInterceptor]
//     and its three siblings, and the package-level functions of the same
//     names) carry the decision to the next services: with [WithSigningKey]
//     as a signed X-Canary-Decision that engines sharing the key adopt
//     exactly, and that an edge ([WithEdge]) never adopts
//     (docs/propagation.md).
//   - the guard ([WithGuard], or the plan's guard section) compares each
//     request's outcome between canary and stable and turns the kill switch
//     on when the canary is worse (docs/guard.md); [WithFleetSwitch] shares
//     the kill switch across instances through a store they all reach
//     (Redis, with fleetswitch/redisswitch), and [AdminHandler] is the
//     operator's view and switch (docs/operations.md).
//
// A chi service:
//
//	r := chi.NewRouter()
//	r.Use(canary.Middleware)
//	r.Get("/checkout", func(w http.ResponseWriter, r *http.Request) {
//		l, _ := tenant.FromContext(r.Context())
//		if l.Cohort.IsCanary() {
//			// new code path
//		}
//	})
//
// With an explicit engine and a watched plan file:
//
//	eng, err := canary.New(canary.WithPlanFile("/etc/canary/plan.yaml"))
//	if err != nil {
//		log.Fatal(err) // names the key and line at fault
//	}
//	defer eng.Close()
//	r.Use(eng.Middleware)
package canary
