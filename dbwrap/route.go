package dbwrap

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"strings"
	"sync"
	"time"

	"github.com/reqcanary/canary/tenant"
)

// Reasons a statement was routed where it was, as recorded on spans and
// metrics and returned by Explain. The classifier adds its own reasons for
// statements that are not certainly read-only ("write", "returning",
// "locking-clause", "data-modifying-cte", "side-effect-function:nextval",
// "session:set", "unknown", ...).
const (
	ReasonRead             = "read"                     // read-only: a healthy replica
	ReasonCaughtUp         = "caught-up"                // read with a token: a replica that replayed it
	ReasonExec             = "exec"                     // Exec always runs on the primary
	ReasonHint             = "hint"                     // /* canary:primary */
	ReasonWithPrimary      = "with-primary"             // dbwrap.WithPrimary
	ReasonTransaction      = "transaction"              // in (or beginning) a read-write transaction
	ReasonReadOnlyTx       = "read-only-transaction"    // beginning a read-only transaction
	ReasonSerializableTx   = "serializable-transaction" // a read-only transaction at SERIALIZABLE or stronger: a hot standby refuses it
	ReasonInTransaction    = "in-transaction"           // a statement of a transaction: its server
	ReasonSessionPinned    = "session-pinned"           // the conn holds session state
	ReasonTokenAhead       = "token-ahead"              // no replica has replayed the request's token yet
	ReasonSticky           = "sticky"                   // wrote, position unknown (no dialect)
	ReasonNoReplicas       = "no-replicas"              // none configured
	ReasonNoHealthyReplica = "no-healthy-replica"       // every replica of the read set is out
	ReasonNotPolled        = "not-polled"               // no replica serves the read and one has no poll verdict yet (just after Open or Start)
	ReasonNotStarted       = "not-started"              // Config.DeferStart and Start not called yet: no replica polled
	ReasonFailoverConn     = "failover:conn-error"      // retried after a replica connection error
	ReasonFailoverReadOnly = "failover:read-only"       // retried on the primary after SQLSTATE 25006
)

type opKind uint8

const (
	opQuery opKind = iota
	opExec
)

// decision is where one statement goes and why.
type decision struct {
	srv    *server
	reason string
	write  bool // record the write position after it succeeds
	need   uint64
}

// route decides where a statement runs. It is the hot path: it does not
// allocate, and it does I/O only when a token must be waited for
// (Config.ConsistencyWait) or the user's position is loaded from the token
// store (once per request).
func (c *conn) route(ctx context.Context, st statement, op opKind) decision {
	cn := c.c
	write := !st.readOnly && !st.sessionState
	if c.inTx {
		if st.sessionState && c.tx.srv.target == TargetPrimary {
			// The state lives on the transaction's connection.
			c.pinned, c.pinHeld = true, true
		}
		return decision{srv: c.tx.srv, reason: ReasonInTransaction, write: write}
	}
	if st.sessionState || st.reason == reasonTransaction {
		// Session state, or a transaction begun by hand ("BEGIN" through
		// Exec): everything after it on this conn belongs to the primary.
		c.pinned = true
		return decision{srv: cn.primary, reason: st.reason}
	}
	if c.pinned {
		return decision{srv: cn.primary, reason: ReasonSessionPinned, write: write}
	}
	if op == opExec {
		reason := st.reason
		if st.readOnly {
			reason = ReasonExec
		}
		return decision{srv: cn.primary, reason: reason, write: write}
	}
	if st.forcePrimary {
		return decision{srv: cn.primary, reason: ReasonHint, write: write}
	}
	if !st.readOnly {
		return decision{srv: cn.primary, reason: st.reason, write: write}
	}
	return c.routeRead(ctx, ReasonRead)
}

