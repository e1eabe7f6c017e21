package guard

import "math"

// twoProportionZ returns the one-sided two-proportion z statistic for "the
// first population fails more often than the second", from x1 failures of n1
// and x2 of n2, with the pooled variance and Yates' continuity correction
// (which keeps the test from tripping on a handful of failures in a small
// sample). It returns 0 when either sample is empty or the pooled rate is 0
// or 1, where the test says nothing.
func twoProportionZ(x1, n1, x2, n2 uint64) float64 {
	if n1 == 0 || n2 == 0 {
		return 0
	}
	f1, f2 := float64(n1), float64(n2)
	p1, p2 := float64(x1)/f1, float64(x2)/f2
	pool := float64(x1+x2) / (f1 + f2)
	if pool <= 0 || pool >= 1 {
		return 0
	}
	inv := 1/f1 + 1/f2
	diff := p1 - p2
	cc := inv / 2
	switch {
	case diff > cc:
		diff -= cc
	case diff < -cc:
		diff += cc
	default:
		diff = 0
	}
	return diff / math.Sqrt(pool*(1-pool)*inv)
}

// logChoose returns ln C(n, k).
func logChoose(n, k uint64) float64 {
	a, _ := math.Lgamma(float64(n) + 1)
	b, _ := math.Lgamma(float64(k) + 1)
	c, _ := math.Lgamma(float64(n-k) + 1)
	return a - b - c
}

// tailEps ends a tail sum once its terms no longer change it.
const tailEps = 1e-15

// binomialUpper returns P(X >= k) for X binomial(n, p), stopping as soon as
// the sum exceeds limit (the answer is then "more than limit"), which keeps
// the cost to a few terms whatever the counts.
func binomialUpper(k, n uint64, p, limit float64) float64 {
	switch {
	case k == 0:
		return 1
	case k > n:
		return 0
	case p <= 0:
		return 0
	case p >= 1:
		return 1
	}
	term := math.Exp(logChoose(n, k) + float64(k)*math.Log(p) + float64(n-k)*math.Log1p(-p))
	odds := p / (1 - p)
	sum := 0.0
	for i := k; ; i++ {
		sum += term
		if sum > limit || i == n || term < sum*tailEps {
			return min(sum, 1)
		}
		term *= float64(n-i) / float64(i+1) * odds
	}
}
