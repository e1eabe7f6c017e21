package interceptors_test

import (
	"context"
	"errors"
	"net/netip"
	"strings"
	"testing"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/reqcanary/canary/tenant"
)

const (
	testTraceID     = "4bf92f3577b34da6a3ce929d0e0e4736"
	testTraceParent = "00-" + testTraceID + "-00f067aa0ba902b7-01"
)

func TestServerLabelsTheCall(t *testing.T) {
	conn, rec := start(t, setup{})
	for _, c := range calls {
		t.Run(c.name, func(t *testing.T) {
			ctx := metadata.AppendToOutgoingContext(context.Background(),
				"x-tenant-id", "acme", "x-user-id", "alice", "traceparent", testTraceParent)
			if err := c.do(ctx, conn); err != nil {
				t.Fatal(err)
			}
			got := rec.last(t)
			if !got.ok {
				t.Fatal("the handler's context carries no labels")
			}
			want := labelsFor("acme", "alice", "", false, testTraceID)
			if got.labels != want {
				t.Fatalf("labels = %+v\nwant     %+v", got.labels, want)
			}
			req := rec.lastReq(t)
			if req.Wire != tenant.GRPC {
				t.Fatalf("decider got wire %+v, want tenant.GRPC", req.Wire)
			}
			if req.Peer.IsValid() {
				t.Fatalf("bufconn peer decoded as %v, want the zero Addr", req.Peer)
			}
		})
	}
}

func TestServerFillsTraceIDTheDeciderLeftOut(t *testing.T) {
	d := tenant.DeciderFunc(func(context.Context, tenant.Request) (tenant.Labels, error) {
		return tenant.Labels{Cohort: tenant.Stable, Bucket: tenant.NoBucket}, nil
	})
	conn, rec := start(t, setup{decider: d})
	for _, tc := range []struct{ traceparent, want string }{
		{testTraceParent, testTraceID},
		{"00-00000000000000000000000000000000-00f067aa0ba902b7-01", ""}, // invalid: all-zero trace id
		{"", ""},
	} {
		ctx := context.Background()
		if tc.traceparent != "" {
			ctx = metadata.AppendToOutgoingContext(ctx, "traceparent", tc.traceparent)
		}
		if err := check(ctx, conn); err != nil {
			t.Fatal(err)
		}
		if got := rec.last(t).labels.TraceID; got != tc.want {
			t.Fatalf("traceparent %q: TraceID = %q, want %q", tc.traceparent, got, tc.want)
		}
	}
}

// The override is honoured only from a trusted (here: loopback) peer: over
// real TCP the peer is 127.0.0.1, over bufconn it is unknown.
func TestServerPeer(t *testing.T) {
	for _, tcp := range []bool{true, false} {
		conn, rec := start(t, setup{tcp: tcp})
		for _, c := range calls {
			ctx := metadata.AppendToOutgoingContext(context.Background(), "x-tenant-id", "acme", "x-canary", "stable")
			if err := c.do(ctx, conn); err != nil {
				t.Fatal(err)
			}
			req, got := rec.lastReq(t), rec.last(t).labels
			if tcp {
				if req.Peer != netip.MustParseAddr("127.0.0.1") {
					t.Fatalf("tcp %s: peer = %v, want 127.0.0.1", c.name, req.Peer)
				}
				if got.Reason != tenant.ReasonOverride || got.Cohort != tenant.Stable {
					t.Fatalf("tcp %s: labels %+v, want the loopback override honoured", c.name, got)
				}
			} else if req.Peer.IsValid() || got.Reason == tenant.ReasonOverride {
				t.Fatalf("bufconn %s: peer %v, labels %+v: an unknown peer must not be trusted", c.name, req.Peer, got)
			}
		}
	}
}