// routeBegin decides where a transaction begins. A read-only transaction at
// SERIALIZABLE isolation or stronger begins on the primary: a PostgreSQL hot
// standby refuses it (SQLSTATE 0A000), and only the primary can give it its
// guarantee.
func (c *conn) routeBegin(ctx context.Context, opts driver.TxOptions) decision {
	if !opts.ReadOnly || c.pinned {
		return decision{srv: c.c.primary, reason: ReasonTransaction}
	}
	if sql.IsolationLevel(opts.Isolation) >= sql.LevelSerializable {
		return decision{srv: c.c.primary, reason: ReasonSerializableTx}
	}
	return c.routeRead(ctx, ReasonReadOnlyTx)
}

// routeRead picks the server of a read-only statement or transaction.
func (c *conn) routeRead(ctx context.Context, reason string) decision {
	cn := c.c
	o := optionsFrom(ctx)
	if o != nil && o.primary {
		return decision{srv: cn.primary, reason: ReasonWithPrimary}
	}
	if len(cn.replicas) == 0 {
		return decision{srv: cn.primary, reason: ReasonNoReplicas}
	}
	if !cn.started.Load() {
		return decision{srv: cn.primary, reason: ReasonNotStarted}
	}
	labels, hasLabels := tenant.FromContext(ctx)
	need := cn.requiredPosition(ctx, o, labels, hasLabels)
	set := cn.readSet(labels, hasLabels)
	if s := c.pickReplica(set, need, nil); s != nil {
		if need > 0 {
			return decision{srv: s, reason: ReasonCaughtUp, need: need}
		}
		return decision{srv: s, reason: reason}
	}
	switch {
	case need == positionUnknown:
		return decision{srv: cn.primary, reason: ReasonSticky, need: need}
	case need > 0:
		if s := c.waitForReplica(ctx, set, need); s != nil {
			return decision{srv: s, reason: ReasonCaughtUp, need: need}
		}
		return decision{srv: cn.primary, reason: ReasonTokenAhead, need: need}
	}
	if cn.awaitingPoll(labels, hasLabels) {
		return decision{srv: cn.primary, reason: ReasonNotPolled}
	}
	return decision{srv: cn.primary, reason: ReasonNoHealthyReplica}
}

// pickReplica returns a healthy replica of set whose polled replay position
// has reached need, starting with the conn's preferred one, skipping not.
func (c *conn) pickReplica(set []*server, need uint64, not *server) *server {
	n := uint32(len(set))
	if n == 0 {
		return nil
	}
	start := c.pref % n
	for i := uint32(0); i < n; i++ {
		s := set[(start+i)%n]
		if s == not || !s.healthy.Load() {
			continue
		}
		if need == 0 || s.replay.Load() >= need {
			return s
		}
	}
	return nil
}

// waitForReplica waits up to Config.ConsistencyWait for a healthy replica of
// set to replay need. It asks the conn's preferred healthy replica through
// that replica's shared probe (the poller's view may be up to one interval
// old), one probe after another, and returns nil when none has replayed need
// in time.
func (c *conn) waitForReplica(ctx context.Context, set []*server, need uint64) *server {
	cn := c.c
	if cn.set.wait <= 0 || cn.set.dialect == nil || c.closed {
		return nil // no waiting, no dialect to ask, or Explain (no I/O)
	}
	s := c.pickReplica(set, 0, nil)
	if s == nil {
		return nil
	}
	deadline := time.NewTimer(cn.set.wait)
	defer deadline.Stop()
	for {
		ch := s.probe.await(cn, s)
		if ch == nil {
			return nil
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return nil
		case <-deadline.C:
			return nil
		}
		if r := c.pickReplica(set, need, nil); r != nil {
			return r
		}
		if !s.healthy.Load() {
			return nil
		}
		select {
		case <-deadline.C:
			return nil
		default:
		}
	}
}

