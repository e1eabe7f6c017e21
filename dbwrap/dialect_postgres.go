package dbwrap

import (
	"context"
	"errors"
	"fmt"
	"math"
	"strconv"
	"time"
)

// Postgres returns the PostgreSQL dialect. It works with any PostgreSQL
// driver (pgx's stdlib, lib/pq) whose errors expose SQLState() string.
//
//   - Write position: pg_current_wal_insert_lsn(), read on the primary
//     connection right after the write (one extra round trip per write made
//     through a context that can carry a token).
//   - Lag samples: pg_current_wal_flush_lsn(), read by the background
//     poller on the primary.
//   - Replica status: pg_is_in_recovery(), pg_last_wal_replay_lsn(),
//     pg_last_wal_receive_lsn() and pg_last_xact_replay_timestamp(), read
//     by the background poller; with Config.ConsistencyWait, a read whose
//     token is ahead of the polled position has the replica asked for
//     pg_last_wal_replay_lsn() (one query shared by the reads that wait).
//   - Read-only refusal: SQLSTATE 25006 (read_only_sql_transaction).
//   - Connection errors: network errors, SQLSTATE class 08 (connection
//     exception), 57P01..57P03 (shutdown, cannot connect now) and 53300 (too
//     many connections).
func Postgres() Dialect { return postgres{} }

type postgres struct{}

func (postgres) System() string { return "postgresql" }

const pgWritePositionQuery = "SELECT pg_current_wal_insert_lsn()::text"

func (postgres) WritePosition(ctx context.Context, q Querier) (uint64, error) {
	return pgPosition(ctx, q, pgWritePositionQuery)
}

// pgLagSampleQuery is the poller's lag sample: the WAL the primary has
// flushed, which is all a walsender can stream. The insert position may stay
// ahead of it for seconds on an idle primary (WAL written by a read-only
// transaction, such as hint-bit full-page images, is not flushed at its
// end, and the WAL writer hibernates), and no replica can replay it until
// then.
const pgLagSampleQuery = "SELECT pg_current_wal_flush_lsn()::text"

func (postgres) lagSample(ctx context.Context, q Querier) (uint64, error) {
	return pgPosition(ctx, q, pgLagSampleQuery)
}

func pgPosition(ctx context.Context, q Querier, query string) (uint64, error) {
	row, err := q.QueryRow(ctx, query)
	if err != nil {
		return 0, err
	}
	if len(row) != 1 {
		return 0, fmt.Errorf("dbwrap: postgres write position: got %d columns", len(row))
	}
	s, ok := textValue(row[0])
	if !ok {
		return 0, fmt.Errorf("dbwrap: postgres write position: unexpected value %T", row[0])
	}
	return parseLSN(s)
}

// pgReplayPositionQuery is what a read waiting for its token asks a replica
// (Config.ConsistencyWait): its replay position alone. It is NULL on a
// server that is not in recovery, which fails the probe.
const pgReplayPositionQuery = "SELECT pg_last_wal_replay_lsn()::text"

func (postgres) replayPosition(ctx context.Context, q Querier) (uint64, error) {
	return pgPosition(ctx, q, pgReplayPositionQuery)
}

const pgReplicaStatusQuery = `SELECT pg_is_in_recovery(),
	pg_last_wal_replay_lsn()::text,
	pg_last_wal_receive_lsn()::text,
	extract(epoch from pg_last_xact_replay_timestamp())::float8,
	extract(epoch from clock_timestamp())::float8`

func (postgres) ReplicaStatus(ctx context.Context, q Querier) (ReplicaStatus, error) {
	row, err := q.QueryRow(ctx, pgReplicaStatusQuery)
	if err != nil {
		return ReplicaStatus{}, err
	}
	if len(row) != 5 {
		return ReplicaStatus{}, fmt.Errorf("dbwrap: postgres replica status: got %d columns", len(row))
	}
	var st ReplicaStatus
	st.InRecovery, _ = row[0].(bool)
	if s, ok := textValue(row[1]); ok {
		if st.Replay, err = parseLSN(s); err != nil {
			return st, err
		}
	}
	if s, ok := textValue(row[2]); ok {
		if st.Receive, err = parseLSN(s); err != nil {
			return st, err
		}
	}
	if f, ok := floatValue(row[3]); ok {
		st.LastReplay = epochTime(f)
	}
	if f, ok := floatValue(row[4]); ok {
		st.Now = epochTime(f)
	}
	return st, nil
}

func (postgres) IsReadOnlyError(err error) bool { return sqlState(err) == "25006" }

func (postgres) IsConnError(err error) bool {
	if isConnError(err) {
		return true
	}
	code := sqlState(err)
	switch {
	case len(code) == 5 && code[:2] == "08":
		return true
	case code == "57P01", code == "57P02", code == "57P03", code == "53300":
		return true
	}
	return false
}

// sqlState returns the SQLSTATE of err, when a driver error in its chain
// exposes one.
func sqlState(err error) string {
	var se interface{ SQLState() string }
	if errors.As(err, &se) {
		return se.SQLState()
	}
	return ""
}

// parseLSN parses PostgreSQL's text form of an LSN, "HI/LO" in hex.
func parseLSN(s string) (uint64, error) {
	for i := 0; i < len(s); i++ {
		if s[i] == '/' {
			hi, err1 := strconv.ParseUint(s[:i], 16, 32)
			lo, err2 := strconv.ParseUint(s[i+1:], 16, 32)
			if err1 != nil || err2 != nil || i == 0 || i == len(s)-1 {
				break
			}
			return hi<<32 | lo, nil
		}
	}
	return 0, fmt.Errorf("dbwrap: invalid position %q: want HI/LO in hex", s)
}

// formatLSN writes p in PostgreSQL's LSN text form.
func formatLSN(p uint64) string {
	return fmt.Sprintf("%X/%X", p>>32, p&math.MaxUint32)
}

func textValue(v any) (string, bool) {
	switch v := v.(type) {
	case string:
		return v, true
	case []byte:
		return string(v), true
	}
	return "", false
}

func floatValue(v any) (float64, bool) {
	switch v := v.(type) {
	case float64:
		return v, true
	case float32:
		return float64(v), true
	case int64:
		return float64(v), true
	case string:
		f, err := strconv.ParseFloat(v, 64)
		return f, err == nil
	case []byte:
		f, err := strconv.ParseFloat(string(v), 64)
		return f, err == nil
	}
	return 0, false
}

func epochTime(f float64) time.Time {
	sec, frac := math.Modf(f)
	return time.Unix(int64(sec), int64(frac*1e9))
}
