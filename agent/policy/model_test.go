package policy

import (
	"math"
	"math/rand/v2"
	"testing"
	"time"
)

// host is one simulated host for the model tests: its utilisation is a
// baseline plus a cost per connection, read with noise.
type host struct {
	baseline, perConn float64 // utilisation, relative to the target
	noise             float64
	rng               *rand.Rand
	st                State
	d                 Decision
}

func newHost(baseline, perConn float64, seed uint64) *host {
	return &host{baseline: baseline, perConn: perConn, noise: 0.01, rng: rand.New(rand.NewPCG(seed, 1))}
}

// run samples the host every interval for d holding conns connections;
// backendWeight is what a runtime endpoint would show (0: none).
func (h *host) run(p PolicyConfig, from time.Time, d, interval time.Duration, conns int, backendWeight float64) time.Time {
	for at := from; at.Before(from.Add(d)); at = at.Add(interval) {
		u := h.baseline + h.perConn*float64(conns) + h.noise*h.rng.NormFloat64()
		h.st, h.d = p.Step(h.st, Observation{Connections: conns, Utilisation: max(u, 0), Fresh: true, Peers: 1, BackendWeight: backendWeight}, at)
	}
	return from.Add(d)
}

func spread(weights ...int) float64 {
	lo, hi := weights[0], weights[0]
	for _, w := range weights {
		lo, hi = min(lo, w), max(hi, w)
	}
	return float64(hi) / float64(lo)
}

// TestIdleSocketsGiveEqualWeights is the farm of the issue: equal hosts
// whose CPU is a baseline of 6-8% of the target that their idle sockets do
// not change, holding different numbers of them at the shipped reference
// capacity. Their weights must be what equal headroom gives, not
// proportional to their counts, whether the agent measured the baseline
// (it started before the host took connections) or not (it was restarted
// on a busy host).
func TestIdleSocketsGiveEqualWeights(t *testing.T) {
	t.Parallel()
	p := DefaultConfig()
	counts := []int{100, 300, 15}
	baselines := []float64{0.07, 0.08, 0.06}
	for _, measured := range []bool{true, false} {
		var weights []int
		for i, n := range counts {
			h := newHost(baselines[i], 0.000005, uint64(i))
			at := t0
			if measured {
				at = h.run(p, at, 30*time.Second, time.Second, 0, 0)
			}
			h.run(p, at, 3*time.Minute, time.Second, n, 0)
			weights = append(weights, h.d.WeightPercent)
			if measured != h.d.Model.Measured {
				t.Errorf("measured %v: the model says baseline measured %v", measured, h.d.Model.Measured)
			}
		}
		limit := 1.1
		if !measured {
			limit = 1.5
		}
		if s := spread(weights...); s > limit {
			t.Errorf("baseline measured %v: weights %v for %v idle sockets spread %.2fx, want at most %.1fx", measured, weights, counts, s, limit)
		}
		for _, w := range weights {
			if w < 60 {
				t.Errorf("baseline measured %v: weight %d%% for a host at 7%% of its target: want its headroom, near 90%%", measured, w)
			}
		}
	}
}

// TestLoadFromConnectionsKeepsTheObservedCapacity checks that a host
// without baseline, whose load is its connections', is weighted on
// connections per utilisation, as hafeed always did.
func TestLoadFromConnectionsKeepsTheObservedCapacity(t *testing.T) {
	t.Parallel()
	p := DefaultConfig()
	p.ReferenceCapacity = 1000
	h := newHost(0, 1.0/1500, 1) // capacity 1500 at the target
	at := h.run(p, t0, 30*time.Second, time.Second, 0, 0)
	h.run(p, at, 3*time.Minute, time.Second, 900, 0)
	if math.Abs(h.d.Capacity-1500) > 0.05*1500 || h.d.WeightPercent < 143 || h.d.WeightPercent > 158 {
		t.Errorf("capacity %.0f, weight %d%%: want about 1500 and 150%%", h.d.Capacity, h.d.WeightPercent)
	}
}

// TestBaselineIsSubtracted checks a host whose connections cost what the
// reference says, on top of a 30% baseline: the baseline is measured while
// it is empty and a few connections do not make it look small.
func TestBaselineIsSubtracted(t *testing.T) {
	t.Parallel()
	p := DefaultConfig()
	p.ReferenceCapacity = 1000
	for _, n := range []int{50, 500} {
		h := newHost(0.3, 1.0/1000, 2)
		at := h.run(p, t0, 30*time.Second, time.Second, 0, 0)
		h.run(p, at, 3*time.Minute, time.Second, n, 0)
		if math.Abs(h.d.Model.Baseline-0.3) > 0.01 {
			t.Errorf("%d connections: baseline %.3f, want 0.3", n, h.d.Model.Baseline)
		}
		// With few connections the headroom sets the weight (their 14%
		// share of the reference would be the connection count's weight);
		// with many, connections per utilisation, which balances hosts
		// with different baselines to the same utilisation.
		lo, hi := 66, 74
		if n == 500 {
			lo, hi = 58, 68
		}
		if h.d.WeightPercent < lo || h.d.WeightPercent > hi {
			t.Errorf("%d connections: weight %d%%, want %d..%d%%", n, h.d.WeightPercent, lo, hi)
		}
	}
}