// requiredPosition returns the highest write position the reads of ctx must
// see: the token attached with WithConsistencyToken, the request session's
// (its own writes', and an upstream service's from Labels.Position), and the
// user's remembered one (loaded once per request).
func (cn *connector) requiredPosition(ctx context.Context, o *ctxOptions, l tenant.Labels, hasLabels bool) uint64 {
	var need uint64
	if o != nil && o.token != nil {
		need = o.token.pos.Load()
	}
	sess := tenant.SessionFromContext(ctx)
	if sess == nil {
		return need
	}
	if !hasLabels || l.UserHash == "" {
		return max(need, sess.Position())
	}
	st := sessionStateOf(sess, true)
	if !st.userLoaded.Load() {
		p, err := cn.set.tokens.Load(ctx, userKey(l))
		if err != nil {
			// When in doubt, the primary; the next read tries again.
			cn.metrics.tokenStoreError(ctx)
			return positionUnknown
		}
		sess.RaisePosition(p)
		st.userLoaded.Store(true)
	}
	return max(need, sess.Position())
}

// recordWrite reads the primary's write position on ci (the primary conn
// that just wrote) and raises the request's, the context token's and the
// user's positions to it. It does nothing when ctx can carry none of them.
// Without a dialect, or when the position cannot be read, the position is
// "unknown" (PositionUnknown): later reads of the request and of the user go
// to the primary until a later write of theirs records a known position, or
// for TokenTTL at most.
func (cn *connector) recordWrite(ctx context.Context, ci driver.Conn) {
	o := optionsFrom(ctx)
	sess := tenant.SessionFromContext(ctx)
	hasToken := o != nil && o.token != nil
	if sess == nil && !hasToken {
		return
	}
	pos := uint64(positionUnknown)
	if d := cn.set.dialect; d != nil && len(cn.replicas) > 0 {
		if p, err := d.WritePosition(ctx, rowQuerier{ci}); err == nil && p > 0 {
			pos = p
		}
	}
	if hasToken {
		o.token.record(pos)
	}
	if sess == nil {
		return
	}
	sess.RecordWrite(pos)
	if l, ok := tenant.FromContext(ctx); ok && l.UserHash != "" {
		if err := cn.set.tokens.Save(ctx, userKey(l), pos, cn.set.tokenTTL); err != nil {
			cn.metrics.tokenStoreError(ctx)
		}
	}
}

type failoverCause uint8

const (
	failoverNone failoverCause = iota
	failoverConn
	failoverReadOnly
	failoverReconnect
)

// maxReadRetries bounds the retries of one read: a new connection to the
// same replica (a stale inner connection), then another server.
const maxReadRetries = 2

// retryable tells whether a failed read may be retried, where, and why. It
// also takes a replica out of service when the error says the replica
// failed (see countsAgainst); a read cut short by its own context never
// does.
func (c *conn) retryable(ctx context.Context, d decision, err error) failoverCause {
	if d.srv.target != TargetReplica || c.inTx || callerEnded(ctx) != nil || errors.Is(err, driver.ErrSkip) {
		return failoverNone
	}
	if dl := c.c.set.dialect; dl != nil && dl.IsReadOnlyError(err) {
		return failoverReadOnly
	}
	if !c.isConnError(err) {
		return failoverNone
	}
	if !c.countsAgainst(ctx, err) {
		return failoverReconnect
	}
	c.replicaFailed(ctx, d.srv, err)
	return failoverConn
}

// replicaFailed takes s out of service until the poller sees it healthy
// again for Config.RecoverAfter.
func (c *conn) replicaFailed(ctx context.Context, s *server, err error) {
	c.dropInner(s)
	if s.healthy.CompareAndSwap(true, false) {
		c.c.metrics.replicaDown(ctx, s)
	}
	if p := c.c.poller.Load(); p != nil {
		p.failed(s)
	}
}

// failover returns where a failed read is retried: the same replica on a new
// connection (a stale inner connection), another healthy replica that
// satisfies the same token (connection errors), else the primary. A read the
// replica refused as a write is retried on the primary as a write: its
// position is recorded for read-your-writes like a classified write's.
func (c *conn) failover(ctx context.Context, d decision, cause failoverCause) decision {
	if cause == failoverReconnect {
		return d
	}
	from := d.srv
	nd := decision{srv: c.c.primary, reason: ReasonFailoverReadOnly, write: d.write, need: d.need}
	if cause == failoverReadOnly {
		nd.write = true
	}
	if cause == failoverConn {
		nd.reason = ReasonFailoverConn
		if d.need != positionUnknown {
			labels, hasLabels := tenant.FromContext(ctx)
			if s := c.pickReplica(c.c.readSet(labels, hasLabels), d.need, from); s != nil {
				nd.srv = s
			} else if s := c.pickReplica(c.c.defaults, d.need, from); s != nil {
				nd.srv = s
			}
		}
	}
	c.c.metrics.failover(ctx, from, nd.srv, nd.reason)
	return nd
}

