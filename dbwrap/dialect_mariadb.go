package dbwrap

import (
	"context"
	"database/sql/driver"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/go-sql-driver/mysql"
)

// MariaDB returns the MariaDB dialect, for github.com/go-sql-driver/mysql
// (the default dialect of the driver name "mysql"). Its positions are MariaDB
// GTIDs of replication domain 0; use [MariaDBDomain] for another domain.
//
//   - Statements are classified in MySQL's syntax: backtick identifiers, '#'
//     and "-- " comments, /*! … */ executable comments read as code, and
//     backslash escapes in strings (a text is also read as with sql_mode
//     NO_BACKSLASH_ESCAPES when a string holds a backslash).
//   - Write position: the GTID sequence number of the write, read on the
//     primary connection right after it: @@last_gtid (the session's last
//     transaction), else @@gtid_binlog_pos (one extra round trip per write
//     made through a context that can carry a token). With gtid_strict_mode
//     (recommended), sequence numbers of one domain only grow, on every
//     server of the topology, so the sequence number orders positions like a
//     PostgreSQL LSN. Tokens carry it in the same "HI/LO" hex form.
//   - Lag samples: @@gtid_binlog_pos on the primary, read by the poller.
//   - Replica status, read by the poller: @@read_only and @@gtid_slave_pos
//     (the applied position), then SHOW SLAVE STATUS: a server with read_only
//     off (promoted), without replication set up, whose SQL thread is not
//     running or whose IO thread stopped ("No"; "Connecting" while the
//     primary is down keeps it) serves no reads. Seconds_Behind_Master gives
//     the lag while the primary cannot be sampled. With
//     Config.ConsistencyWait, a read whose token is ahead of the polled
//     position has the replica asked for @@gtid_slave_pos.
//   - Read-only refusal: error 1290 (ER_OPTION_PREVENTS_STATEMENT, the
//     --read-only option) and 1836 (ER_READ_ONLY_MODE).
//   - Connection errors: network errors, the driver's invalid connection,
//     1040 (too many connections), 1053 (server shutdown), 1927 (connection
//     killed) and 4031 (disconnected for inactivity).
//
// The replication user of dbwrap's connections needs no privilege beyond
// SELECT; SHOW SLAVE STATUS needs REPLICATION CLIENT (MariaDB 10.5+: SLAVE
// MONITOR). Without it, a replica reports an error and serves no reads.
func MariaDB() Dialect { return mariadb{} }

// MariaDBDomain returns the MariaDB dialect (see [MariaDB]) whose positions
// are the GTIDs of replication domain domain (@@gtid_domain_id of the
// primary's writes).
func MariaDBDomain(domain uint32) Dialect { return mariadb{domain: domain} }

type mariadb struct{ domain uint32 }

func (mariadb) System() string { return "mariadb" }

// mysqlSyntax marks a dialect whose statements are classified as MySQL.
func (mariadb) mysqlSyntax() bool { return true }

// mysqlSyntaxer is implemented by dialects of MySQL-syntax servers.
type mysqlSyntaxer interface{ mysqlSyntax() bool }

const mariadbWritePositionQuery = "SELECT @@last_gtid, @@gtid_binlog_pos"

func (d mariadb) WritePosition(ctx context.Context, q Querier) (uint64, error) {
	row, err := q.QueryRow(ctx, mariadbWritePositionQuery)
	if err != nil {
		return 0, err
	}
	if len(row) != 2 {
		return 0, fmt.Errorf("dbwrap: mariadb write position: got %d columns", len(row))
	}
	for _, v := range row {
		s, _ := textValue(v)
		seq, ok, err := gtidSeq(s, d.domain)
		if err != nil {
			return 0, fmt.Errorf("dbwrap: mariadb write position: %w", err)
		}
		if ok {
			return seq, nil
		}
	}
	return 0, fmt.Errorf("dbwrap: mariadb write position: no GTID of domain %d in @@gtid_binlog_pos", d.domain)
}

const mariadbLagSampleQuery = "SELECT @@gtid_binlog_pos"

func (d mariadb) lagSample(ctx context.Context, q Querier) (uint64, error) {
	return d.gtidVar(ctx, q, mariadbLagSampleQuery, "@@gtid_binlog_pos", false)
}

