package guard

import (
	"math/bits"
	"time"
)

// Latencies are kept in a log-linear histogram of microseconds: values below
// 16 µs have a bin each; above, every power of two is split into 8 equal
// bins, so a bin is between 1/15 and 1/8 of its lower bound wide and a
// quantile read at the bin's midpoint is within 6.25 % of the true value.
// Values of 2^28 µs (about 4.5 minutes) and more share the last bin.
const (
	histSubBits = 3
	histSub     = 1 << histSubBits // bins per power of two
	histMaxExp  = 27               // largest power of two with its own bins
	// HistogramBins is the number of bins of a [Histogram].
	HistogramBins = (histMaxExp - histSubBits + 2) * histSub
)

// HistogramMaxError is the largest relative error of a quantile read from a
// [Histogram], for latencies of 16 µs and more.
const HistogramMaxError = 1.0 / (2 * histSub)

// binOf returns the bin of a latency.
func binOf(d time.Duration) int {
	if d <= 0 {
		return 0
	}
	us := uint64(d / time.Microsecond)
	if us < histSub {
		return int(us)
	}
	e := bits.Len64(us) - 1 // us is in [2^e, 2^(e+1))
	if e > histMaxExp {
		return HistogramBins - 1
	}
	return (e-histSubBits+1)*histSub + int((us>>(e-histSubBits))&(histSub-1))
}

// binBounds returns the lower bound and the width of bin b, in microseconds.
func binBounds(b int) (lower, width uint64) {
	if b < histSub {
		return uint64(b), 1
	}
	e := b/histSub + histSubBits - 1
	sub := uint64(b % histSub)
	shift := e - histSubBits
	return (histSub + sub) << shift, 1 << shift
}

// Histogram is a fixed-size log-linear histogram of latencies. The zero value
// is empty and ready to use. It is a plain value, not safe for concurrent
// mutation; the guard fills one per cohort from its atomic counters.
type Histogram struct {
	bins  [HistogramBins]uint64
	count uint64
}

// Add records one latency. Negative latencies count as zero.
func (h *Histogram) Add(d time.Duration) { h.AddN(d, 1) }

// AddN records n occurrences of a latency.
func (h *Histogram) AddN(d time.Duration, n uint64) {
	h.bins[binOf(d)] += n
	h.count += n
}

// Merge adds every latency recorded in o to h.
func (h *Histogram) Merge(o *Histogram) {
	for i, n := range o.bins {
		h.bins[i] += n
	}
	h.count += o.count
}

// Count returns the number of latencies recorded.
func (h *Histogram) Count() uint64 { return h.count }

// Quantile returns the latency below or at which a fraction q (0..1) of the
// recorded latencies lie, read at the midpoint of its bin (see
// [HistogramMaxError]); 0 when the histogram is empty. q is clamped to 0..1.
func (h *Histogram) Quantile(q float64) time.Duration {
	if h.count == 0 {
		return 0
	}
	switch {
	case q < 0 || q != q:
		q = 0
	case q > 1:
		q = 1
	}
	// rank is the 1-based position of the wanted value among the sorted
	// latencies: the smallest r with r >= q*count.
	rank := uint64(q * float64(h.count))
	if float64(rank) < q*float64(h.count) {
		rank++
	}
	if rank == 0 {
		rank = 1
	}
	var seen uint64
	for b, n := range h.bins {
		seen += n
		if seen >= rank {
			lower, width := binBounds(b)
			// midpoint, in nanoseconds
			return time.Duration(lower)*time.Microsecond + time.Duration(width)*time.Microsecond/2
		}
	}
	return 0 // unreachable while count matches the bins
}

// countAbove returns how many recorded latencies certainly exceed d: those in
// the bins that lie wholly above it.
func (h *Histogram) countAbove(d time.Duration) uint64 {
	var n uint64
	for b := HistogramBins - 1; b >= 0; b-- {
		lower, _ := binBounds(b)
		if time.Duration(lower)*time.Microsecond <= d {
			break
		}
		n += h.bins[b]
	}
	return n
}
