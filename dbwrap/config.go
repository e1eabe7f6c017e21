package dbwrap

import (
	"time"

	"go.opentelemetry.io/otel/metric"

	"github.com/reqcanary/canary/tenant"
)

// Defaults of the Config fields, applied when a field is zero.
const (
	DefaultMaxReplicaLag        = 30 * time.Second
	DefaultPollInterval         = time.Second
	DefaultRecoverAfter         = 5 * time.Second
	DefaultTokenTTL             = 30 * time.Second
	DefaultPrimaryRetryInterval = time.Second
)

// Config configures a dbwrap database. The zero value of every field other
// than DriverName and Primary is a safe default: with no replicas, every
// statement goes to the primary and dbwrap is a thin pass-through.
//
// A Config is read once by Open, OpenDB or NewConnector; changing it later
// has no effect.
type Config struct {
	// DriverName is the registered database/sql driver of the inner
	// connections, e.g. "pgx". Required by Open; ignored by OpenDB and
	// NewConnector, except to pick the default Dialect.
	DriverName string

	// Primary is the primary's DSN (Open only).
	Primary string

	// Replicas are the DSNs of the replicas that serve reads by default
	// (Open only). Empty means every statement goes to the primary.
	Replicas []string

	// CohortReplicas maps a cohort to the replicas that serve the reads of
	// requests in that cohort (Open only), e.g. a canary replica running a
	// new index. A DSN that is also in Replicas names the same server. When
	// none of a cohort's replicas is healthy, its reads use Replicas, then the
	// primary. Cohorts without an entry use Replicas.
	CohortReplicas map[tenant.Cohort][]string

	// Dialect supplies the database-specific queries: consistency tokens
	// (write positions), replica replay positions and lag, and error
	// classification. Nil picks [Postgres] for the driver names "pgx",
	// "pgx/v5", "postgres" and "cloudsqlpostgres", [MariaDB] for "mysql"
	// (github.com/go-sql-driver/mysql), and no dialect otherwise. Statements
	// are classified in MySQL's syntax with [MariaDB], or with no dialect and
	// the driver name "mysql"; in PostgreSQL's otherwise.
	// Use [NoDialect] to force none: routing still works, but reads after a
	// write go to the primary for the rest of the request (and, for the same
	// user, for TokenTTL) and replica lag is not measured.
	Dialect Dialect

	// MaxReplicaLag takes a replica out of service while its replay lag
	// exceeds it, and keeps a replica out from the start while the poller
	// cannot yet tell that its lag is within it (see [WaitPolled]). Zero means DefaultMaxReplicaLag (30 s); negative disables
	// the lag check.
	MaxReplicaLag time.Duration

	// PollInterval is how often the background poller measures each
	// replica's replay position and lag. Zero means DefaultPollInterval
	// (1 s).
	PollInterval time.Duration

	// RecoverAfter is how long a replica that was taken out must stay
	// healthy (reachable and within MaxReplicaLag) in consecutive polls
	// before it serves reads again. Zero means DefaultRecoverAfter (5 s).
	//
	// It does not delay a replica's first admission: a replica starts out of
	// service, and the first poll that finds it fit puts it in service at
	// once. One that the first poll finds unfit needs RecoverAfter of good
	// polls, like one taken out later.
	RecoverAfter time.Duration

	// ConsistencyWait bounds how long a read that carries a consistency
	// token waits for a replica to replay it before it goes to the primary.
	// Zero (the default) does not wait: such a read goes to the primary at
	// once. A read waits only when its token is ahead of the replica's
	// polled position; it then asks the replica for its replay position
	// through a probe shared by every read waiting for that replica (one
	// query in flight per replica, 1 to 10 ms apart). Reads right after
	// their own write then mostly read from the replica, a few milliseconds
	// later than from the primary; e.g. 50 ms.
	ConsistencyWait time.Duration

	// TokenTTL is how long a user's last write position is remembered (see
	// TokenStore). Zero means DefaultTokenTTL (30 s). It is refreshed by
	// every write and never cleared early.
	TokenTTL time.Duration

	// TokenStore keeps the per-user write positions (keyed by tenant and
	// user hash) so the same user reads its writes on its next requests.
	// Nil means an in-memory store for this process ([NewMemoryTokenStore]);
	// use the Redis store of package
	// [github.com/reqcanary/canary/dbwrap/redistoken] when several
	// instances serve the same users.
	TokenStore TokenStore

	// PrimaryRetryInterval is how long, after a failed attempt to connect to
	// the primary, statements that need the primary fail at once with
	// ErrPrimaryUnavailable (wrapping the last driver error) instead of
	// trying again. Zero means DefaultPrimaryRetryInterval (1 s); negative
	// retries every time.
	PrimaryRetryInterval time.Duration

	// MeterProvider records the routing metrics. Nil means the global
	// provider (otel.GetMeterProvider).
	MeterProvider metric.MeterProvider

	// DeferStart makes Open, OpenDB and NewConnector start nothing in the
	// background: the replica poller (with its connections) and the replica
	// gauges start when [Start] is called. Until then the database works,
	// but every read goes to the primary (reason "not-started", since
	// nothing watches the replicas' lag and role yet), and a connection is
	// closed when it returns
	// to the pool instead of being kept idle. So a database that is built
	// but never started, because the application failed to build, holds no
	// connection and no goroutine of dbwrap's; only database/sql's own
	// opener goroutine, which every *sql.DB runs until Close, remains. It is
	// for applications with a start phase, such as go.uber.org/fx (fxmodule
	// sets it).
	//
	// Default false: the poller starts at once and Start is not needed.
	DeferStart bool
}