// TestColdStartFromTheBackend checks that a host without an estimate
// starts at the backend's mean weight and that its first few connections,
// however noisy, do not push it far.
func TestColdStartFromTheBackend(t *testing.T) {
	t.Parallel()
	p := DefaultConfig()
	h := newHost(0.1, 0.0002, 3)
	h.noise = 0.05
	at := h.run(p, t0, 15*time.Second, time.Second, 0, 60)
	if h.d.WeightPercent < 57 || h.d.WeightPercent > 63 {
		t.Fatalf("empty host with the backend at 60%%: weight %d%% (%s), want 60%%", h.d.WeightPercent, h.d.Reason)
	}
	for n := 10; n <= 30; n += 5 {
		at = h.run(p, at, 2*time.Second, time.Second, n, 60)
		if h.d.WeightPercent < 54 || h.d.WeightPercent > 66 {
			t.Errorf("%d connections: weight %d%% (%s), want within 10%% of 60%%", n, h.d.WeightPercent, h.d.Reason)
		}
	}
	// Without a runtime endpoint: the reference, less the baseline.
	h = newHost(0.1, 0.0002, 3)
	h.run(p, t0, 15*time.Second, time.Second, 0, 0)
	if h.d.WeightPercent < 85 || h.d.WeightPercent > 95 {
		t.Errorf("empty host without a backend view: weight %d%%, want 90%% (the reference's, 10%% baseline)", h.d.WeightPercent)
	}
}

// TestDampingIsInTime checks that the same change of load moves the
// weight at the same speed whatever the sampling interval.
func TestDampingIsInTime(t *testing.T) {
	t.Parallel()
	trajectory := func(interval time.Duration) []int {
		p := DefaultConfig()
		p.ReferenceCapacity = 1000
		h := newHost(0, 1.0/1000, 4)
		h.noise = 0
		at := h.run(p, t0, 30*time.Second, interval, 0, 0)
		at = h.run(p, at, time.Minute, interval, 500, 0)
		h.perConn = 1.0 / 4000 // the connections get four times cheaper
		var ws []int
		for range 8 {
			at = h.run(p, at, time.Second, interval, 500, 0)
			ws = append(ws, h.d.WeightPercent)
		}
		return ws
	}
	fast, slow := trajectory(250*time.Millisecond), trajectory(time.Second)
	for i := range fast {
		if d := math.Abs(float64(fast[i] - slow[i])); d > 0.06*float64(slow[i]) {
			t.Errorf("second %d: weight %d%% at 250ms, %d%% at 1s: want the same within 6%%\n250ms: %v\n1s:    %v", i+1, fast[i], slow[i], fast, slow)
			break
		}
	}
	if fast[0] >= fast[len(fast)-1] {
		t.Errorf("the weight did not rise: %v", fast)
	}
}

// TestReferenceAdvice checks that a weight stuck at the cap or under 20%
// for minutes comes with a suggested reference capacity, and only then.
func TestReferenceAdvice(t *testing.T) {
	t.Parallel()
	p := DefaultConfig() // reference 10000
	h := newHost(0, 1.0/100000, 5)
	h.noise = 0
	at := h.run(p, t0, 30*time.Second, time.Second, 0, 0)
	at = h.run(p, at, time.Minute, time.Second, 20000, 0)
	if h.d.WeightPercent != 256 || h.d.SuggestedReference != 0 {
		t.Fatalf("after a minute at the cap: weight %d%%, suggestion %d; want 256%% and none yet", h.d.WeightPercent, h.d.SuggestedReference)
	}
	at = h.run(p, at, 3*time.Minute, time.Second, 20000, 0)
	if h.d.SuggestedReference < 95000 || h.d.SuggestedReference > 105000 {
		t.Errorf("after minutes at the cap: suggestion %d, want about 100000 (the capacity)", h.d.SuggestedReference)
	}
	h.perConn = 1.0 / 10000
	h.run(p, at, time.Minute, time.Second, 5000, 0)
	if h.d.SuggestedReference != 0 || h.d.WeightPercent > 110 {
		t.Errorf("back in range: weight %d%%, suggestion %d; want about 100%% and none", h.d.WeightPercent, h.d.SuggestedReference)
	}
}

func TestSuggestReference(t *testing.T) {
	t.Parallel()
	for capacity, want := range map[float64]int{0.3: 1, 7: 7, 1234: 1200, 98765: 99000, 1550: 1600} {
		if got := SuggestReference(capacity); got != want {
			t.Errorf("SuggestReference(%v) = %d, want %d", capacity, got, want)
		}
	}
}

// TestPartialSampleIsNotTheBaseline checks that a first sample lacking a
// signal (a CPU rate needs two readings) does not count as the baseline.
func TestPartialSampleIsNotTheBaseline(t *testing.T) {
	t.Parallel()
	p := DefaultConfig()
	st, _ := p.Step(State{}, Observation{Utilisation: 0.02, Fresh: true, Partial: true}, t0)
	_, d := p.Step(st, Observation{Utilisation: 0.3, Fresh: true}, t0.Add(time.Second))
	if !d.Model.Measured || math.Abs(d.Model.Baseline-0.3) > 1e-9 {
		t.Errorf("baseline %+v after a partial sample at 0.02 and a full one at 0.3, want 0.3 measured", d.Model)
	}
}
