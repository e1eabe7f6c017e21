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

// sketchCells is the number of counters of the failure sketch each slot
// keeps per cohort: a unit's failures go to the cell its hash picks (a
// count-min sketch of one row). Summed over the window, the largest cell
// bounds the failures of any one unit (cells shared by several units only
// make it larger), and the number of non-zero cells estimates the number of
// distinct failing units by linear counting.
const sketchCells = 512

// unitProbes is how many table entries a unit may try before it counts as
// untracked.
const unitProbes = 8

// slot is one time bucket of the sliding window: failure counts and latency
// histograms of both cohorts (the histogram's total is the request count),
// the outcomes left out, the bitmap of units that failed, and the table that
// caps each unit's samples.
type slot struct {
	epoch     atomic.Int64 // bucket number held, or epochResetting / epochEmpty
	fails     [2]atomic.Uint64
	hist      [2][HistogramBins]atomic.Uint64
	cancelled [2]atomic.Uint64              // client-cancelled outcomes
	capped    [2]atomic.Uint64              // left out: the unit had its samples
	untracked [2]atomic.Uint64              // left out: the unit table was full
	sketch    [2][sketchCells]atomic.Uint32 // failures of units, by hash
	samples   [2][sketchCells]atomic.Uint32 // samples of units, by hash
	hasUnits  [2]atomic.Bool                // the sketches may be non-zero

	// units are the per-unit counters of both cohorts, open addressing:
	// fingerprint (32 bits) | bucket tag (24 bits) | count (8 bits). An
	// entry whose tag is not this bucket's is free, so recycling a slot
	// never clears the table.
	units [2][]atomic.Uint64
}

// clear zeroes every counter; the caller owns the slot (epochResetting). The
// unit tables are left as they are (their entries carry the bucket tag).
func (s *slot) clear() {
	for c := range s.fails {
		s.fails[c].Store(0)
		s.cancelled[c].Store(0)
		s.capped[c].Store(0)
		s.untracked[c].Store(0)
		if s.hasUnits[c].Load() {
			for i := range s.sketch[c] {
				s.sketch[c][i].Store(0)
				s.samples[c][i].Store(0)
			}
			s.hasUnits[c].Store(false)
		}
		for b := range s.hist[c] {
			s.hist[c][b].Store(0)
		}
	}
}

// clearUnits empties the unit tables; the caller owns the slot.
func (s *slot) clearUnits() {
	for c := range s.units {
		for i := range s.units[c] {
			s.units[c][i].Store(0)
		}
	}
}

// unit is a hashed randomisation unit; ok false means none.
type unit struct {
	h  uint64
	ok bool
}

// Unit table entries.
const (
	unitTagBits   = 24
	unitTagMask   = 1<<unitTagBits - 1
	unitCountMask = 0xff
)

func unitEntry(fp uint32, tag uint64, n uint64) uint64 {
	return uint64(fp)<<32 | (tag&unitTagMask)<<8 | n
}

// Admission results of a unit's outcome.
const (
	admitted = iota
	overCap
	untracked
)

// admit counts one sample of unit u (hash h) in the table of cohort c of the
// slot holding bucket epoch, allowing at most limit per unit; lock-free.
func (s *slot) admit(c int, epoch int64, h uint64, limit uint64) int {
	tbl := s.units[c]
	mask := uint64(len(tbl) - 1)
	fp := uint32(h >> 32)
	tag := uint64(epoch) & unitTagMask
	for p := range uint64(unitProbes) {
		e := &tbl[(h+p)&mask]
		for {
			v := e.Load()
			if (v>>8)&unitTagMask != tag || v&unitCountMask == 0 { // free: empty or an older bucket's
				if e.CompareAndSwap(v, unitEntry(fp, tag, 1)) {
					return admitted
				}
				continue
			}
			if uint32(v>>32) != fp {
				break // another unit's: probe on
			}
			if v&unitCountMask >= limit {
				return overCap
			}
			if e.CompareAndSwap(v, v+1) {
				return admitted
			}
		}
	}
	return untracked
}

// mix64 scrambles x (splitmix64's finaliser).
func mix64(x uint64) uint64 {
	x ^= x >> 30
	x *= 0xbf58476d1ce4e5b9
	x ^= x >> 27
	x *= 0x94d049bb133111eb
	return x ^ x>>31
}