// settings is a Config with the defaults applied.
type settings struct {
	maxLag        time.Duration // <0: no lag check
	poll          time.Duration
	recoverAfter  time.Duration
	wait          time.Duration
	tokenTTL      time.Duration
	primaryRetry  time.Duration // <0: never fail fast
	dialect       Dialect       // nil: none
	tokens        TokenStore
	meterProvider metric.MeterProvider
	deferStart    bool
}

func (cfg *Config) settings() (settings, error) {
	s := settings{
		maxLag:        cfg.MaxReplicaLag,
		poll:          cfg.PollInterval,
		recoverAfter:  cfg.RecoverAfter,
		wait:          cfg.ConsistencyWait,
		tokenTTL:      cfg.TokenTTL,
		primaryRetry:  cfg.PrimaryRetryInterval,
		tokens:        cfg.TokenStore,
		meterProvider: cfg.MeterProvider,
		deferStart:    cfg.DeferStart,
	}
	if s.maxLag == 0 {
		s.maxLag = DefaultMaxReplicaLag
	}
	switch {
	case s.poll < 0:
		return s, configError("PollInterval", "must not be negative, got %v", s.poll)
	case s.poll == 0:
		s.poll = DefaultPollInterval
	}
	switch {
	case s.recoverAfter < 0:
		return s, configError("RecoverAfter", "must not be negative, got %v", s.recoverAfter)
	case s.recoverAfter == 0:
		s.recoverAfter = DefaultRecoverAfter
	}
	if s.wait < 0 {
		return s, configError("ConsistencyWait", "must not be negative, got %v", s.wait)
	}
	switch {
	case s.tokenTTL < 0:
		return s, configError("TokenTTL", "must not be negative, got %v", s.tokenTTL)
	case s.tokenTTL == 0:
		s.tokenTTL = DefaultTokenTTL
	}
	if s.primaryRetry == 0 {
		s.primaryRetry = DefaultPrimaryRetryInterval
	}
	switch d := cfg.Dialect.(type) {
	case nil:
		s.dialect = dialectFor(cfg.DriverName)
	case noDialect:
		s.dialect = nil
	default:
		s.dialect = d
	}
	if s.tokens == nil {
		s.tokens = NewMemoryTokenStore()
	}
	return s, nil
}
