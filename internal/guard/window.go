package guard

import (
	"math"
	"runtime"
	"sync"
	"sync/atomic"
	"time"
)

// Epoch values of a slot that are not bucket numbers.
const (
	epochResetting = math.MinInt64     // a goroutine is clearing the slot
	epochEmpty     = math.MinInt64 + 1 // the slot holds nothing
)

// Cohort indexes into a slot's counters.
const (
	stableIdx = 0
	canaryIdx = 1
)

// slot is one time bucket of the sliding window: failure counts and latency
// histograms of both cohorts (the histogram's total is the request count).
type slot struct {
	epoch atomic.Int64 // bucket number held, or epochResetting / epochEmpty
	fails [2]atomic.Uint64
	hist  [2][HistogramBins]atomic.Uint64
}

// clear zeroes every counter; the caller owns the slot (epochResetting).
func (s *slot) clear() {
	for c := range s.fails {
		s.fails[c].Store(0)
		for b := range s.hist[c] {
			s.hist[c][b].Store(0)
		}
	}
}

// window is a ring of slots; bucket number n lives in slot n mod len(slots).
// A slot is recycled lazily by the first Record that reaches it in a newer
// bucket. All methods are safe for concurrent use; record is lock-free.
type window struct {
	origin time.Time // bucket 0 starts here
	width  time.Duration
	slots  []slot

	// Readers (collect, reset) serialise on mu; Record never takes it.
	mu   sync.Mutex
	done []doneSlot // copies of finished slots, summed in sum
	sum  doneSlot
}

func newWindow(origin time.Time, buckets int, width time.Duration) *window {
	w := &window{origin: origin, width: width, slots: make([]slot, buckets), done: make([]doneSlot, buckets)}
	for i := range w.slots {
		w.slots[i].epoch.Store(epochEmpty)
	}
	w.forget()
	return w
}

// epochAt returns the number of the bucket that holds the instant t.
func (w *window) epochAt(t time.Time) int64 {
	d := t.Sub(w.origin)
	if d < 0 {
		return -int64((-d + w.width - 1) / w.width)
	}
	return int64(d / w.width)
}

func (w *window) slotOf(epoch int64) *slot {
	n := int64(len(w.slots))
	return &w.slots[((epoch%n)+n)%n]
}

// claim returns the slot for bucket epoch, recycling it when it still holds
// an older bucket, or nil when it already holds a newer one (the sample is
// older than the window: a stalled caller or a clock that went back).
func (w *window) claim(epoch int64) *slot {
	s := w.slotOf(epoch)
	for {
		e := s.epoch.Load()
		switch {
		case e == epoch:
			return s
		case e == epochResetting:
			runtime.Gosched()
		case e > epoch:
			return nil
		case s.epoch.CompareAndSwap(e, epochResetting):
			s.clear()
			s.epoch.Store(epoch)
			return s
		}
	}
}

// record counts one outcome of cohort c at instant t.
func (w *window) record(t time.Time, c int, failed bool, latency time.Duration) {
	s := w.claim(w.epochAt(t))
	if s == nil {
		return
	}
	if failed {
		s.fails[c].Add(1)
	}
	s.hist[c][binOf(latency)].Add(1)
}

// reset empties every slot.
func (w *window) reset() {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.forget()
	for i := range w.slots {
		s := &w.slots[i]
		for {
			e := s.epoch.Load()
			if e == epochResetting {
				runtime.Gosched()
				continue
			}
			if s.epoch.CompareAndSwap(e, epochResetting) {
				s.clear()
				s.epoch.Store(epochEmpty)
				break
			}
		}
	}
}

// readSlot copies the counters of s, which held bucket epoch, into fails and
// hists; it reports false when the slot was recycled while being read.
func readSlot(s *slot, epoch int64, fails *[2]uint64, hists *[2]Histogram) bool {
	for c := range hists {
		fails[c] = s.fails[c].Load()
		h := &hists[c]
		h.count = 0
		for b := range s.hist[c] {
			n := s.hist[c][b].Load()
			h.bins[b] = n
			h.count += n
		}
	}
	return s.epoch.Load() == epoch
}

// collect returns the failures and latencies per cohort of the window that
// ends with the bucket holding t.
//
// Finished buckets no longer change, so collect reads each of them once and
// keeps their sum; every call reads only the bucket in progress and the
// buckets that finished since the last call. A Record that raced a bucket's
// end by a few instructions can be missed by the sum.
func (w *window) collect(t time.Time, fails *[2]uint64, hists *[2]Histogram) {
	w.mu.Lock()
	defer w.mu.Unlock()
	cur := w.epochAt(t)
	oldest := cur - int64(len(w.slots)) + 1
	for i := range w.slots {
		s, c := &w.slots[i], &w.done[i]
		e := s.epoch.Load()
		want := e
		if e < oldest || e >= cur {
			want = epochEmpty // outside the window, in progress, or empty
		}
		if c.epoch == want {
			continue
		}
		if c.epoch != epochEmpty {
			w.sum.remove(c)
			c.epoch = epochEmpty
		}
		if want != epochEmpty && readSlot(s, e, &c.fails, &c.hists) {
			c.epoch = e
			w.sum.add(c)
		}
	}
	*fails, *hists = w.sum.fails, w.sum.hists
	var live doneSlot
	if s := w.slotOf(cur); s.epoch.Load() == cur && readSlot(s, cur, &live.fails, &live.hists) {
		for c := range hists {
			fails[c] += live.fails[c]
			hists[c].Merge(&live.hists[c])
		}
	}
}

// doneSlot is a plain copy of a finished slot, or the sum of several.
type doneSlot struct {
	epoch int64 // bucket copied, or epochEmpty
	fails [2]uint64
	hists [2]Histogram
}

func (d *doneSlot) add(o *doneSlot) {
	for c := range d.hists {
		d.fails[c] += o.fails[c]
		d.hists[c].Merge(&o.hists[c])
	}
}

func (d *doneSlot) remove(o *doneSlot) {
	for c := range d.hists {
		d.fails[c] -= o.fails[c]
		h, x := &d.hists[c], &o.hists[c]
		for b, n := range x.bins {
			h.bins[b] -= n
		}
		h.count -= x.count
	}
}

// forget drops the sums of finished buckets; the caller holds mu.
func (w *window) forget() {
	for i := range w.done {
		w.done[i].epoch = epochEmpty
	}
	w.sum = doneSlot{epoch: epochEmpty}
}
