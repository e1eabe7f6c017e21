package redisstore_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/reqcanary/canary/planstore"
)

// The same small helpers as planstore/etcdstore's tests (another package):
// the stores are tested against the same expectations.

// errBadPlan is what the test validator returns.
var errBadPlan = errors.New("plan: line 1: want `canary: N`")

// validate stands in for the engine's parser: a plan is "canary: N".
func validate(b []byte) error {
	if !bytes.HasPrefix(b, []byte("canary: ")) {
		return errBadPlan
	}
	return nil
}

func plan(pct int) []byte { return fmt.Appendf(nil, "canary: %d\nnote: x\n", pct) }

func ctxT(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func mustApply(t *testing.T, s planstore.Store, data []byte, expect int64) planstore.Plan {
	t.Helper()
	p, err := s.Apply(ctxT(t), data, expect, planstore.Change{Author: "alice", Note: "step"})
	if err != nil {
		t.Fatalf("Apply(expect %d): %v", expect, err)
	}
	return p
}

// collect reads versions from ch until it has n or the deadline passes.
func collect(ch <-chan planstore.Plan, n int, d time.Duration) []int64 {
	var got []int64
	deadline := time.After(d)
	for len(got) < n {
		select {
		case p, ok := <-ch:
			if !ok {
				return got
			}
			got = append(got, p.Version)
		case <-deadline:
			return got
		}
	}
	return got
}