// Route is where a statement would go and why, as returned by Explain.
type Route struct {
	// Target is TargetPrimary or TargetReplica.
	Target Target
	// Server names the server: "primary", "replica-<i>" (index in
	// Config.Replicas) or "<cohort>-replica-<i>" (index in
	// Config.CohortReplicas[cohort]).
	Server string
	// Reason is one of the Reason constants or a classifier reason.
	Reason string
	// Token is the consistency token the read had to see ("" when none), in
	// the LSN text form "HI/LO" (for MariaDB, the GTID sequence number in
	// that form), or "unknown" when the write's position could not be
	// read (no dialect, or the query failed): such reads go to the primary.
	Token string
}

// String returns "replica replica-0 (read)" and the like.
func (r Route) String() string {
	s := r.Target.String() + " " + r.Server + " (" + r.Reason + ")"
	if r.Token != "" {
		s += " token " + r.Token
	}
	return s
}

// Explain tells where db (opened by dbwrap) would run query if it were run
// now with QueryContext(ctx, query) outside a transaction, and why. It reads
// the current replica health and the context's tokens, and runs nothing on
// the database (it may load the user's position from the token store, as the
// query would).
func Explain(ctx context.Context, db *sql.DB, query string) (Route, error) {
	d, ok := db.Driver().(*wrapDriver)
	if !ok {
		return Route{}, ErrNotDBWrap
	}
	c := &conn{c: d.c, inner: make([]innerConn, len(d.c.servers))}
	c.closed = true // no I/O: waiting for a token is not explained
	dec := c.route(ctx, classifyCached(d.c, query), opQuery)
	r := Route{Target: dec.srv.target, Server: dec.srv.name, Reason: dec.reason}
	switch {
	case dec.need == positionUnknown:
		r.Token = "unknown"
	case dec.need > 0:
		r.Token = formatLSN(dec.need)
	}
	return r, nil
}

// classifyCached classifies query through the connector's cache: most
// applications run a bounded set of constant query strings, and a map lookup
// costs a fraction of classifying them again.
func classifyCached(c *connector, query string) statement { return c.classified.get(query) }

// Bounds of the classification cache: texts longer than
// classifyCacheMaxLen are classified every time, and once the cached texts
// total classifyCacheMaxBytes no more are added.
const (
	classifyCacheMaxLen   = 8 << 10
	classifyCacheMaxBytes = 4 << 20
)

// classifyCache maps query texts to their classification. It is safe for
// concurrent use.
type classifyCache struct {
	mysql bool // classify with classifyMySQL (set before first use)
	mu    sync.RWMutex
	m     map[string]statement
	bytes int
}

func (cc *classifyCache) classify(query string) statement {
	if cc.mysql {
		return classifyMySQL(query)
	}
	return classify(query)
}

func (cc *classifyCache) get(query string) statement {
	if len(query) > classifyCacheMaxLen {
		return cc.classify(query)
	}
	cc.mu.RLock()
	st, ok := cc.m[query]
	cc.mu.RUnlock()
	if ok {
		return st
	}
	st = cc.classify(query)
	cc.mu.Lock()
	if cc.bytes+len(query) <= classifyCacheMaxBytes {
		if cc.m == nil {
			cc.m = make(map[string]statement, 64)
		}
		if _, ok := cc.m[query]; !ok {
			cc.m[strings.Clone(query)] = st
			cc.bytes += len(query)
		}
	}
	cc.mu.Unlock()
	return st
}