// mariadbReplayPositionQuery is what a read waiting for its token asks a
// replica (Config.ConsistencyWait). A server with read_only off is no
// replica: the probe fails.
const mariadbReplayPositionQuery = "SELECT @@gtid_slave_pos, @@read_only"

func (d mariadb) replayPosition(ctx context.Context, q Querier) (uint64, error) {
	return d.gtidVar(ctx, q, mariadbReplayPositionQuery, "@@gtid_slave_pos", true)
}

// gtidVar reads the sequence number of the dialect's domain in the GTID
// list of the first column (0 when the list has none of the domain). With
// replica, a second column must be a true read_only.
func (d mariadb) gtidVar(ctx context.Context, q Querier, query, name string, replica bool) (uint64, error) {
	row, err := q.QueryRow(ctx, query)
	if err != nil {
		return 0, err
	}
	if len(row) < 1 || replica && len(row) < 2 {
		return 0, fmt.Errorf("dbwrap: mariadb %s: got %d columns", name, len(row))
	}
	if replica {
		if ro, _ := intValue(row[1]); ro == 0 {
			return 0, errNotInRecovery
		}
	}
	s, _ := textValue(row[0])
	seq, _, err := gtidSeq(s, d.domain)
	if err != nil {
		return 0, fmt.Errorf("dbwrap: mariadb %s: %w", name, err)
	}
	return seq, nil
}

const (
	mariadbReplicaVarsQuery   = "SELECT @@read_only, @@gtid_slave_pos, UNIX_TIMESTAMP(NOW(6))"
	mariadbSlaveStatusQuery   = "SHOW SLAVE STATUS"
	mariadbSlaveRunningQuery  = "SELECT VARIABLE_VALUE FROM information_schema.GLOBAL_STATUS WHERE VARIABLE_NAME = 'SLAVE_RUNNING'"
	mariadbColIORunning       = "Slave_IO_Running"
	mariadbColSQLRunning      = "Slave_SQL_Running"
	mariadbColSecondsBehind   = "Seconds_Behind_Master"
	mariadbColGtidIOPos       = "Gtid_IO_Pos"
	mariadbRunningYes         = "Yes"
	mariadbRunningNo          = "No"
	mariadbMaxSecondsBehindNS = int64(1<<63-1) / int64(time.Second)
)

// columnQuerier is implemented by the Querier dbwrap passes to a Dialect:
// it also returns the column names of the first row (for SHOW statements).
type columnQuerier interface {
	QueryRowColumns(ctx context.Context, query string) (columns []string, row []driver.Value, err error)
}

func (d mariadb) ReplicaStatus(ctx context.Context, q Querier) (ReplicaStatus, error) {
	row, err := q.QueryRow(ctx, mariadbReplicaVarsQuery)
	if err != nil {
		return ReplicaStatus{}, err
	}
	if len(row) != 3 {
		return ReplicaStatus{}, fmt.Errorf("dbwrap: mariadb replica status: got %d columns", len(row))
	}
	var st ReplicaStatus
	readOnly, _ := intValue(row[0])
	s, _ := textValue(row[1])
	if st.Replay, _, err = gtidSeq(s, d.domain); err != nil {
		return st, fmt.Errorf("dbwrap: mariadb replica status: @@gtid_slave_pos: %w", err)
	}
	if f, ok := floatValue(row[2]); ok {
		st.Now = epochTime(f)
	}
	if readOnly == 0 {
		return st, nil // promoted, or no replica: InRecovery false
	}
	cq, ok := q.(columnQuerier)
	if !ok {
		// Without column names: both threads running, or not.
		v, err := q.QueryRow(ctx, mariadbSlaveRunningQuery)
		if err != nil {
			return st, err
		}
		if len(v) == 1 {
			s, _ := textValue(v[0])
			st.InRecovery = strings.EqualFold(s, "ON")
		}
		return st, nil
	}
	cols, vals, err := cq.QueryRowColumns(ctx, mariadbSlaveStatusQuery)
	if err != nil {
		return st, err
	}
	if vals == nil {
		return st, nil // replication is not set up
	}
	var io, sqlRunning string
	for i, c := range cols {
		if i >= len(vals) {
			break
		}
		switch c {
		case mariadbColIORunning:
			io, _ = textValue(vals[i])
		case mariadbColSQLRunning:
			sqlRunning, _ = textValue(vals[i])
		case mariadbColGtidIOPos:
			s, _ := textValue(vals[i])
			if st.Receive, _, err = gtidSeq(s, d.domain); err != nil {
				return st, fmt.Errorf("dbwrap: mariadb replica status: %s: %w", c, err)
			}
		case mariadbColSecondsBehind:
			if n, ok := intValue(vals[i]); ok && n > 0 && n < mariadbMaxSecondsBehindNS {
				ref := st.Now
				if ref.IsZero() {
					ref = time.Now()
				}
				st.LastReplay = ref.Add(-time.Duration(n) * time.Second)
			}
		}
	}
	st.InRecovery = sqlRunning == mariadbRunningYes && io != "" && io != mariadbRunningNo
	if st.Receive != 0 && st.Replay >= st.Receive && !st.LastReplay.IsZero() {
		st.LastReplay = time.Time{}
	}
	return st, nil
}

