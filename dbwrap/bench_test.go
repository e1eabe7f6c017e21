package dbwrap

import (
	"context"
	"database/sql/driver"
	"testing"

	"github.com/reqcanary/canary/tenant"
)

// BenchmarkRouteQuery measures the wrapper conn's own work per read, without
// database/sql around it: route, forward, and the inner fake's QueryContext.
func BenchmarkRouteQuery(b *testing.B) {
	log := &fakeLog{}
	cn, err := newConnector(Connectors{
		Primary:  &fakeConnector{server: "primary", log: log},
		Replicas: []driver.Connector{&fakeConnector{server: "replica", log: log}},
	}, nil, Config{})
	if err != nil {
		b.Fatal(err)
	}
	defer cn.Close()
	<-cn.polled // the replica serves reads once polled
	c := newConn(cn)
	ctx := context.Background()
	const q = "SELECT id, name, price FROM products WHERE category_id = $1 AND price < $2 ORDER BY price LIMIT 20"
	args := []driver.NamedValue{{Ordinal: 1, Value: int64(3)}, {Ordinal: 2, Value: int64(10)}}
	b.Run("route", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			_ = c.route(ctx, classifyCached(cn, q), opQuery)
		}
	})
	req := tenant.NewContext(ctx, tenant.Labels{Tenant: "acme", UserHash: "0123456789abcdef0123456789abcdef", Cohort: tenant.Stable})
	b.Run("route-request", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			_ = c.route(req, classifyCached(cn, q), opQuery)
		}
	})
	b.Run("classify-cached", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			_ = classifyCached(cn, q)
		}
	})
	b.Run("classify", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			_ = classify(q)
		}
	})
	b.Run("routed-metrics", func(b *testing.B) {
		d := c.route(ctx, classifyCached(cn, q), opQuery)
		b.ReportAllocs()
		for b.Loop() {
			cn.metrics.routed(ctx, d)
		}
	})
	b.Run("check-args", func(b *testing.B) {
		ci, _ := c.innerConn(ctx, cn.replicas[0])
		b.ReportAllocs()
		for b.Loop() {
			_, _ = checkArgs(nil, ci, args)
		}
	})
}
