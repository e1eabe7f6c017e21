package canary

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/go-chi/chi/v5"
	_ "github.com/jackc/pgx/v5/stdlib"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/metadata"

	"github.com/reqcanary/canary/dbwrap"
	"github.com/reqcanary/canary/internal/testenv"
	"github.com/reqcanary/canary/tenant"
)

// The end-to-end proof of the consistency token (issue 11): two services on
// the real primary + streaming replica, each with its own engine, its own
// dbwrap and its own in-memory token store, so that only what travels with
// the call can tell B about A's write.
//
//	client ──HTTP──▶ A (chi, edge, dbwrap) ── writes, then ──canary.Transport──▶ B (chi, dbwrap)
//	                                        └──gRPC client interceptor──────────▶ B (gRPC, dbwrap)
//
// Replay on the replica is paused, so a read of A's write on the replica is
// certainly stale: B sees A's write only if its read goes to the primary.

var consKey = []byte("e2e-consistency-key-0123456789abc")

// consRead is what B's read saw and where it ran.
type consRead struct {
	Seen       bool `json:"seen"`        // the row A wrote is there
	InRecovery bool `json:"in_recovery"` // pg_is_in_recovery() of the server that answered
}

// consEnv is the two services and the knobs a case turns.
type consEnv struct {
	table      string
	engA, engB *Engine
	a          *httptest.Server
	// tamperHTTP, when set, edits the headers of A's call to B after the
	// engine's transport wrote them; tamperGRPC the outgoing metadata.
	tamperHTTP atomic.Pointer[func(http.Header)]
	tamperGRPC atomic.Pointer[func(metadata.MD)]
	// lastHTTPToken is the X-Canary-Consistency of A's last HTTP call.
	lastHTTPToken atomic.Pointer[string]
	grpcSeen      sync.Map // id -> consRead
}

