package guard

import (
	"math/rand/v2"
	"testing"
	"time"
)

// refWindow is a plain reference for window: per slot, the bucket it holds
// and the outcomes recorded in it.
type refWindow struct {
	width time.Duration
	slots []refSlot
}

type refSlot struct {
	epoch     int64
	fails     [2]uint64
	cancelled [2]uint64
	hists     [2]Histogram
}

func newRefWindow(n int, width time.Duration) *refWindow {
	r := &refWindow{width: width, slots: make([]refSlot, n)}
	r.reset()
	return r
}

func (r *refWindow) reset() {
	for i := range r.slots {
		r.slots[i] = refSlot{epoch: epochEmpty}
	}
}

func (r *refWindow) record(epoch int64, c int, k Kind, d time.Duration) {
	s := &r.slots[epoch%int64(len(r.slots))]
	switch {
	case s.epoch > epoch:
		return
	case s.epoch < epoch:
		*s = refSlot{epoch: epoch}
	}
	switch k {
	case ClientCancelled:
		s.cancelled[c]++
		return
	case Failure:
		s.fails[c]++
	}
	s.hists[c].Add(d)
}

func (r *refWindow) collect(cur int64) (fails, cancelled [2]uint64, hists [2]Histogram) {
	for _, s := range r.slots {
		if s.epoch > cur-int64(len(r.slots)) && s.epoch <= cur {
			for c := range hists {
				fails[c] += s.fails[c]
				cancelled[c] += s.cancelled[c]
				hists[c].Merge(&s.hists[c])
			}
		}
	}
	return fails, cancelled, hists
}

// The window, with its cache of finished buckets, agrees with the plain
// reference over random sequences of records, clock moves, reads and resets.
func TestWindowMatchesReference(t *testing.T) {
	for seed := range uint64(50) {
		rng := rand.New(rand.NewPCG(seed, 7))
		n := 1 + rng.IntN(6)
		width := time.Duration(1+rng.IntN(1000)) * time.Millisecond
		origin := simStart
		w := newWindow(origin, n, width, 16, 4)
		ref := newRefWindow(n, width)
		now := origin
		for op := range 3000 {
			switch k := rng.IntN(100); {
			case k < 70:
				c := rng.IntN(2)
				k := Kind(rng.IntN(3))
				d := time.Duration(rng.ExpFloat64() * float64(10*time.Millisecond))
				w.record(now, c, k, unit{}, d)
				ref.record(w.epochAt(now), c, k, d)
			case k < 90:
				// Mostly small steps, sometimes a jump past the window.
				step := time.Duration(rng.Int64N(int64(width)))
				if rng.IntN(20) == 0 {
					step = time.Duration(n+rng.IntN(3)) * width
				}
				now = now.Add(step)
			case k < 99:
				var got counts
				w.collect(now, &got, nil)
				rf, rc, rh := ref.collect(w.epochAt(now))
				fails, hists := got.fails, got.hists
				if fails != rf || hists != rh || got.cancelled != rc {
					t.Fatalf("seed %d op %d: window differs from the reference: fails %v vs %v, counts %d,%d vs %d,%d",
						seed, op, fails, rf, hists[0].Count(), hists[1].Count(), rh[0].Count(), rh[1].Count())
				}
			default:
				w.reset()
				ref.reset()
			}
		}
	}
}
