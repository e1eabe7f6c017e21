//go:build race

package spec_test

// raceEnabled reports whether the tests run under the race detector, which
// slows the simulations about tenfold; they then play fewer seeds.
const raceEnabled = true