// MySQL and MariaDB error numbers dbwrap acts on.
const (
	erOptionPreventsStatement  = 1290 // ER_OPTION_PREVENTS_STATEMENT: --read-only
	erReadOnlyMode             = 1836 // ER_READ_ONLY_MODE
	erConCount                 = 1040 // ER_CON_COUNT_ERROR: too many connections
	erServerShutdown           = 1053 // ER_SERVER_SHUTDOWN
	erConnectionKilled         = 1927 // ER_CONNECTION_KILLED (MariaDB)
	erClientInteractionTimeout = 4031 // ER_CLIENT_INTERACTION_TIMEOUT (MySQL 8.0.24+)
)

func mysqlErrorNumber(err error) uint16 {
	var me *mysql.MySQLError
	if errors.As(err, &me) {
		return me.Number
	}
	return 0
}

func (mariadb) IsReadOnlyError(err error) bool {
	switch mysqlErrorNumber(err) {
	case erOptionPreventsStatement, erReadOnlyMode:
		return true
	}
	return false
}

func (mariadb) IsConnError(err error) bool {
	if isConnError(err) || errors.Is(err, mysql.ErrInvalidConn) {
		return true
	}
	switch mysqlErrorNumber(err) {
	case erConCount, erServerShutdown, erConnectionKilled, erClientInteractionTimeout:
		return true
	}
	return false
}

// gtidSeq returns the sequence number of domain in a MariaDB GTID list
// ("0-1-42,1-2-7"; "" is empty). ok is false when the list has no GTID of
// domain.
func gtidSeq(list string, domain uint32) (seq uint64, ok bool, err error) {
	for len(list) > 0 {
		item := list
		if i := strings.IndexByte(list, ','); i >= 0 {
			item, list = list[:i], list[i+1:]
		} else {
			list = ""
		}
		item = strings.TrimSpace(item)
		if item == "" {
			continue
		}
		d, rest, ok1 := strings.Cut(item, "-")
		srv, n, ok2 := strings.Cut(rest, "-")
		dom, err1 := strconv.ParseUint(d, 10, 32)
		_, err2 := strconv.ParseUint(srv, 10, 32)
		s, err3 := strconv.ParseUint(n, 10, 64)
		if !ok1 || !ok2 || err1 != nil || err2 != nil || err3 != nil {
			return 0, false, fmt.Errorf("invalid GTID %q: want domain-server-sequence", item)
		}
		if uint32(dom) == domain {
			return s, true, nil
		}
	}
	return 0, false, nil
}

func intValue(v any) (int64, bool) {
	switch v := v.(type) {
	case int64:
		return v, true
	case uint64:
		if v > 1<<63-1 {
			return 0, false
		}
		return int64(v), true
	case float64:
		return int64(v), true
	case bool:
		if v {
			return 1, true
		}
		return 0, true
	case string:
		n, err := strconv.ParseInt(v, 10, 64)
		return n, err == nil
	case []byte:
		n, err := strconv.ParseInt(string(v), 10, 64)
		return n, err == nil
	}
	return 0, false
}
