package interceptors

import (
	"context"

	"google.golang.org/grpc/metadata"

	"github.com/reqcanary/canary/tenant"
)

// MD adapts gRPC metadata to [tenant.Source] and [tenant.Sink], so the tenant
// package's readers and [tenant.Propagate] work on it. Keys are lowercased,
// as metadata.MD's own methods do. Convert with MD(md); no copy is made.
//
// An MD is not safe for concurrent use if one goroutine writes to it.
type MD metadata.MD

var (
	_ tenant.Source = MD(nil)
	_ tenant.Sink   = MD(nil)
	_ tenant.Source = incoming{}
)

// Values returns the values of key.
func (md MD) Values(key string) []string { return metadata.MD(md).Get(key) }

// Set replaces the values of key by value.
func (md MD) Set(key, value string) { metadata.MD(md).Set(key, value) }

// Del removes key.
func (md MD) Del(key string) { metadata.MD(md).Delete(key) }

// incoming reads a server call's incoming metadata one key at a time, without
// copying the whole of it as metadata.FromIncomingContext would.
type incoming struct{ ctx context.Context }

func (s incoming) Values(key string) []string { return metadata.ValueFromIncomingContext(s.ctx, key) }
