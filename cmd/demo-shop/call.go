package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"strings"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/reqcanary/canary/tenant"
)

// runCall is "demo-shop call": one call to the shop's gRPC API, printed as
// JSON, so the walk-through needs no grpcurl (which would need .proto files or
// reflection):
//
//	demo-shop call -tenant acme -user alice ListProducts
//	demo-shop call -tenant acme -user alice CreateOrder '{"product_id":1,"quantity":2}'
func runCall(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("demo-shop call", flag.ContinueOnError)
	fs.SetOutput(stderr)
	addr := fs.String("addr", "127.0.0.1:9090", "the shop's gRPC `address`")
	tenantID := fs.String("tenant", "", "tenant id, sent as x-tenant-id")
	user := fs.String("user", "", "user id, sent as x-user-id")
	override := fs.String("override", "", "canary or stable, sent as x-canary")
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: demo-shop call [flags] ListProducts|GetProduct|CreateOrder|GetOrder [JSON request]")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return exitOK
		}
		return exitUsage
	}
	if fs.NArg() < 1 || fs.NArg() > 2 {
		fmt.Fprintln(stderr, "demo-shop call: want a method and at most one JSON request")
		fs.Usage()
		return exitUsage
	}
	method, body := fs.Arg(0), "{}"
	if fs.NArg() == 2 {
		body = fs.Arg(1)
	}
	var req json.RawMessage
	if err := json.Unmarshal([]byte(body), &req); err != nil {
		fmt.Fprintf(stderr, "demo-shop call: request: not JSON: %v\n", err)
		return exitUsage
	}
	conn, err := grpc.NewClient(*addr,
		grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithDefaultCallOptions(grpc.ForceCodec(jsonCodec{})))
	if err != nil {
		fmt.Fprintf(stderr, "demo-shop call: -addr: %v\n", err)
		return exitUsage
	}
	defer conn.Close()
	var kv []string
	for k, v := range map[string]string{tenant.GRPC.Tenant: *tenantID, tenant.GRPC.User: *user, tenant.GRPC.Override: *override} {
		if v != "" {
			kv = append(kv, k, v)
		}
	}
	ctx, cancel := context.WithTimeout(metadata.AppendToOutgoingContext(ctx, kv...), 10*time.Second)
	defer cancel()
	var resp json.RawMessage
	var trailer metadata.MD
	err = conn.Invoke(ctx, "/"+shopServiceName+"/"+strings.TrimPrefix(method, "/"), req, &resp, grpc.Trailer(&trailer))
	if err != nil {
		st := status.Convert(err)
		fmt.Fprintf(stderr, "demo-shop call: %s: %s (cohort %s, served by %s)\n", st.Code(), st.Message(),
			first(trailer, "x-canary-cohort"), first(trailer, "x-canary-served-by"))
		return exitError
	}
	var out bytes.Buffer
	_ = json.Indent(&out, resp, "", "  ")
	fmt.Fprintln(stdout, out.String())
	return exitOK
}

func first(md metadata.MD, key string) string {
	if v := md.Get(key); len(v) > 0 {
		return v[0]
	}
	return "-"
}
