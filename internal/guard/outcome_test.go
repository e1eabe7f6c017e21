package guard

import (
	"testing"

	"google.golang.org/grpc/codes"
)

func TestHTTPFailed(t *testing.T) {
	for status, want := range map[int]bool{
		0: false, 200: false, 204: false, 301: false, 400: false, 404: false, 429: false, 499: false,
		500: true, 502: true, 503: true, 504: true, 599: true, 600: false, -1: false,
	} {
		if got := HTTPFailed(status); got != want {
			t.Errorf("HTTPFailed(%d) = %v, want %v", status, got, want)
		}
	}
}

func TestGRPCFailed(t *testing.T) {
	failing := map[codes.Code]bool{
		codes.Unavailable: true, codes.Internal: true, codes.Unknown: true,
		codes.DeadlineExceeded: true, codes.DataLoss: true,
	}
	for c := codes.OK; c <= codes.Unauthenticated; c++ {
		if got := GRPCFailed(c); got != failing[c] {
			t.Errorf("GRPCFailed(%v) = %v, want %v", c, got, failing[c])
		}
	}
	if GRPCFailed(codes.Code(99)) {
		t.Error("an unknown code number counts as a failure")
	}
}
