// Command demo-shop is a small shop (products, prices, orders) that shows
// canary at work: every request is labelled at the edge (tenant, user hash,
// trace, cohort), the labels travel into the database layer (dbwrap splits
// reads and writes and keeps read-your-writes) and into the calls to a pricing
// dependency (fallback sends the canary cohort to the canary pricing version
// and falls back to stable, then to the last good answer).
//
// With no flags it needs no services: an embedded SQLite database (pure Go)
// in the temporary directory, seeded on first start, opened through dbwrap as
// a writer pool and a read-only pool; both pricing versions run in-process on
// loopback. Flags (or environment variables) switch to the real parts:
//
//	-http ADDR        HTTP listen address (DEMO_SHOP_HTTP, default 127.0.0.1:8080)
//	-grpc ADDR        gRPC listen address (DEMO_SHOP_GRPC, default 127.0.0.1:9090)
//	-admin ADDR       admin API and /metrics listen address (DEMO_SHOP_ADMIN, default 127.0.0.1:8081)
//	-admin-token TOK  bearer token of the admin POSTs (DEMO_SHOP_ADMIN_TOKEN, default demo-token,
//	                  refused when a listener is beyond loopback; '' makes the admin read-only)
//	-db PATH          SQLite database file (DEMO_SHOP_DB, default $TMPDIR/canary-demo-shop.db)
//	-plan FILE        rollout plan file, watched (DEMO_SHOP_PLAN, default: the embedded plan.yaml)
//	-pg-primary DSN   PostgreSQL primary instead of SQLite (DEMO_SHOP_PG_PRIMARY)
//	-pg-replica DSN   PostgreSQL streaming replica (DEMO_SHOP_PG_REPLICA)
//	-mysql-primary DSN  MySQL/MariaDB primary instead of SQLite (DEMO_SHOP_MYSQL_PRIMARY)
//	-mysql-replica DSN  MariaDB GTID replica (DEMO_SHOP_MYSQL_REPLICA)
//	-redis ADDR       Redis for the fallback cache and the read-your-writes tokens (DEMO_SHOP_REDIS)
//
// Once listening it prints one line on stdout,
//
//	demo-shop: http=127.0.0.1:8080 grpc=127.0.0.1:9090 admin=127.0.0.1:8081
//
// with the bound addresses (useful with port 0). It stops gracefully on
// SIGINT or SIGTERM. "demo-shop call ..." is a small gRPC client for the
// shop's gRPC API (see grpc.go). docs/demo.md is the walk-through.
package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Getenv, os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

// Exit codes.
const (
	exitOK    = 0
	exitError = 1 // a service could not be reached, a port could not be bound…
	exitUsage = 2 // bad flags or environment
)

// run is the whole program: it parses args, starts the shop, waits for ctx to
// be done and shuts down. It returns the exit code; problems are reported on
// stderr in one line each, never as a stack trace.
func run(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) int {
	if len(args) > 0 && args[0] == "call" {
		return runCall(ctx, args[1:], stdout, stderr)
	}
	cfg, err := parseFlags(args, getenv, stderr)
	if err != nil {
		switch err {
		case errHelp:
			return exitOK
		case errPrinted:
		default:
			fmt.Fprintf(stderr, "demo-shop: %v\n", err)
			fmt.Fprintln(stderr, "run 'demo-shop -h' for the flags")
		}
		return exitUsage
	}
	app, err := start(ctx, cfg, stderr)
	if err != nil {
		fmt.Fprintf(stderr, "demo-shop: %s\n", oneLine(err))
		return exitError
	}
	fmt.Fprintf(stdout, "demo-shop: http=%s grpc=%s admin=%s\n", app.httpAddr, app.grpcAddr, app.adminAddr)
	fmt.Fprintf(stderr, "demo-shop: database %s; plan %s; try: curl -H 'X-Tenant-ID: acme' http://%s/products\n",
		app.dbDesc, cfg.planDesc(), app.httpAddr)
	fmt.Fprintf(stderr, "demo-shop: admin API and /metrics on http://%s (%s)\n", app.adminAddr, tokenDesc(cfg.adminTok))
	fmt.Fprintf(stderr, "demo-shop: console on http://%s/admin/canary/ui/ (read-only until you give it the admin token)\n", app.adminAddr)

	var serveErr error
	select {
	case <-ctx.Done():
	case serveErr = <-app.errc:
	}
	app.shutdown()
	if serveErr != nil {
		fmt.Fprintf(stderr, "demo-shop: %v\n", serveErr)
		return exitError
	}
	fmt.Fprintln(stderr, "demo-shop: stopped")
	return exitOK
}

// tokenDesc says how the admin is protected, without printing a token of
// the user's own.
func tokenDesc(tok string) string {
	switch tok {
	case "":
		return "read-only: no -admin-token"
	case builtinAdminToken:
		return "POSTs need 'Authorization: Bearer " + builtinAdminToken + "', the built-in loopback token"
	}
	return "POSTs need the -admin-token bearer token"
}

// oneLine is err's text on one line (drivers report one line per address).
func oneLine(err error) string {
	return strings.Join(strings.Fields(strings.ReplaceAll(err.Error(), "\n", "; ")), " ")
}