// window is a ring of slots; bucket number n lives in slot n mod len(slots).
// A slot is recycled lazily by the first Record that reaches it in a newer
// bucket. All methods are safe for concurrent use; record is lock-free.
type window struct {
	origin     time.Time // bucket 0 starts here
	width      time.Duration
	slots      []slot
	unitLimit  uint64 // samples per unit per bucket
	unitsTotal []atomic.Uint64

	// Readers (collect, reset) serialise on mu; Record never takes it.
	mu   sync.Mutex
	done []doneSlot // copies of finished slots, summed in sum
	sum  counts
	live counts  // copy of the bucket in progress
	acc  spanAcc // sums of the suffixes, while collect builds them
}

// newWindow returns a window of buckets slots of width, each tracking up to
// maxUnits units per cohort (a power of two) with at most unitLimit samples
// each.
func newWindow(origin time.Time, buckets int, width time.Duration, maxUnits int, unitLimit int) *window {
	w := &window{origin: origin, width: width, slots: make([]slot, buckets), done: make([]doneSlot, buckets),
		unitLimit: uint64(unitLimit)}
	w.unitsTotal = make([]atomic.Uint64, buckets*2*maxUnits)
	for i := range w.slots {
		w.slots[i].epoch.Store(epochEmpty)
		for c := range 2 {
			off := (2*i + c) * maxUnits
			w.slots[i].units[c] = w.unitsTotal[off : off+maxUnits : off+maxUnits]
		}
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

func (w *window) slotOf(epoch int64) *slot { return &w.slots[w.slotIndex(epoch)] }

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

// record counts one outcome of cohort c at instant t: a failure or not, of
// unit u, taking latency.
func (w *window) record(t time.Time, c int, kind Kind, u unit, latency time.Duration) {
	epoch := w.epochAt(t)
	s := w.claim(epoch)
	if s == nil {
		return
	}
	if kind == ClientCancelled {
		s.cancelled[c].Add(1)
		return
	}
	if u.ok {
		switch s.admit(c, epoch, u.h, w.unitLimit) {
		case overCap:
			s.capped[c].Add(1)
			return
		case untracked:
			// Counted, uncapped: dropping them would let a client that
			// fills the table with units of its own hide everybody
			// else's outcomes (a failing canary among them). The sketch
			// below still sees them, so the worst unit is left out.
			s.untracked[c].Add(1)
		}
	}
	if u.ok { // an outcome without a unit is a unit of its own: not in the sketches
		if !s.hasUnits[c].Load() {
			s.hasUnits[c].Store(true)
		}
		s.samples[c][(u.h>>16)%sketchCells].Add(1)
	}
	if kind == Failure {
		s.fails[c].Add(1)
		if u.ok {
			s.sketch[c][(u.h>>16)%sketchCells].Add(1)
		}
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
				s.clearUnits()
				s.epoch.Store(epochEmpty)
				break
			}
		}
	}
}

// counts are plain copies of a slot's counters, or the sum of several.
type counts struct {
	fails, cancelled, capped, untracked [2]uint64
	hists                               [2]Histogram
	sketch, samples                     [2][sketchCells]uint32
	units                               [2]bool // the sketches may be non-zero
}

func (d *counts) add(o *counts) {
	for c := range d.hists {
		d.fails[c] += o.fails[c]
		d.cancelled[c] += o.cancelled[c]
		d.capped[c] += o.capped[c]
		d.untracked[c] += o.untracked[c]
		d.hists[c].Merge(&o.hists[c])
		if !o.units[c] {
			continue
		}
		d.units[c] = true
		for i, n := range o.sketch[c] {
			d.sketch[c][i] += n
			d.samples[c][i] += o.samples[c][i]
		}
	}
}

func (d *counts) remove(o *counts) {
	for c := range d.hists {
		d.fails[c] -= o.fails[c]
		d.cancelled[c] -= o.cancelled[c]
		d.capped[c] -= o.capped[c]
		d.untracked[c] -= o.untracked[c]
		h, x := &d.hists[c], &o.hists[c]
		for b, n := range x.bins {
			h.bins[b] -= n
		}
		h.count -= x.count
		if !o.units[c] {
			continue
		}
		for i, n := range o.sketch[c] {
			d.sketch[c][i] -= n
			d.samples[c][i] -= o.samples[c][i]
		}
	}
}