func openConsDB(t *testing.T, primary, replica string) *sql.DB {
	t.Helper()
	db, err := dbwrap.Open(dbwrap.Config{
		DriverName:    "pgx",
		Primary:       primary,
		Replicas:      []string{replica},
		PollInterval:  50 * time.Millisecond,
		RecoverAfter:  300 * time.Millisecond,
		MaxReplicaLag: time.Hour,                    // the paused replica stays in service
		TokenStore:    dbwrap.NewMemoryTokenStore(), // this service's own
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := dbwrap.WaitPolled(ctx, db); err != nil {
		t.Fatal(err)
	}
	return db
}

// readRow is B's handler code: one read, routed by dbwrap, that says whether
// the row is there and which server answered.
func readRow(ctx context.Context, db *sql.DB, table string, id int) (consRead, error) {
	var r consRead
	err := db.QueryRowContext(ctx,
		"select exists(select 1 from "+table+" where id = $1), pg_is_in_recovery()", id).Scan(&r.Seen, &r.InRecovery)
	return r, err
}

// tamperRT applies the env's HTTP tamper function to a copy of the request.
type tamperRT struct {
	env  *consEnv
	base http.RoundTripper
}

func (rt tamperRT) RoundTrip(req *http.Request) (*http.Response, error) {
	out := req.Clone(req.Context())
	if f := rt.env.tamperHTTP.Load(); f != nil {
		(*f)(out.Header)
	}
	v := out.Header.Get(tenant.HeaderConsistency)
	rt.env.lastHTTPToken.Store(&v)
	return rt.base.RoundTrip(out)
}

// consHealth is B's gRPC service: Check reads the row named by the request's
// service field.
type consHealth struct {
	healthpb.UnimplementedHealthServer
	env *consEnv
	db  *sql.DB
}

func (h *consHealth) Check(ctx context.Context, req *healthpb.HealthCheckRequest) (*healthpb.HealthCheckResponse, error) {
	id, err := strconv.Atoi(req.GetService())
	if err != nil {
		return nil, err
	}
	r, err := readRow(ctx, h.db, h.env.table, id)
	if err != nil {
		return nil, err
	}
	h.env.grpcSeen.Store(id, r)
	return &healthpb.HealthCheckResponse{Status: healthpb.HealthCheckResponse_SERVING}, nil
}

func newConsEnv(t *testing.T) *consEnv {
	t.Helper()
	primaryDSN, replicaDSN := testenv.PGPrimary(t), testenv.PGReplica(t)
	testenv.LockReplicaExclusive(t) // replay is paused below
	bg := context.Background()
	env := &consEnv{table: fmt.Sprintf("canary_e2e_consistency_%d", time.Now().UnixNano())}

	primary, err := sql.Open("pgx", primaryDSN)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { primary.Close() })
	replica, err := sql.Open("pgx", replicaDSN)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { replica.Close() })
	if _, err := primary.ExecContext(bg, "create table "+env.table+" (id int primary key)"); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _, _ = primary.ExecContext(context.Background(), "drop table if exists "+env.table) })
	deadline := time.Now().Add(30 * time.Second)
	for {
		var there bool
		if err := replica.QueryRowContext(bg, "select to_regclass($1) is not null", env.table).Scan(&there); err != nil {
			t.Fatal(err)
		}
		if there {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the replica never replayed the table's creation")
		}
		time.Sleep(20 * time.Millisecond)
	}

	dbA := openConsDB(t, primaryDSN, replicaDSN)
	dbB := openConsDB(t, primaryDSN, replicaDSN)

	// Pause replay: from here on, the replica never has A's writes.
	t.Cleanup(func() {
		if _, err := replica.ExecContext(context.Background(), "select pg_wal_replay_resume()"); err != nil {
			t.Errorf("resume replay: %v", err)
		}
	})
	if _, err := replica.ExecContext(bg, "select pg_wal_replay_pause()"); err != nil {
		t.Fatal(err)
	}

	var err2 error
	env.engA, err2 = New(WithEdge(), WithSigningKey(consKey), WithUserHashKey([]byte("e2e-consistency-hash-key-0123456")))
	if err2 != nil {
		t.Fatal(err2)
	}
	t.Cleanup(func() { _ = env.engA.Close() })
	env.engB, err2 = New(WithSigningKey(consKey))
	if err2 != nil {
		t.Fatal(err2)
	}
	t.Cleanup(func() { _ = env.engB.Close() })

	// B over HTTP.
	rb := chi.NewRouter()
	rb.Use(env.engB.Middleware)
	rb.Get("/read", func(w http.ResponseWriter, r *http.Request) {
		id, _ := strconv.Atoi(r.URL.Query().Get("id"))
		res, err := readRow(r.Context(), dbB, env.table, id)
		if err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		_ = json.NewEncoder(w).Encode(res)
	})
	bHTTP := httptest.NewServer(rb)
	t.Cleanup(bHTTP.Close)

	// B over gRPC.
	gsrv := grpc.NewServer(grpc.UnaryInterceptor(env.engB.UnaryServerInterceptor))
	healthpb.RegisterHealthServer(gsrv, &consHealth{env: env, db: dbB})
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	served := make(chan struct{})
	go func() { defer close(served); _ = gsrv.Serve(lis) }()
	t.Cleanup(func() { gsrv.Stop(); <-served })
	tamperMD := func(ctx context.Context, method string, req, reply any, cc *grpc.ClientConn, invoker grpc.UnaryInvoker, opts ...grpc.CallOption) error {
		if f := env.tamperGRPC.Load(); f != nil {
			md, _ := metadata.FromOutgoingContext(ctx)
			md = md.Copy()
			(*f)(md)
			ctx = metadata.NewOutgoingContext(ctx, md)
		}
		return invoker(ctx, method, req, reply, cc, opts...)
	}
	conn, err := grpc.NewClient(lis.Addr().String(),
		grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithChainUnaryInterceptor(env.engA.UnaryClientInterceptor, tamperMD))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = conn.Close() })
	health := healthpb.NewHealthClient(conn)

	// A: writes the row (unless write=0), then asks B to read it.
	client := &http.Client{Transport: env.engA.Transport(tamperRT{env: env, base: http.DefaultTransport})}
	t.Cleanup(client.CloseIdleConnections)
	ra := chi.NewRouter()
	ra.Use(env.engA.Middleware)
	ra.Post("/call", func(w http.ResponseWriter, r *http.Request) {
		q := r.URL.Query()
		id, _ := strconv.Atoi(q.Get("id"))
		ctx := r.Context()
		if q.Get("write") != "0" {
			if _, err := dbA.ExecContext(ctx, "insert into "+env.table+" values ($1)", id); err != nil {
				http.Error(w, "write: "+err.Error(), http.StatusInternalServerError)
				return
			}
		}
		var res consRead
		switch q.Get("via") {
		case "grpc":
			if _, err := health.Check(ctx, &healthpb.HealthCheckRequest{Service: strconv.Itoa(id)}); err != nil {
				http.Error(w, "grpc: "+err.Error(), http.StatusBadGateway)
				return
			}
			v, _ := env.grpcSeen.Load(id)
			res, _ = v.(consRead)
		default:
			req, _ := http.NewRequestWithContext(ctx, http.MethodGet, bHTTP.URL+"/read?id="+strconv.Itoa(id), nil)
			resp, err := client.Do(req)
			if err != nil {
				http.Error(w, "http: "+err.Error(), http.StatusBadGateway)
				return
			}
			defer resp.Body.Close()
			if resp.StatusCode != http.StatusOK || json.NewDecoder(resp.Body).Decode(&res) != nil {
				http.Error(w, "http: B answered "+resp.Status, http.StatusBadGateway)
				return
			}
		}
		_ = json.NewEncoder(w).Encode(res)
	})
	env.a = httptest.NewServer(ra)
	t.Cleanup(env.a.Close)
	return env
}

