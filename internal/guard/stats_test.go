package guard

import (
	"math"
	"math/big"
	"testing"
)

func TestTwoProportionZ(t *testing.T) {
	// 30/100 against 10/100: pooled 0.2, se = sqrt(0.2*0.8*0.02) = 0.0565685,
	// continuity correction 0.01 → z = 0.19 / 0.0565685.
	if got, want := twoProportionZ(30, 100, 10, 100), 0.19/math.Sqrt(0.2*0.8*0.02); math.Abs(got-want) > 1e-12 {
		t.Errorf("z = %v, want %v", got, want)
	}
	if got := twoProportionZ(10, 100, 30, 100); got >= 0 {
		t.Errorf("a better first population: z = %v, want negative", got)
	}
	for _, c := range [][4]uint64{{0, 100, 0, 100}, {100, 100, 50, 50}, {1, 0, 1, 10}, {1, 10, 0, 0}} {
		if got := twoProportionZ(c[0], c[1], c[2], c[3]); got != 0 {
			t.Errorf("twoProportionZ%v = %v, want 0 (nothing to test)", c, got)
		}
	}
	// A difference smaller than the correction is no evidence at all.
	if got := twoProportionZ(11, 100, 10, 100); got != 0 {
		t.Errorf("one failure more of 100: z = %v, want 0", got)
	}
}

// binom returns C(n, k) exactly, for the reference sums below.
func binom(n, k int64) *big.Int { return new(big.Int).Binomial(n, k) }

func TestBinomialUpperMatchesExactSum(t *testing.T) {
	p := big.NewRat(1, 20)
	q := big.NewRat(19, 20)
	pow := func(r *big.Rat, n int64) *big.Rat {
		out := big.NewRat(1, 1)
		for range n {
			out.Mul(out, r)
		}
		return out
	}
	for _, c := range [][2]int64{{0, 10}, {1, 10}, {10, 100}, {21, 200}, {60, 60}, {61, 60}} {
		k, n := c[0], c[1]
		sum := new(big.Rat)
		for i := k; i <= n; i++ {
			term := new(big.Rat).SetInt(binom(n, i))
			term.Mul(term, pow(p, i))
			term.Mul(term, pow(q, n-i))
			sum.Add(sum, term)
		}
		want, _ := sum.Float64()
		if got := binomialUpper(uint64(k), uint64(n), 0.05, 1); math.Abs(got-want) > 1e-9*want+1e-300 {
			t.Errorf("binomialUpper(%d, %d) = %v, want %v", k, n, got, want)
		}
	}
}
