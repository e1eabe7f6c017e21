//go:build race

package tenant

// raceEnabled reports whether the race detector is on: it changes what
// allocates (and sync.Pool drops items at random under it), so allocation
// tests skip; make test runs them in a run without it.
const raceEnabled = true