// call asks A, as user, to (maybe) write row id and have B read it via
// "http" or "grpc".
func (env *consEnv) call(t *testing.T, user string, id int, via string, write bool) consRead {
	t.Helper()
	w := "1"
	if !write {
		w = "0"
	}
	req, _ := http.NewRequest(http.MethodPost, fmt.Sprintf("%s/call?id=%d&via=%s&write=%s", env.a.URL, id, via, w), nil)
	req.Header.Set(tenant.HeaderTenant, "acme")
	req.Header.Set(tenant.HeaderUser, user)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var r consRead
	if resp.StatusCode != http.StatusOK {
		var b strings.Builder
		_, _ = io.Copy(&b, resp.Body)
		t.Fatalf("A answered %s: %s", resp.Status, b.String())
	}
	if err := json.NewDecoder(resp.Body).Decode(&r); err != nil {
		t.Fatal(err)
	}
	return r
}

func TestEndToEndConsistencyToken(t *testing.T) {
	env := newConsEnv(t)
	id := 0
	next := func() int { id++; return id }
	onPrimaryWithWrite := consRead{Seen: true, InRecovery: false}
	staleOnReplica := consRead{Seen: false, InRecovery: true}

	for _, via := range []string{"http", "grpc"} {
		t.Run(via+"/token carried: B reads A's write on the primary", func(t *testing.T) {
			if got := env.call(t, "alice", next(), via, true); got != onPrimaryWithWrite {
				t.Fatalf("B read %+v, want %+v (A's write, on the primary)", got, onPrimaryWithWrite)
			}
		})
		t.Run(via+"/no write: B reads on the replica", func(t *testing.T) {
			if got := env.call(t, "alice", next(), via, false); !got.InRecovery {
				t.Fatalf("B read %+v, want the replica (A did not write)", got)
			}
		})
	}
	if n := env.engB.RejectedConsistencyTokens(); n != 0 {
		t.Fatalf("B rejected %d valid tokens", n)
	}

	// The controls: without the token, the same read is stale. Each
	// tampered token is ignored, counted, and never an error.
	other, err := tenant.NewDecisionSigner([]byte("not-the-shared-key-0123456789"))
	if err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name  string
		via   string
		http  func(http.Header)
		grpc  func(metadata.MD)
		count uint64 // rejections B counts
	}{
		{name: "stripped", via: "http", http: func(h http.Header) { h.Del(tenant.HeaderConsistency) }},
		{name: "stripped", via: "grpc", grpc: func(md metadata.MD) { md.Delete(tenant.GRPC.Consistency) }},
		{name: "forged with another key", via: "http", count: 1, http: func(h http.Header) {
			v, _ := other.SignPosition("acme", mustLabels(t, h).UserHash, ^uint64(0)>>1, time.Now().Add(time.Minute))
			h.Set(tenant.HeaderConsistency, v)
		}},
		{name: "forged with another key", via: "grpc", count: 1, grpc: func(md metadata.MD) {
			l := mustLabelsMD(t, md)
			v, _ := other.SignPosition(l.Tenant, l.UserHash, ^uint64(0)>>1, time.Now().Add(time.Minute))
			md.Set(tenant.GRPC.Consistency, v)
		}},
		{name: "oversized", via: "http", count: 1, http: func(h http.Header) {
			h.Set(tenant.HeaderConsistency, strings.Repeat("c1;", 4000))
		}},
		{name: "repeated", via: "grpc", count: 1, grpc: func(md metadata.MD) {
			md.Append(tenant.GRPC.Consistency, md.Get(tenant.GRPC.Consistency)...)
		}},
	}
	for _, tc := range cases {
		t.Run(tc.via+"/"+tc.name+": B's read is stale", func(t *testing.T) {
			before := env.engB.RejectedConsistencyTokens()
			if tc.http != nil {
				env.tamperHTTP.Store(&tc.http)
				defer env.tamperHTTP.Store(nil)
			}
			if tc.grpc != nil {
				env.tamperGRPC.Store(&tc.grpc)
				defer env.tamperGRPC.Store(nil)
			}
			if got := env.call(t, "alice", next(), tc.via, true); got != staleOnReplica {
				t.Fatalf("B read %+v, want %+v (no valid token: the paused replica)", got, staleOnReplica)
			}
			if n := env.engB.RejectedConsistencyTokens() - before; n != tc.count {
				t.Fatalf("B counted %d rejected tokens, want %d", n, tc.count)
			}
		})
	}

	// A valid token copied onto another user's request steers nothing.
	t.Run("http/alice's token on bob's request is ignored", func(t *testing.T) {
		aliceRow := next()
		if got := env.call(t, "alice", aliceRow, "http", true); got != onPrimaryWithWrite {
			t.Fatalf("alice: B read %+v", got)
		}
		stolen := *env.lastHTTPToken.Load()
		if stolen == "" {
			t.Fatal("A sent no token for alice's write")
		}
		replay := func(h http.Header) { h.Set(tenant.HeaderConsistency, stolen) }
		env.tamperHTTP.Store(&replay)
		defer env.tamperHTTP.Store(nil)
		before := env.engB.RejectedConsistencyTokens()
		// Bob does not write; he reads alice's row through B.
		if got := env.call(t, "bob", aliceRow, "http", false); got != staleOnReplica {
			t.Fatalf("bob with alice's token: B read %+v, want %+v", got, staleOnReplica)
		}
		if n := env.engB.RejectedConsistencyTokens() - before; n != 1 {
			t.Fatalf("B counted %d rejected tokens, want 1 (another user's)", n)
		}
	})
}

// mustLabels returns the labels A's decision header carries, as B would
// adopt them.
func mustLabels(t *testing.T, h http.Header) tenant.Labels {
	t.Helper()
	return decisionLabels(t, h.Get(tenant.HeaderDecision))
}

func mustLabelsMD(t *testing.T, md metadata.MD) tenant.Labels {
	t.Helper()
	vs := md.Get(tenant.GRPC.Decision)
	if len(vs) != 1 {
		t.Errorf("outgoing metadata has %d decisions", len(vs))
		return tenant.Labels{}
	}
	return decisionLabels(t, vs[0])
}

func decisionLabels(t *testing.T, v string) tenant.Labels {
	t.Helper()
	s, err := tenant.NewDecisionSigner(consKey)
	if err != nil {
		t.Fatal(err)
	}
	d, err := s.Verify(v, time.Now())
	if err != nil {
		t.Errorf("A's decision does not verify: %v", err)
	}
	return d.Labels()
}
