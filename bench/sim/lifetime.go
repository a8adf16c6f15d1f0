package main

import "math"

// pareto is a Pareto distribution of connection lifetimes in seconds: heavy
// tailed, so that a few connections outlive every event in a run.
type pareto struct {
	alpha, scale, mean float64
}

func newPareto(mean, alpha float64) pareto {
	return pareto{alpha: alpha, scale: mean * (alpha - 1) / alpha, mean: mean}
}

// lifetime maps a uniform u in [0, 1) to a lifetime.
func (p pareto) lifetime(u float64) float64 {
	if p.alpha == 1.5 {
		// (1-u)^(-2/3), without the cost of math.Pow: this is the hot path.
		return p.scale / math.Cbrt((1-u)*(1-u))
	}
	return p.scale * math.Pow(1-u, -1/p.alpha)
}

// residual maps a uniform u in [0, 1) to the remaining lifetime of a
// connection found alive at a random moment (the equilibrium distribution,
// with density P(L > t) / mean), which is what a prefill needs for the
// connection count to start in its steady state.
func (p pareto) residual(u float64) float64 {
	y := u * p.mean
	if y <= p.scale {
		return y
	}
	// F(t) = (scale + scale^a (t^(1-a) - scale^(1-a)) / (1-a)) / mean.
	a := p.alpha
	x := math.Pow(p.scale, 1-a) + (y-p.scale)*(1-a)/math.Pow(p.scale, a)
	if x <= 0 {
		return math.Inf(1)
	}
	return math.Pow(x, 1/(1-a))
}