func TestServerInvalidArgument(t *testing.T) {
	conn, rec := start(t, setup{})
	for _, tc := range []struct {
		name string
		kv   []string
		want string
	}{
		{"tenant too long", []string{"x-tenant-id", strings.Repeat("a", 65)}, "x-tenant-id: longer than 64 bytes"},
		{"tenant with slash", []string{"x-tenant-id", "ac/me"}, "x-tenant-id: byte 2 is not one of [A-Za-z0-9._:-]"},
		{"tenant repeated", []string{"x-tenant-id", "a", "x-tenant-id", "b"}, "x-tenant-id: more than one value"},
		{"user too long", []string{"x-user-id", strings.Repeat("u", 257)}, "x-user-id: longer than 256 bytes"},
		{"bad override", []string{"x-canary", "maybe"}, "x-canary: must be canary or stable"},
	} {
		for _, c := range calls {
			t.Run(tc.name+"/"+c.name, func(t *testing.T) {
				before := rec.count()
				err := c.do(metadata.AppendToOutgoingContext(context.Background(), tc.kv...), conn)
				s, _ := status.FromError(err)
				if s.Code() != codes.InvalidArgument || s.Message() != tc.want {
					t.Fatalf("err = %v, want InvalidArgument %q", err, tc.want)
				}
				if rec.count() != before {
					t.Fatal("the handler ran for an invalid call")
				}
			})
		}
	}
}

func TestServerDeciderErrors(t *testing.T) {
	for _, tc := range []struct {
		name    string
		err     error
		nil     bool
		code    codes.Code
		message string
	}{
		{"plain error", errors.New("plan store unreachable"), false, codes.Internal, "canary: deciding the call's cohort: plan store unreachable"},
		{"wrapped field error", errorsJoin(&tenant.FieldError{Field: "x-canary-decision", Reason: "bad"}), false, codes.InvalidArgument, "x-canary-decision: bad"},
		{"status error kept", status.Error(codes.PermissionDenied, "no"), false, codes.PermissionDenied, "no"},
		{"context error", context.DeadlineExceeded, false, codes.DeadlineExceeded, context.DeadlineExceeded.Error()},
		{"nil decider", nil, true, codes.Internal, "canary interceptors: built with a nil tenant.Decider"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d := tenant.DeciderFunc(func(context.Context, tenant.Request) (tenant.Labels, error) { return tenant.Labels{}, tc.err })
			s := setup{decider: d}
			if tc.nil {
				s = setup{noDecider: true}
			}
			conn, rec := start(t, s)
			for _, c := range calls {
				err := c.do(context.Background(), conn)
				st, _ := status.FromError(err)
				if st.Code() != tc.code || st.Message() != tc.message {
					t.Fatalf("%s: err = %v, want %v %q", c.name, err, tc.code, tc.message)
				}
			}
			if rec.count() != 0 {
				t.Fatal("the handler ran although the decision failed")
			}
		})
	}
}

func errorsJoin(err error) error { return errors.Join(errors.New("decision"), err) }

// A Decider may keep Request.Source past Decide: it goes on reading the
// metadata of its own call, never that of a later call (another tenant's).
func TestServerSourceOutlivesDecide(t *testing.T) {
	conn, rec := start(t, setup{})
	tenants := []string{"acme", "globex", "initech"}
	for _, c := range calls {
		t.Run(c.name, func(t *testing.T) {
			var kept []tenant.Source
			for _, tn := range tenants {
				ctx := metadata.AppendToOutgoingContext(context.Background(), "x-tenant-id", tn)
				if err := c.do(ctx, conn); err != nil {
					t.Fatal(err)
				}
				kept = append(kept, rec.lastReq(t).Source)
			}
			for i, src := range kept {
				if got := src.Values("x-tenant-id"); len(got) != 1 || got[0] != tenants[i] {
					t.Errorf("call %d's Source reads x-tenant-id %q after later calls, want %q", i, got, tenants[i])
				}
			}
		})
	}
}

// The Source a Decider gets reads metadata and nothing else: it is neither
// the call's context, nor its stream, nor the labels context it shares an
// allocation with.
func TestServerSourceIsOnlyASource(t *testing.T) {
	type labeller interface {
		Label(tenant.Labels) context.Context
	}
	conn, rec := start(t, setup{})
	for _, c := range calls {
		if err := c.do(context.Background(), conn); err != nil {
			t.Fatal(err)
		}
		src := rec.lastReq(t).Source
		if _, ok := src.(context.Context); ok {
			t.Errorf("%s: the Source is a context.Context", c.name)
		}
		if _, ok := src.(grpc.ServerStream); ok {
			t.Errorf("%s: the Source is a grpc.ServerStream", c.name)
		}
		if _, ok := src.(labeller); ok {
			t.Errorf("%s: the Source can set labels", c.name)
		}
	}
}
