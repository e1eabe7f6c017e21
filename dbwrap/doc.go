// Package dbwrap is a database/sql driver that splits reads and writes
// between a primary and its streaming replicas, pins transactions and
// session state to one server, and keeps read-your-writes for a request and
// for a user, while the application keeps a plain *sql.DB (so sqlx, bun and
// the standard library work unchanged on top).
//
// [Open] takes the inner driver's name and the DSNs; [OpenDB] and
// [NewConnector] take [driver.Connector]s. Every statement is routed by the
// rules documented in docs/db-routing.md: statements of a transaction run on
// the connection that began it; Exec and everything that is not certainly
// read-only run on the primary; reads go to a healthy replica, unless the
// request (or the user, within the token TTL) wrote and no replica has
// replayed that write yet. [Explain] says where a statement would go and why.
//
// The database specifics sit behind the small [Dialect] interface; routing
// itself is driver-agnostic. [Postgres] (WAL positions as consistency tokens,
// replay lag, SQLSTATE 25006) is the default for pgx and lib/pq; [MariaDB]
// (GTID sequence numbers, SHOW SLAVE STATUS, error 1290, statements read in
// MySQL's syntax) for github.com/go-sql-driver/mysql.
package dbwrap
