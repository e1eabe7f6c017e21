//go:build !demo_embedded

package main

import (
	"context"
	"fmt"

	"github.com/go-sql-driver/mysql"
	_ "github.com/jackc/pgx/v5/stdlib" // driver "pgx"

	"github.com/reqcanary/canary/dbwrap"
)

// openServiceDB fills cfg for the MariaDB (-mysql-primary) or PostgreSQL
// (-pg-primary) pair, checking the replica on its own first so that a bad
// replica DSN is reported as such rather than as slow reads later. ok is
// false when neither flag is given: the shop uses the embedded SQLite.
func openServiceDB(ctx context.Context, sc storeConfig, cfg *dbwrap.Config) (desc, flagName, bind string, ok bool, err error) {
	switch {
	case sc.myPrimary != "":
		if sc.myReplica != "" {
			if err := pingDB(ctx, "mysql", sc.myReplica); err != nil {
				return "", "", "", false, fmt.Errorf("-mysql-replica: cannot reach MySQL/MariaDB: %w", err)
			}
			cfg.Replicas = []string{sc.myReplica}
		}
		cfg.DriverName, cfg.Primary = "mysql", sc.myPrimary
		desc = "MariaDB primary " + redactMyDSN(sc.myPrimary)
		if sc.myReplica != "" {
			desc += " + replica " + redactMyDSN(sc.myReplica)
		}
		return desc, "-mysql-primary", "mysql", true, nil
	case sc.pgPrimary != "":
		if sc.pgReplica != "" {
			if err := pingDB(ctx, "pgx", sc.pgReplica); err != nil {
				return "", "", "", false, fmt.Errorf("-pg-replica: cannot reach PostgreSQL: %w", err)
			}
			cfg.Replicas = []string{sc.pgReplica}
		}
		cfg.DriverName, cfg.Primary = "pgx", sc.pgPrimary
		desc = "PostgreSQL primary " + redactDSN(sc.pgPrimary)
		if sc.pgReplica != "" {
			desc += " + replica " + redactDSN(sc.pgReplica)
		}
		return desc, "-pg-primary", "pgx", true, nil
	}
	return "", "", "", false, nil
}

// redactMyDSN drops the password from a go-sql-driver/mysql DSN.
func redactMyDSN(dsn string) string {
	c, err := mysql.ParseDSN(dsn)
	if err != nil {
		return "(dsn)"
	}
	if c.Passwd != "" {
		c.Passwd = "xxxxx"
	}
	return c.FormatDSN()
}
