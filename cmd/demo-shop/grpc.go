package main

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"

	"go.opentelemetry.io/contrib/instrumentation/google.golang.org/grpc/otelgrpc"
	"go.opentelemetry.io/otel/propagation"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/encoding"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/reqcanary/canary"
)

// The gRPC API has no .proto file and no generated code: the service is
// described by hand (shopServiceDesc) and its messages are the same Go
// structs as the HTTP API's, encoded as JSON by jsonCodec, registered under
// the content subtype "json" (content-type application/grpc+json). A Go
// client calls it with grpc.ForceCodec(jsonCodec{}) or
// grpc.CallContentSubtype("json") and conn.Invoke; "demo-shop call" does.
//
//	/demo.shop.v1.Shop/ListProducts  {}                            → reply
//	/demo.shop.v1.Shop/GetProduct    {"id":1}                      → reply
//	/demo.shop.v1.Shop/CreateOrder   {"product_id":1,"quantity":2} → reply
//	/demo.shop.v1.Shop/GetOrder      {"id":7}                      → reply
//
// Tenant, user and override travel as metadata (x-tenant-id, x-user-id,
// x-canary), read by the engine's server interceptor.

// shopServiceName is the gRPC service name.
const shopServiceName = "demo.shop.v1.Shop"

// jsonCodec is a gRPC codec that encodes messages as JSON.
type jsonCodec struct{}

var _ encoding.Codec = jsonCodec{}

func (jsonCodec) Marshal(v any) ([]byte, error)      { return json.Marshal(v) }
func (jsonCodec) Unmarshal(data []byte, v any) error { return json.Unmarshal(data, v) }
func (jsonCodec) Name() string                       { return "json" }

func init() { encoding.RegisterCodec(jsonCodec{}) }

// shopServer is the handler type of the service.
type shopServer interface {
	listProducts(ctx context.Context) (*reply, error)
	getProduct(ctx context.Context, id int64) (*reply, error)
	createOrder(ctx context.Context, in newOrder) (*reply, error)
	getOrder(ctx context.Context, id int64) (*reply, error)
}

var _ shopServer = (*shop)(nil)

// shopServiceDesc describes the service as protoc-gen-go-grpc would.
var shopServiceDesc = grpc.ServiceDesc{
	ServiceName: shopServiceName,
	HandlerType: (*shopServer)(nil),
	Methods: []grpc.MethodDesc{
		unary("ListProducts", func(s shopServer, ctx context.Context, _ *struct{}) (*reply, error) {
			return s.listProducts(ctx)
		}),
		unary("GetProduct", func(s shopServer, ctx context.Context, in *idRequest) (*reply, error) {
			return s.getProduct(ctx, in.ID)
		}),
		unary("CreateOrder", func(s shopServer, ctx context.Context, in *newOrder) (*reply, error) {
			return s.createOrder(ctx, *in)
		}),
		unary("GetOrder", func(s shopServer, ctx context.Context, in *idRequest) (*reply, error) {
			return s.getOrder(ctx, in.ID)
		}),
	},
	Metadata: "cmd/demo-shop/grpc.go",
}

// unary describes one unary method whose request is a *Req.
func unary[Req any](name string, call func(shopServer, context.Context, *Req) (*reply, error)) grpc.MethodDesc {
	full := "/" + shopServiceName + "/" + name
	return grpc.MethodDesc{
		MethodName: name,
		Handler: func(srv any, ctx context.Context, dec func(any) error, ic grpc.UnaryServerInterceptor) (any, error) {
			in := new(Req)
			if err := dec(in); err != nil {
				return nil, status.Errorf(codes.InvalidArgument, "request: %v", err)
			}
			handle := func(ctx context.Context, req any) (any, error) {
				rp, err := call(srv.(shopServer), ctx, req.(*Req))
				if rp != nil {
					// Who decided and who served, also for failed calls.
					_ = grpc.SetTrailer(ctx, metadata.Pairs(
						"x-canary-cohort", string(rp.Labels.Cohort), "x-canary-reason", rp.Labels.Reason,
						"x-canary-served-by", rp.Served.Pricing))
				}
				if err != nil {
					var log *slog.Logger
					if sh, ok := srv.(*shop); ok {
						log = sh.log
					}
					return nil, grpcError(log, rp, err)
				}
				return rp, nil
			}
			if ic == nil {
				return handle(ctx, in)
			}
			return ic(ctx, in, &grpc.UnaryServerInfo{Server: srv, FullMethod: full}, handle)
		},
	}
}

// grpcError maps the shop's errors to gRPC status codes, in one place; the
// message is publicError's (server-side details are logged, not sent).
func grpcError(log *slog.Logger, rp *reply, err error) error {
	code := codes.Internal
	switch {
	case errors.Is(err, errBadInput), errors.Is(err, errNoUser):
		code = codes.InvalidArgument
	case errors.Is(err, errNotFound):
		code = codes.NotFound
	case errors.Is(err, errPricing), errors.Is(err, errDatabase):
		code = codes.Unavailable
	}
	if code == codes.Internal || code == codes.Unavailable {
		logFailure(log, rp, err)
	}
	return status.Error(code, publicError(err))
}

// newGRPCServer is the shop's gRPC server: otelgrpc's stats handler starts
// each call's span (so the labels carry its trace id), then canary's
// interceptor labels the call.
func newGRPCServer(sh *shop, eng *canary.Engine, tel *telemetry) *grpc.Server {
	srv := grpc.NewServer(
		grpc.StatsHandler(otelgrpc.NewServerHandler(
			otelgrpc.WithTracerProvider(tel.tracer),
			otelgrpc.WithMeterProvider(tel.meter),
			otelgrpc.WithPropagators(propagation.TraceContext{}),
		)),
		grpc.ChainUnaryInterceptor(eng.UnaryServerInterceptor),
		grpc.ChainStreamInterceptor(eng.StreamServerInterceptor),
	)
	srv.RegisterService(&shopServiceDesc, sh)
	return srv
}
