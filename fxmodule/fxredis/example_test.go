package fxredis_test

import (
	"database/sql"

	"github.com/redis/go-redis/v9"
	"go.uber.org/fx"

	"github.com/reqcanary/canary/dbwrap"
	"github.com/reqcanary/canary/fxmodule"
	"github.com/reqcanary/canary/fxmodule/fxredis"
)

// An application with Redis keeps its database's read-your-writes tokens
// there: every instance then reads a user's writes.
func Example() {
	app := fx.New(
		fxmodule.Module,
		fxredis.Module,
		fx.Provide(func() *redis.Client { return redis.NewClient(&redis.Options{Addr: "redis:6379"}) }),
		fx.Supply(fxmodule.Config{DB: &dbwrap.Config{
			DriverName: "pgx",
			Primary:    "postgres://app@db-primary:5432/shop",
			Replicas:   []string{"postgres://app@db-replica-1:5432/shop"},
		}}),
		fx.Invoke(func(db *sql.DB) { /* the application's handlers get db */ }),
	)
	_ = app
}