// unitFailures returns, for cohort c, an estimate of the number of
// distinct units that failed (outcomes without a unit count one each), and
// the most failures any one unit can have had.
func (d *counts) unitFailures(c int) (units, top uint64) {
	var inSketch uint64
	nonZero := 0
	if !d.units[c] {
		return d.fails[c], min(d.fails[c], 1)
	}
	for _, n := range d.sketch[c] {
		if n > 0 {
			nonZero++
			inSketch += uint64(n)
			top = max(top, uint64(n))
		}
	}
	lone := d.fails[c] - min(inSketch, d.fails[c]) // failures without a unit
	if lone > 0 {
		top = max(top, 1)
	}
	if nonZero == 0 {
		return lone, top
	}
	zeros := max(sketchCells-nonZero, 1)
	est := float64(sketchCells) * math.Log(float64(sketchCells)/float64(zeros))
	return max(uint64(math.Round(est)), uint64(nonZero)) + lone, top
}

// topUnitSamples returns the most samples any one unit of cohort c can have
// counted (1 when there are samples without a unit only).
func (d *counts) topUnitSamples(c int) uint64 {
	var top, in uint64
	if !d.units[c] {
		return min(d.hists[c].count, 1)
	}
	for _, n := range d.samples[c] {
		top = max(top, uint64(n))
		in += uint64(n)
	}
	if d.hists[c].count > in {
		top = max(top, 1)
	}
	return top
}

// readSlot copies the counters of s, which held bucket epoch, into d; it
// reports false when the slot was recycled while being read.
func readSlot(s *slot, epoch int64, d *counts) bool {
	for c := range d.hists {
		d.fails[c] = s.fails[c].Load()
		d.cancelled[c] = s.cancelled[c].Load()
		d.capped[c] = s.capped[c].Load()
		d.untracked[c] = s.untracked[c].Load()
		switch {
		case s.hasUnits[c].Load():
			d.units[c] = true
			for i := range d.sketch[c] {
				d.sketch[c][i] = s.sketch[c][i].Load()
				d.samples[c][i] = s.samples[c][i].Load()
			}
		case d.units[c]:
			d.units[c] = false
			d.sketch[c], d.samples[c] = [sketchCells]uint32{}, [sketchCells]uint32{}
		}
		h := &d.hists[c]
		h.count = 0
		for b := range s.hist[c] {
			n := s.hist[c][b].Load()
			h.bins[b] = n
			h.count += n
		}
	}
	return s.epoch.Load() == epoch
}

// collect returns in out the counts per cohort of the window that ends with
// the bucket holding t, and, when spans is not nil, the figures of each of
// the window's suffixes (see [Span]) in *spans, newest first.
//
// Finished buckets no longer change, so collect reads each of them once and
// keeps their sum; every call reads only the bucket in progress and the
// buckets that finished since the last call. A Record that raced a bucket's end by a few
// instructions can be missed by the sum.
func (w *window) collect(t time.Time, out *counts, spans *[]Span) {
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
			w.sum.remove(&c.counts)
			c.epoch = epochEmpty
		}
		if want != epochEmpty && readSlot(s, e, &c.counts) {
			c.epoch = e
			w.sum.add(&c.counts)
		}
	}
	*out = w.sum
	live := &w.live
	liveOK := false
	if s := w.slotOf(cur); s.epoch.Load() == cur && readSlot(s, cur, live) {
		out.add(live)
		liveOK = true
	}
	if spans == nil {
		return
	}
	// The suffixes, newest first: the bucket in progress, then each finished
	// bucket added in turn.
	*spans = (*spans)[:0]
	acc := &w.acc
	*acc = spanAcc{}
	for k := range int64(len(w.slots)) {
		e := cur - k
		switch {
		case k == 0:
			if liveOK {
				acc.add(live)
			}
		default:
			if d := &w.done[w.slotIndex(e)]; d.epoch == e {
				acc.add(&d.counts)
			}
		}
		*spans = append(*spans, acc.span(w.origin.Add(time.Duration(e)*w.width)))
	}
}

// slotIndex returns the index of the slot that holds bucket epoch.
func (w *window) slotIndex(epoch int64) int {
	n := int64(len(w.slots))
	return int(((epoch % n) + n) % n)
}

// doneSlot is a plain copy of a finished slot.
type doneSlot struct {
	epoch int64 // bucket copied, or epochEmpty
	counts
}

// forget drops the sums of finished buckets; the caller holds mu.
func (w *window) forget() {
	for i := range w.done {
		w.done[i].epoch = epochEmpty
	}
	w.sum = counts{}
}
