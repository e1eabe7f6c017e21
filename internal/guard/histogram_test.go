package guard

import (
	"math"
	"math/rand/v2"
	"slices"
	"testing"
	"time"
)

func TestBinsCoverEveryValueInOrder(t *testing.T) {
	prevBin := 0
	// Every microsecond up to 2^20 µs, then a sparser sweep to the clamp.
	check := func(us uint64) {
		b := binOf(time.Duration(us) * time.Microsecond)
		if b < prevBin {
			t.Fatalf("%d µs: bin %d after bin %d: bins not monotone", us, b, prevBin)
		}
		prevBin = b
		if b == HistogramBins-1 && us >= 1<<(histMaxExp+1) {
			return // clamped
		}
		lower, width := binBounds(b)
		if us < lower || us >= lower+width {
			t.Fatalf("%d µs in bin %d = [%d, %d)", us, b, lower, lower+width)
		}
		if us >= 2*histSub && float64(width)/float64(lower) > 1.0/histSub+1e-12 {
			t.Fatalf("bin %d: width %d is more than 1/%d of %d", b, width, histSub, lower)
		}
	}
	for us := uint64(0); us < 1<<20; us++ {
		check(us)
	}
	for us := uint64(1 << 20); us < 1<<(histMaxExp+3); us += us / 97 {
		check(us)
	}
	if got := binOf(time.Duration(math.MaxInt64)); got != HistogramBins-1 {
		t.Errorf("largest duration: bin %d, want the last, %d", got, HistogramBins-1)
	}
	if got := binOf(-time.Second); got != 0 {
		t.Errorf("negative latency: bin %d, want 0", got)
	}
}

func TestQuantileWithinMaxError(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for _, n := range []int{1, 7, 100, 10_000} {
		var h Histogram
		vals := make([]time.Duration, n)
		for i := range vals {
			// log-normal around 30 ms, spanning microseconds to seconds
			vals[i] = time.Duration(30e6 * math.Exp(1.5*rng.NormFloat64()))
			if vals[i] < 20*time.Microsecond {
				vals[i] = 20 * time.Microsecond
			}
			h.Add(vals[i])
		}
		slices.Sort(vals)
		if h.Count() != uint64(n) {
			t.Fatalf("n=%d: Count %d", n, h.Count())
		}
		for _, q := range []float64{0, 0.5, 0.95, 0.99, 1} {
			rank := int(math.Ceil(q * float64(n)))
			want := vals[max(rank, 1)-1]
			got := h.Quantile(q)
			if rel := math.Abs(float64(got-want)) / float64(want); rel > HistogramMaxError {
				t.Errorf("n=%d q=%v: got %v, exact %v: error %.3f > %.4f", n, q, got, want, rel, HistogramMaxError)
			}
		}
	}
}

func TestHistogramEmptyAndMerge(t *testing.T) {
	var a, b, all Histogram
	if a.Quantile(0.95) != 0 || a.Count() != 0 {
		t.Fatal("empty histogram: want count 0 and quantile 0")
	}
	for i := range 1000 {
		d := time.Duration(i) * 137 * time.Microsecond
		all.Add(d)
		if i%3 == 0 {
			a.Add(d)
		} else {
			b.Add(d)
		}
	}
	a.Merge(&b)
	if a != all {
		t.Fatal("merging two halves differs from recording everything in one")
	}
	for _, q := range []float64{-1, math.NaN()} {
		if got, want := all.Quantile(q), all.Quantile(0); got != want {
			t.Errorf("Quantile(%v) = %v, want Quantile(0) = %v", q, got, want)
		}
	}
	if got, want := all.Quantile(7), all.Quantile(1); got != want {
		t.Errorf("Quantile(7) = %v, want Quantile(1) = %v", got, want)
	}
}

func TestCountAbove(t *testing.T) {
	var h Histogram
	h.AddN(10*time.Millisecond, 90)
	h.AddN(50*time.Millisecond, 10)
	if got := h.countAbove(20 * time.Millisecond); got != 10 {
		t.Errorf("above 20ms: %d, want 10", got)
	}
	if got := h.countAbove(time.Millisecond); got != 100 {
		t.Errorf("above 1ms: %d, want 100", got)
	}
	// A bin holding the limit is not counted: its requests may be faster.
	if got := h.countAbove(50 * time.Millisecond); got != 0 {
		t.Errorf("above 50ms: %d, want 0", got)
	}
}
